import dataclasses

import pytest
import torch

from leangpt import checkpoint
from leangpt.checkpoint import CheckpointError
from leangpt.cli import run
from leangpt.config import ConvertConfig, SampleConfig
from leangpt.convert import convert
from leangpt.data import DataError
from leangpt.sample import sample
from leangpt.train import train
from tests.helpers import CORPUS, tiny_config


@pytest.fixture
def trained(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(tiny_data, out, max_iters=30, n_headgroup=2), log=lambda _: None)
    return out


def test_sample_from_checkpoint(trained, tmp_path):
    info = []
    texts = sample(SampleConfig(out_dir=str(trained), start="First", num_samples=2, max_new_tokens=25, device="cpu"),
                   out=lambda _: None, info=info.append)
    assert len(texts) == 2 and all(t.startswith("First") and len(t) == 30 for t in texts)
    assert set("".join(texts)) <= set(CORPUS)
    assert "KV cache" in info[0] and "tokens/s" in info[-1]
    # the KV cache does not change what a seeded sample is
    plain = sample(SampleConfig(out_dir=str(trained), start="First", num_samples=2, max_new_tokens=25, device="cpu",
                                kv_cache=False), out=lambda _: None, info=lambda _: None)
    assert plain == texts


def test_sample_prompt_from_file_and_errors(trained, tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("All:\n")
    texts = sample(SampleConfig(out_dir=str(trained), start=f"FILE:{prompt}", num_samples=1, max_new_tokens=5,
                                device="cpu"), out=lambda _: None, info=lambda _: None)
    assert texts[0].startswith("All:\n")
    with pytest.raises(DataError, match="not in the vocabulary: 'Z'"):
        sample(SampleConfig(out_dir=str(trained), start="Zed", device="cpu"), out=lambda _: None, info=lambda _: None)
    assert run("sample", [f"--out_dir={tmp_path / 'nothing'}", "--device=cpu"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_gqa_checkpoint_round_trip_train_resume_sample(trained, tiny_data):
    ckpt = checkpoint.load(trained / "ckpt.pt")
    assert ckpt["model_args"]["n_headgroup"] == 2 and ckpt["iter_num"] == 30
    result = train(tiny_config(tiny_data, trained, max_iters=40, lr_decay_iters=40, n_headgroup=2, init_from="resume"),
                   log=lambda _: None)
    assert result["iter"] == 40
    texts = sample(SampleConfig(out_dir=str(trained), start="A", num_samples=1, max_new_tokens=10, device="cpu"),
                   out=lambda _: None, info=lambda _: None)
    assert len(texts[0]) == 11


def mean_pooled_mha_state(state, n_layer, n_head, n_headgroup, n_embd):
    """The MHA weights with each K and V head replaced by the mean of its group (kept at n_head)."""
    d = n_embd // n_head
    out = {k: v.clone() for k, v in state.items()}
    for i in range(n_layer):
        for kind in ("weight", "bias"):
            key = f"transformer.h.{i}.attn.c_attn.{kind}"
            if key not in out:
                continue
            w = out[key]
            for part in (1, 2):  # k, then v
                for g in range(n_head // n_headgroup):
                    heads = [slice(part * n_embd + h * d, part * n_embd + (h + 1) * d)
                             for h in range(g * n_headgroup, (g + 1) * n_headgroup)]
                    mean = sum(w[s] for s in heads) / n_headgroup
                    for s in heads:
                        w[s] = mean
    return out


def test_convert_mha_to_gqa_matches_mean_pooled_mha(tiny_data, tmp_path):
    mha_dir = tmp_path / "mha"
    train(tiny_config(tiny_data, mha_dir, max_iters=20, bias=True), log=lambda _: None)
    convert(ConvertConfig(in_dir=str(mha_dir), out_dir=str(tmp_path / "gqa"), n_headgroup=2), log=lambda _: None)
    converted = checkpoint.load(tmp_path / "gqa" / "ckpt.pt")
    assert converted["optimizer"] is None and converted["iter_num"] == 0
    gqa = checkpoint.load_model(converted)
    assert gqa.config.n_headgroup == 2

    mha_ckpt = checkpoint.load(mha_dir / "ckpt.pt")
    pooled = checkpoint.load_model(mha_ckpt)
    pooled.load_state_dict(mean_pooled_mha_state(pooled.state_dict(), 2, 4, 2, 32))
    idx, targets = torch.randint(0, gqa.config.vocab_size, (2, 4, 16))
    gqa.eval(), pooled.eval()
    assert abs(gqa(idx, targets)[1].item() - pooled(idx, targets)[1].item()) < 1e-5
    assert gqa.num_params() < pooled.num_params()

    # uptraining continues from the converted weights with a fresh optimizer
    result = train(tiny_config(tiny_data, tmp_path / "gqa", max_iters=10, n_headgroup=2, init_from="resume", bias=True),
                   log=lambda _: None)
    assert result["iter"] == 10 and result["status"] == "finished"


def test_convert_errors(trained, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="already has n_headgroup=2"):
        convert(ConvertConfig(in_dir=str(trained), out_dir=str(tmp_path / "x"), n_headgroup=2))
    assert run("convert", [f"--in_dir={trained}", f"--out_dir={trained}"]) == 2
    assert "must differ from in_dir" in capsys.readouterr().err


@dataclasses.dataclass
class NanoGPTConfig:
    """Upstream nanoGPT's GPTConfig, field for field: its sample.py calls GPTConfig(**model_args)."""
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


def nanogpt_state_keys(c: NanoGPTConfig) -> set[str]:
    """The parameter names of upstream nanoGPT's GPT (flash attention: no mask buffers)."""
    suffixes = ["weight", "bias"] if c.bias else ["weight"]
    keys = {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"}
    keys |= {f"transformer.ln_f.{s}" for s in suffixes}
    for i in range(c.n_layer):
        for module in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            keys |= {f"transformer.h.{i}.{module}.{s}" for s in suffixes}
    return keys


@pytest.mark.parametrize("bias", [True, False])
def test_mha_checkpoint_loads_in_upstream_nanogpt(tiny_data, tmp_path, bias):
    from tests import reference
    train(tiny_config(tiny_data, tmp_path / "o", max_iters=4, bias=bias), log=lambda _: None)
    ckpt = torch.load(tmp_path / "o" / "ckpt.pt", map_location="cpu", weights_only=True)
    config = NanoGPTConfig(**ckpt["model_args"])  # TypeError if a key nanoGPT does not know were there
    assert (config.n_layer, config.n_head, config.n_embd, config.bias) == (2, 4, 32, bias)
    state = ckpt["model"]
    assert set(state) == nanogpt_state_keys(config)
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (3 * config.n_embd, config.n_embd)
    idx = torch.randint(0, config.vocab_size, (2, 16))
    model = checkpoint.load_model(ckpt)
    expected = reference.gpt_logits(state, idx, config.n_layer, config.n_head)
    assert torch.allclose(model(idx, idx)[0], expected, atol=1e-5)


def test_gqa_checkpoint_is_refused_by_name_in_upstream_nanogpt(trained):
    ckpt = torch.load(trained / "ckpt.pt", map_location="cpu", weights_only=True)
    with pytest.raises(TypeError, match="n_headgroup"):
        NanoGPTConfig(**ckpt["model_args"])
    assert checkpoint.model_config(ckpt).n_headgroup == 2


@pytest.mark.parametrize("dataset", ["../elsewhere", "/etc", ".."])
def test_a_checkpoint_cannot_point_its_vocabulary_outside_data_dir(dataset):
    from leangpt.sample import tokenizer_for
    with pytest.raises(DataError, match="not a plain name"):
        tokenizer_for({"config": {"dataset": dataset}}, "data")


def test_samples_are_drawn_as_one_batch_without_mixing_rows(trained):
    """Greedy rows of a batch must each equal the single greedy sample; one sample keeps nanoGPT's draw."""
    base = dict(out_dir=str(trained), start="A", max_new_tokens=30, device="cpu")
    quiet = dict(out=lambda _: None, info=lambda _: None)
    one = sample(SampleConfig(num_samples=1, top_k=1, **base), **quiet)
    three = sample(SampleConfig(num_samples=3, top_k=1, **base), **quiet)
    assert three == one * 3
    # a single sample is what generate() draws from the seed, as in nanoGPT's loop
    ckpt = checkpoint.load(trained / "ckpt.pt")
    model = checkpoint.load_model(ckpt, dropout=0.0).eval()
    torch.manual_seed(1337)
    ids = torch.tensor([[ckpt["meta"]["stoi"]["A"]]])
    expected = model.generate(ids, 30, temperature=0.8, top_k=200, kv_cache=True)[0].tolist()
    drawn = sample(SampleConfig(num_samples=1, **base), **quiet)[0]
    assert drawn == "".join(ckpt["meta"]["itos"][i] for i in expected)


@pytest.mark.slow
def test_compiled_sampling_draws_the_eager_tokens(trained):
    """compile=True compiles the model once: the fixed-shape cached decode steps share its graph,
    and the greedy samples equal the eager ones (tiny model, so compiling takes seconds)."""
    base = dict(out_dir=str(trained), start="A", max_new_tokens=20, num_samples=2, top_k=1, device="cpu")
    quiet = dict(out=lambda _: None, info=lambda _: None)
    info = []
    compiled = sample(SampleConfig(compile=True, **base), out=lambda _: None, info=info.append)
    assert compiled == sample(SampleConfig(**base), **quiet)
    assert any("compiling" in line for line in info)


def test_compiled_sampling_without_a_compiler_is_refused_in_one_line(trained, monkeypatch):
    from leangpt import device
    from leangpt.errors import ConfigError
    monkeypatch.setattr(device, "c_compiler", lambda: None)
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler"):
        sample(SampleConfig(out_dir=str(trained), compile=True, device="cpu"), out=lambda _: None, info=lambda _: None)

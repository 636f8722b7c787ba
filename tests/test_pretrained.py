"""GPT-2 weights from disk, checked against Hugging Face's own GPT2LMHeadModel (built small and
random here, saved with save_pretrained: no network)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from leangpt.pretrained import PretrainedError, load_gpt2, read_config
from tests.helpers import CORPUS, run_train, tiny_config

transformers = pytest.importorskip("transformers")
tiktoken = pytest.importorskip("tiktoken")

VOCAB = 300


def hf_gpt2(activation="gelu_new", seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64, vocab_size=VOCAB,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function=activation,
                                     bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # weights far from their init, so that a wrong layout cannot pass
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if "ln" in name else 0.1))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = hf_gpt2()
    safetensors_dir = tmp_path_factory.mktemp("hf-safetensors")
    model.save_pretrained(safetensors_dir)
    bin_dir = tmp_path_factory.mktemp("hf-bin")
    model.save_pretrained(bin_dir, safe_serialization=False) if "safe_serialization" in \
        model.save_pretrained.__code__.co_varnames else None
    if not (bin_dir / "pytorch_model.bin").is_file():  # transformers 5 writes safetensors only
        model.config.save_pretrained(bin_dir)
        torch.save(model.state_dict(), bin_dir / "pytorch_model.bin")
    return model, safetensors_dir, bin_dir


def full_logits(model, idx):
    with torch.no_grad():
        logits, _ = model(idx, targets=idx)
    return logits


@pytest.mark.parametrize("layout", ["safetensors", "bin"])
def test_logits_equal_hugging_faces_gpt2(saved, layout):
    hf, safetensors_dir, bin_dir = saved
    model, _ = load_gpt2(str(safetensors_dir if layout == "safetensors" else bin_dir), 64, 0.0)
    model.eval()
    idx = torch.randint(0, VOCAB, (3, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = hf(idx).logits
    got = full_logits(model, idx)
    assert model.config.gelu == "tanh" and model.config.bias
    assert (got - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())


def test_a_shorter_block_crops_the_position_table_and_keeps_the_logits(saved):
    hf, directory, _ = saved
    model, _ = load_gpt2(str(directory), 16, 0.0)
    assert model.config.block_size == 16 and model.transformer.wpe.weight.shape == (16, 32)
    idx = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = hf(idx).logits
    assert torch.allclose(full_logits(model.eval(), idx), reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(PretrainedError, match="block_size=128 is longer than the 64 positions"):
        load_gpt2(str(directory), 128, 0.0)


def test_exact_gelu_weights_load_with_exact_gelu(tmp_path):
    hf = hf_gpt2(activation="gelu", seed=3)
    hf.save_pretrained(tmp_path)
    model, _ = load_gpt2(str(tmp_path), 64, 0.0)
    idx = torch.randint(0, VOCAB, (2, 64), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = hf(idx).logits
    assert model.config.gelu == "exact"
    assert (full_logits(model.eval(), idx) - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())


def gpt2_dataset(root):
    """nanoGPT-style GPT-2 data (no meta.pkl), ids from a small byte-level encoding that fit VOCAB."""
    from tests.test_tokenizers import small_gpt2_encoding
    encoding = small_gpt2_encoding()
    assert encoding.n_vocab <= VOCAB
    root.mkdir(parents=True)
    text = CORPUS * 30
    split = int(len(text) * 0.9)
    np.array(encoding.encode_ordinary(text[:split]), dtype=np.uint16).tofile(root / "train.bin")
    np.array(encoding.encode_ordinary(text[split:]), dtype=np.uint16).tofile(root / "val.bin")


def test_fine_tuning_from_a_directory_then_resuming(saved, tmp_path):
    hf, directory, _ = saved
    gpt2_dataset(tmp_path / "data" / "tiny")
    config = tiny_config(tmp_path / "data", tmp_path / "out", init_from=str(directory), n_layer=1, n_embd=48,
                         max_iters=4, lr_decay_iters=4, eval_interval=4)
    _, lines = run_train(config)
    assert any(line.startswith(f"initialized from GPT-2 weights in {directory}: n_layer=2, n_head=4, n_embd=32, "
                               f"vocab_size={VOCAB}, block_size=16") for line in lines)
    ckpt = torch.load(tmp_path / "out" / "ckpt.pt", weights_only=False)
    assert ckpt["leangpt_model_args"]["gelu"] == "tanh" and ckpt["model_args"]["n_embd"] == 32
    # the first step starts from the loaded weights: its loss is the Hugging Face model's on that batch
    first = next(float(line.split("loss ")[1].split(",")[0]) for line in lines if line.startswith("iter 0:"))
    assert 0.5 < first < 20
    _, resumed = run_train(tiny_config(tmp_path / "data", tmp_path / "out", init_from="resume", max_iters=6,
                                       lr_decay_iters=6, eval_interval=4))
    assert any(line.startswith("iter 5:") for line in resumed)


def test_the_local_hugging_face_cache_serves_gpt2(saved, tmp_path, monkeypatch):
    _, directory, _ = saved
    snapshot = tmp_path / "hub" / "models--openai-community--gpt2" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((directory / name).read_bytes())
    (tmp_path / "hub" / "models--openai-community--gpt2" / "refs").mkdir()
    (tmp_path / "hub" / "models--openai-community--gpt2" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model, found = load_gpt2("gpt2", 64, 0.0)
    assert found == snapshot and model.config.vocab_size == VOCAB
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(PretrainedError, match="not in the local Hugging Face cache .*huggingface-cli download "
                                              "openai-community/gpt2-medium"):
        load_gpt2("gpt2-medium", 64, 0.0)


@pytest.mark.slow  # spawns processes or runs a sweep
def test_what_cannot_be_loaded_is_one_error_line(saved, tmp_path, tiny_data):
    _, directory, _ = saved
    gpt2_dataset(tmp_path / "data" / "g")
    cases = [
        ([f"--init_from={tmp_path / 'nowhere'}"], "is not scratch, resume, gpt2, gpt2-medium"),
        ([f"--init_from={directory}", f"--data_dir={tiny_data}", "--dataset=tiny"],
         "loads GPT-2 weights, which read GPT-2 token ids, but dataset 'tiny' is char-tokenized"),
        ([f"--init_from={directory}", f"--data_dir={tmp_path / 'data'}", "--dataset=g", "--n_headgroup=2"],
         "fine-tune them as they are, then make them GQA with leangpt convert"),
        ([f"--init_from={tmp_path}", f"--data_dir={tmp_path / 'data'}", "--dataset=g"], "has no config.json"),
    ]
    for argv, message in cases:
        out = subprocess.run([sys.executable, "-m", "leangpt", "train", "--device=cpu", "--compile=False",
                              f"--out_dir={tmp_path / 'o'}", "--max_iters=1", "--block_size=16", *argv],
                             capture_output=True, text=True, timeout=300)
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
        assert out.returncode in (1, 2) and message in last and "Traceback" not in out.stderr, (argv, out.stderr[-800:])


@pytest.mark.parametrize("key,value,says", [
    ("n_head", 3, "n_head=3 does not divide n_embd=64"),
    ("n_layer", "two", 'n_layer="two" must be an integer >= 1'),
    ("n_positions", -1, "n_positions=-1 must be an integer >= 1"),
    ("layer_norm_epsilon", "x", 'layer_norm_epsilon="x" must be a number'),
    ("vocab_size", None, "vocab_size=null must be an integer >= 1"),
    ("n_embd", True, "n_embd=true must be an integer >= 1"),
    ("n_layer", 2.5, "n_layer=2.5 must be an integer >= 1"),
    ("activation_function", ["gelu"], "activation_function ['gelu'] is not one of"),
])
def test_a_bad_config_value_is_one_line_naming_the_file_and_the_key(tmp_path, key, value, says):
    """Each value once escaped read_config as a ValueError or TypeError traceback."""
    hf = {"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 32, "vocab_size": 50,
          key: value}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(PretrainedError) as caught:
        read_config(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'config.json'}") and says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_whole_number_written_as_a_float_is_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2.0, "n_head": 4,
                                                      "n_embd": 64, "n_ctx": 32, "vocab_size": 50}))
    config = read_config(tmp_path)
    assert (config.n_layer, config.block_size, type(config.n_layer)) == (2, 32, int)

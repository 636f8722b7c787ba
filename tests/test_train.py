import dataclasses
import math
import os
import re
import signal

import pytest
import torch

from leangpt import checkpoint
from leangpt.checkpoint import CheckpointError
from leangpt.cli import run
from leangpt.train import TrainingError, get_lr, train
from tests.helpers import common_args, iter_of, assert_resume_is_exact, losses, run_train, tiny_config

def test_lr_schedule_by_hand():
    c = tiny_config("d", "o", learning_rate=1.0, min_lr=0.1, warmup_iters=4, lr_decay_iters=14)
    assert get_lr(0, c) == pytest.approx(1 / 5)
    assert get_lr(3, c) == pytest.approx(4 / 5)
    assert get_lr(4, c) == pytest.approx(1.0)
    assert get_lr(9, c) == pytest.approx(0.1 + 0.5 * (1 + math.cos(math.pi * 0.5)) * 0.9)
    assert get_lr(14, c) == pytest.approx(0.1) and get_lr(100, c) == 0.1
    assert get_lr(7, dataclasses.replace(c, decay_lr=False)) == 1.0


def test_training_lowers_loss_and_writes_run_files(tiny_data, tmp_path):
    result, lines = run_train(tiny_config(tiny_data, tmp_path / "out", max_iters=40, lr_decay_iters=40, eval_interval=20))
    evals = [float(m) for m in re.findall(r"val loss ([\d.]+)", "\n".join(lines))]
    assert evals[-1] < evals[0] - 0.5
    assert result["status"] == "finished" and result["iter"] == 40
    for name in ("ckpt.pt", "best.pt", "config.json", "metrics.jsonl"):
        assert (tmp_path / "out" / name).is_file()
    assert any(line.startswith("optimizer state:") for line in lines)


@pytest.mark.parametrize("variant", ["adamw", "adamsn", "adafactor", "adam"])
@pytest.mark.parametrize("n_headgroup", [1, 2])
def test_resume_is_exact(tiny_data, tmp_path, variant, n_headgroup):
    assert_resume_is_exact(tiny_data, tmp_path, optimizer_variant=variant, n_headgroup=n_headgroup)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_checkpoints_and_resumes_exactly(tiny_data, tmp_path, sig):
    config = tiny_config(tiny_data, tmp_path / "a", max_iters=16, eval_interval=4)
    _, straight = run_train(config)

    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("iter 6:"):
            os.kill(os.getpid(), sig)

    result = train(dataclasses.replace(config, out_dir=str(tmp_path / "b")), log=log)
    assert result["status"] == "interrupted" and result["iter"] == 7
    assert checkpoint.load(tmp_path / "b" / "ckpt.pt")["iter_num"] == 7
    _, resumed = run_train(dataclasses.replace(config, out_dir=str(tmp_path / "b"), init_from="resume"))
    assert losses(lines) + losses(resumed) == losses(straight)


def test_nan_loss_stops_and_keeps_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    from leangpt.model import GPT
    forward = GPT.forward
    calls = {"n": 0}

    def poisoned(self, idx, targets=None, cache=None):
        logits, loss = forward(self, idx, targets, cache)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 12:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", poisoned)
    config = tiny_config(tiny_data, tmp_path / "o", max_iters=20, eval_interval=5)
    with pytest.raises(TrainingError, match="loss is nan at iter 12") as info:
        train(config, log=lambda _: None)
    assert "\n" not in str(info.value)
    assert checkpoint.load(tmp_path / "o" / "ckpt.pt")["iter_num"] == 10


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoint.save_atomic({"model": {}, "model_args": {}, "iter_num": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(checkpoint.CheckpointError, match="could not write .*disk full.*intact"):
        checkpoint.save_atomic({"model": {}, "model_args": {}, "iter_num": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["iter_num"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_bad_checkpoints_are_clear_errors(tiny_data, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"not a checkpoint")
    argv = common_args(tiny_data, out, init_from="resume")
    assert run("train", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "is not a readable checkpoint" in err and "\n" not in err
    assert run("train", [a.replace(str(out), str(tmp_path / "none")) for a in argv]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    torch.save({"model": {"x": torch.zeros(1)}, "model_args": {"n_layer": 1, "n_head": 2, "n_embd": 16,
                                                               "block_size": 8, "vocab_size": 7}}, out / "ckpt.pt")
    assert run("train", argv) == 2
    assert "vocab_size=7" in capsys.readouterr().err


def test_missing_dataset_is_clear(tmp_path, capsys):
    assert run("train", [f"--data_dir={tmp_path}", "--dataset=shakespeare_char", "--device=cpu"]) == 2
    assert "python data/shakespeare_char/prepare.py" in capsys.readouterr().err


def test_unknown_key_from_cli_is_one_line(capsys):
    assert run("train", ["--n_layr=4"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown config key 'n_layr' (from command line); did you mean 'n_layer'?"


def test_resume_with_other_optimizer_is_refused(tiny_data, tmp_path):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=5))
    with pytest.raises(CheckpointError, match="resume with --optimizer_variant=adamw"):
        run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=8, init_from="resume", optimizer_variant="adamsn"))


def test_metrics_jsonl_records(tiny_data, tmp_path):
    from leangpt.metrics import read_metrics
    result, _ = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=10, eval_interval=5))
    records = read_metrics(tmp_path / "o" / "metrics.jsonl")
    kinds = [r["kind"] for r in records]
    assert kinds.count("eval") == 3 and kinds.count("train") == 10 and kinds.count("memory") == 1
    assert records[-1]["kind"] == "end" and records[-1]["status"] == "finished"
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    assert last_eval["val_loss"] == result["val_loss"]


@pytest.mark.parametrize("variant,lr", [("adam", 3e-3), ("adamsn", 3e-2), ("adafactor", 3e-3)])
def test_every_variant_lowers_the_loss(tiny_data, tmp_path, variant, lr):
    extra = {"adafactor_scale_parameter": False} if variant == "adafactor" else {}
    result, lines = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=40, lr_decay_iters=40, eval_interval=40,
                                          optimizer_variant=variant, learning_rate=lr, min_lr=lr / 10, **extra))
    evals = [float(m) for m in re.findall(r"val loss ([\d.]+)", "\n".join(lines))]
    assert evals[-1] < evals[0] - 0.5, evals


def test_adamsn_dense_parameters_follow_their_lr_ratio(tiny_data, tmp_path):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=4, optimizer_variant="adamsn", learning_rate=1e-2,
                          min_lr=1e-3, lr_decay_iters=20, adamsn_dense_lr_ratio=0.1))
    groups = checkpoint.load(tmp_path / "o" / "ckpt.pt")["optimizer"]["param_groups"]
    sn = [g for g in groups if g["subset_norm"]]
    dense = [g for g in groups if not g["subset_norm"]]
    assert len(sn) == 1 and len(dense) == 2
    scheduled = get_lr(3, tiny_config(tiny_data, tmp_path, learning_rate=1e-2, min_lr=1e-3, lr_decay_iters=20))
    assert sn[0]["lr"] == pytest.approx(scheduled)
    assert all(g["lr"] == pytest.approx(scheduled * 0.1) for g in dense)


def test_resume_from_an_upstream_nanogpt_checkpoint(tiny_data, tmp_path):
    """nanoGPT's checkpoint dict: compiled-model keys, its AdamW groups, model_args, no RNG state."""
    from leangpt.model import GPT, GPTConfig
    from leangpt.optim import param_groups
    model_args = dict(n_layer=2, n_head=4, n_embd=32, block_size=16, bias=False, vocab_size=35, dropout=0.0)
    model = GPT(GPTConfig(**model_args))
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    optimizer.step()
    out = tmp_path / "up"
    out.mkdir()
    torch.save({"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(), "model_args": model_args, "iter_num": 5,
                "best_val_loss": 2.5, "config": {"dataset": "tiny", "batch_size": 4}}, out / "ckpt.pt")
    vocab = checkpoint.load(out / "ckpt.pt")["model_args"]["vocab_size"]
    from leangpt.data import load_meta
    assert load_meta(tiny_data / "tiny" / "meta.pkl")["vocab_size"] == vocab
    result, lines = run_train(tiny_config(tiny_data, out, max_iters=8, init_from="resume"))
    assert result["iter"] == 8 and any(l.startswith("note: this checkpoint holds no RNG state") for l in lines)


@pytest.mark.parametrize("n_headgroup", [1, 2])
def test_activation_checkpointing_trains_the_same_losses(tiny_data, tmp_path, n_headgroup):
    """Recomputing each block in the backward replays its dropout masks: 20 iterations, same losses."""
    from leangpt.metrics import read_metrics
    base = dict(n_headgroup=n_headgroup, dropout=0.1, max_iters=20, eval_interval=10)
    run_train(tiny_config(tiny_data, tmp_path / "plain", **base))
    run_train(tiny_config(tiny_data, tmp_path / "ckpt", activation_checkpointing=True, **base))
    curves = [[r["loss"] for r in read_metrics(tmp_path / d / "metrics.jsonl") if r["kind"] == "train"]
              for d in ("plain", "ckpt")]
    assert len(curves[0]) == 20
    assert curves[1] == pytest.approx(curves[0], rel=1e-6, abs=1e-6)
    memory = [[r for r in read_metrics(tmp_path / d / "metrics.jsonl") if r["kind"] == "step_memory"][0]
              for d in ("plain", "ckpt")]
    assert memory[1]["activations_saved"] < 0.6 * memory[0]["activations_saved"]


def test_resume_with_activation_checkpointing_is_exact(tiny_data, tmp_path):
    base = dict(activation_checkpointing=True, n_headgroup=2, dropout=0.1, eval_interval=5,
                always_save_checkpoint=False)
    _, straight = run_train(tiny_config(tiny_data, tmp_path / "a", max_iters=20, **base))
    run_train(tiny_config(tiny_data, tmp_path / "b", max_iters=10, **base))
    _, resumed = run_train(tiny_config(tiny_data, tmp_path / "b", max_iters=20, init_from="resume", **base))
    straight_after = [line for line in losses(straight) if iter_of(line) >= 10 and not line.startswith("step 10:")]
    assert losses(resumed) == straight_after


def test_training_reports_the_step_memory_of_its_second_step(tiny_data, tmp_path):
    """The breakdown logged by training equals the estimate of `leangpt memory` for the same keys."""
    from leangpt.memory import MemoryConfig, step_memory
    from leangpt.metrics import read_metrics
    config = tiny_config(tiny_data, tmp_path / "o", max_iters=3)
    result, lines = run_train(config)
    logged = [r for r in read_metrics(tmp_path / "o" / "metrics.jsonl") if r["kind"] == "step_memory"]
    assert len(logged) == 1 and logged[0]["iter"] == 1
    assert any(line.startswith("step memory (iter 1") for line in lines)
    fields = {f: getattr(config, f) for f in config.__dataclass_fields__}
    estimate = step_memory(MemoryConfig(**fields)).as_dict()
    assert {k: logged[0][k] for k in estimate} == estimate


def test_resume_names_changed_settings_and_warns_on_batch_shape(tiny_data, tmp_path):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=4))
    _, lines = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=8, batch_size=8, learning_rate=1e-3,
                                     init_from="resume"))
    changed = [line for line in lines if line.startswith("resuming with settings changed")]
    assert len(changed) == 1 and "learning_rate 0.003 -> 0.001" in changed[0] and "max_iters 4 -> 8" in changed[0]
    warning = [line for line in lines if line.startswith("warning: batch_size 4 -> 8")]
    assert len(warning) == 1 and "64 -> 128 tokens per iteration" in warning[0]


def test_scratch_run_over_another_configuration_says_so(tiny_data, tmp_path):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2))
    _, same = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2))
    assert not any(line.startswith("note:") for line in same)
    _, other = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2, n_headgroup=2))
    notes = [line for line in other if line.startswith("note:")]
    assert len(notes) == 1 and "n_headgroup=1" in notes[0] and "replaces it" in notes[0]


def test_a_variant_far_from_its_tuned_learning_rate_gets_one_line(tiny_data, tmp_path):
    from leangpt.config import parse_config
    from leangpt.checks import tuned_lr_hint
    from leangpt.config import TrainConfig
    course = ["config/train_shakespeare_char.py", "--learning_rate=1e-3"]
    hint = tuned_lr_hint(parse_config(TrainConfig, course + ["--optimizer_variant=adamsn"]))
    assert "50x below its tuned 0.05" in hint and "config/tuned_adamsn.py" in hint
    assert "config/tuned_adafactor.py" in tuned_lr_hint(parse_config(TrainConfig, course + ["--optimizer_variant=adafactor"]))
    assert tuned_lr_hint(parse_config(TrainConfig, course)) == ""  # adamw at 1e-3: 5x, within reach
    tuned = parse_config(TrainConfig, ["config/train_shakespeare_char.py", "config/tuned_adamsn.py"])
    assert tuned_lr_hint(tuned) == ""
    _, lines = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=1, optimizer_variant="adafactor",
                                     learning_rate=1e-3, min_lr=1e-4))
    assert sum("tuned" in line for line in lines) == 1


def test_a_decay_horizon_inside_the_warmup_is_accepted_as_nanogpt_runs_it(tiny_data, tmp_path):
    c = tiny_config("d", "o", learning_rate=1.0, min_lr=0.1, warmup_iters=100, lr_decay_iters=50)
    assert get_lr(0, c) == pytest.approx(1 / 101) and get_lr(49, c) == pytest.approx(50 / 101)
    assert get_lr(99, c) == pytest.approx(100 / 101) and get_lr(100, c) == 0.1 and get_lr(500, c) == 0.1
    same = tiny_config("d", "o", learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=10)
    assert get_lr(10, same) == 0.1  # no division by zero where both horizons meet
    _, lines = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=5, lr_decay_iters=5, warmup_iters=10))
    assert any(line.startswith("note: lr_decay_iters=5 <= warmup_iters=10") for line in lines)


def test_eval_only_on_resume_evaluates_and_prints_the_losses(tiny_data, tmp_path):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=7, eval_interval=5))
    _, lines = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=7, eval_interval=5, init_from="resume",
                                     eval_only=True))
    assert [line for line in lines if line.startswith("step ")] == [l for l in losses(lines) if l.startswith("step 7:")]
    assert len([line for line in lines if line.startswith("step 7: train loss")]) == 1


@pytest.mark.parametrize("poison", [dict(weight_decay=1e6),
                                    dict(learning_rate=300.0, min_lr=0.0, grad_clip=0.0)])
def test_a_diverged_run_never_writes_a_nonfinite_checkpoint(tiny_data, tmp_path, poison):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2, eval_interval=2))
    before = checkpoint.load(tmp_path / "o" / "ckpt.pt")["model"]
    with pytest.raises(TrainingError, match="intact"):
        run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=40, lr_decay_iters=40, eval_interval=1,
                              always_save_checkpoint=True, init_from="resume", **poison))
    after = checkpoint.load(tmp_path / "o" / "ckpt.pt")["model"]
    assert all(torch.isfinite(v).all() for v in after.values())
    assert all(torch.equal(before[k], after[k]) for k in before) or checkpoint.load(tmp_path / "o" / "ckpt.pt")["iter_num"] > 2


def test_resume_applies_the_optimizer_settings_given_now(tiny_data, tmp_path):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2, eval_interval=2))
    _, lines = run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=4, eval_interval=2, init_from="resume",
                                     beta2=0.5, eps=1e-3, weight_decay=0.0))
    groups = checkpoint.load(tmp_path / "o" / "ckpt.pt")["optimizer"]["param_groups"]
    assert all(g["betas"] == (0.9, 0.5) and g["eps"] == 1e-3 and g["weight_decay"] == 0.0 for g in groups)
    changed = [line for line in lines if line.startswith("resuming with settings changed")][0]
    assert "beta2 0.95 -> 0.5" in changed and "eps 1e-08 -> 0.001" in changed and "weight_decay 0.1 -> 0.0" in changed


def test_resume_on_another_vocabulary_of_the_same_size_is_refused(tiny_data, tmp_path):
    from leangpt.data import prepare_dataset
    from tests.helpers import CORPUS
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2))
    chars = "\x01" + "".join(sorted(set(CORPUS)))[:-1]  # as many characters, most with another id
    prepare_dataset(chars * 200, tiny_data / "other")
    assert len(set(chars)) == len(set(CORPUS))
    with pytest.raises(CheckpointError, match="another vocabulary"):
        run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=4, dataset="other", init_from="resume"))


def test_a_damaged_checkpoint_is_one_error_naming_the_file(tiny_data, tmp_path, capsys):
    run_train(tiny_config(tiny_data, tmp_path / "o", max_iters=2))
    path = tmp_path / "o" / "ckpt.pt"
    weights = checkpoint.load(path)["model"]["transformer.h.0.mlp.c_fc.weight"]
    raw = bytearray(path.read_bytes())
    at = raw.find(weights.numpy().tobytes()[:64])
    assert at > 0  # torch.save stores tensor bytes uncompressed
    raw[at + 100] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="is damaged"):
        checkpoint.load(path)
    assert run("sample", [f"--out_dir={tmp_path / 'o'}", "--device=cpu", "--max_new_tokens=5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and str(path) in err[0]


@pytest.mark.slow
def test_a_second_trainer_on_the_same_out_dir_is_refused_and_stale_temporaries_go(tiny_data, tmp_path):
    import subprocess
    import sys
    from leangpt.fileio import directory_lock
    out = tmp_path / "o"
    args = [sys.executable, "-m", "leangpt", "train", *_tiny_args(tiny_data, out)]
    with directory_lock(out):
        (out / ".leangpt-ckpt.pt.x1y2.tmp").write_bytes(b"left by a killed write")
        busy = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert busy.returncode == 2
    err = busy.stderr.strip().splitlines()
    assert len(err) == 1 and f"is in use by process {os.getpid()}" in err[0]
    assert (out / ".leangpt-ckpt.pt.x1y2.tmp").exists() and not (out / "ckpt.pt").exists()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (out / ".leangpt-ckpt.pt.x1y2.tmp").exists() and (out / "ckpt.pt").exists()


def _tiny_args(tiny_data, out, *extra):
    """Two iterations of the tiny model, as a command line."""
    return [*common_args(tiny_data, out, batch_size=2, max_iters=2, lr_decay_iters=2, warmup_iters=1, eval_iters=1,
                         eval_interval=1), *extra]


def _one_error_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


def test_filesystem_faults_are_one_line(tiny_data, tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    assert run("train", _tiny_args(tiny_data, tmp_path / "afile")) == 2
    _one_error_line(capsys, "afile")
    assert run("train", _tiny_args(tmp_path / "afile", tmp_path / "o")) == 2
    _one_error_line(capsys, "not prepared")
    assert run("prepare", [f"--input={tmp_path}", f"--data_dir={tmp_path / 'd'}"]) == 2
    _one_error_line(capsys, str(tmp_path))
    # a full disk while writing the checkpoint: one line, and no temporary file left behind
    from leangpt import fileio

    def full(path, write):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(fileio, "_write_temporary", full)
    assert run("train", _tiny_args(tiny_data, tmp_path / "full")) == 2
    _one_error_line(capsys, "No space left on device")
    # nothing was written, so the out_dir the run made is gone again; no temporary in any case
    assert not (tmp_path / "full").exists() or not [p for p in (tmp_path / "full").iterdir() if p.name.endswith(".tmp")]

    # a read-only directory (root ignores the mode bits, so the refusal is simulated)
    def read_only(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fileio, "_write_temporary", read_only)
    assert run("train", _tiny_args(tiny_data, tmp_path / "ro")) == 2
    _one_error_line(capsys, "Permission denied")


def _set_n_layer(c, value):
    c["model_args"]["n_layer"] = c["leangpt_model_args"]["n_layer"] = value


@pytest.mark.parametrize("edit,needle", [
    (lambda c: _set_n_layer(c, "x"), "invalid model_args"),
    (lambda c: c["samplers"].pop("eval_val"), "sampler state"),
    (lambda c: c.update(iter_num="12"), "invalid counter"),
    (lambda c: c.update(rng_per_rank=[{**c["rng"], "torch": torch.zeros(3)}]), "RNG"),
])
def test_a_hand_edited_checkpoint_is_one_line(tiny_data, tmp_path, capsys, edit, needle):
    """Edited and saved again with a fresh digest: the damage is in the values, not the bytes."""
    assert run("train", _tiny_args(tiny_data, tmp_path / "o")) == 0
    path = tmp_path / "o" / "ckpt.pt"
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "digest"}, path)
    capsys.readouterr()
    assert run("train", _tiny_args(tiny_data, tmp_path / "o", "--init_from=resume", "--max_iters=4",
                                   "--lr_decay_iters=4")) == 2
    _one_error_line(capsys, needle)


@pytest.mark.parametrize("command,args,key", [
    ("sample", ["--temperature=1e-45"], "temperature"),
    ("sample", [f"--seed={2**64}"], "seed"),
    ("train", [f"--seed={2**64}"], "seed"),
])
def test_values_torch_cannot_take_are_one_line(command, args, key, capsys):
    assert run(command, args) == 2
    _one_error_line(capsys, key)

"""What a student meets in one evening with the handout beside them: commands pasted from its PDF,
every script's --help, notes next to settings that save nothing, no stray directories."""

import subprocess
import sys
from pathlib import Path

import pytest

from leangpt.cli import run, undo_pasted_dashes
from leangpt.checks import low_rank_note
from leangpt.config import TrainConfig
from tests.helpers import common_args, run_train, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_dashes_a_pdf_renders_are_read_as_double_hyphens():
    notes = []
    fixed = undo_pasted_dashes(["config/x.py", "\u2014device=cpu", "\u2013n_layer=2", "\u2014\u2014seed=3", "--a=1"],
                               note=notes.append)
    assert fixed == ["config/x.py", "--device=cpu", "--n_layer=2", "--seed=3", "--a=1"]
    assert len(notes) == 1 and "typographic dash" in notes[0] and "--device=cpu" in notes[0]
    assert undo_pasted_dashes(["--device=cpu"], note=notes.append) == ["--device=cpu"] and len(notes) == 1


def test_a_command_pasted_from_the_handout_trains(tiny_data, tmp_path, capsys):
    args = [a.replace("--", "\u2014", 1) for a in common_args(tiny_data, str(tmp_path / "o"), max_iters=2)]
    assert run("train", args) == 0
    assert f"read {len(args)} argument(s) starting with a typographic dash" in capsys.readouterr().err


@pytest.mark.slow  # spawns processes or runs a sweep
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_every_bench_script_answers_help_without_running(script, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # an empty directory: a script that ran would fail here
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[0] and "Traceback" not in done.stderr
    assert "python bench/" in done.stdout  # the usage line of its docstring


@pytest.mark.parametrize("variant,key", [("galore", "galore_rank"), ("apollo", "apollo_rank")])
def test_a_rank_not_below_the_width_says_it_saves_nothing(variant, key):
    note = low_rank_note(TrainConfig(optimizer_variant=variant, n_embd=128, **{key: 128}))
    assert note.startswith(f"note: {key}=128 is not below n_embd=128") and f"config/tuned_{variant}.py" in note
    assert low_rank_note(TrainConfig(optimizer_variant=variant, n_embd=128, **{key: 32})) == ""
    assert low_rank_note(TrainConfig(optimizer_variant="adamw", n_embd=16)) == ""


def test_the_low_rank_note_reaches_the_training_log(tiny_data, tmp_path):
    _, lines = run_train(tiny_config(tiny_data, tmp_path / "o", optimizer_variant="galore", galore_rank=64,
                                     max_iters=1))
    assert any(line.startswith("note: galore_rank=64 is not below n_embd=32") for line in lines)


def test_a_failed_command_leaves_no_out_dir_behind(tmp_path, capsys):
    assert run("train", [f"--out_dir={tmp_path / 'o'}", f"--data_dir={tmp_path / 'nodata'}", "--device=cpu"]) == 2
    assert "is not prepared" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_sigterm_while_compiling_on_cpu_stops_at_once(tiny_data, tmp_path):
    import signal
    from leangpt.device import c_compiler
    if c_compiler() is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    args = common_args(tiny_data, str(tmp_path / "o"), compile=True, max_iters=5)
    child = subprocess.Popen([sys.executable, "-m", "leangpt", "train", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**__import__("os").environ,
                                                                     "PYTHONUNBUFFERED": "1",
                                                                     "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind")})
    try:
        for line in child.stdout:
            if line.startswith("compiling the model"):
                assert "nanoGPT's own advice for CPUs is --compile=False" in line
                break
        child.send_signal(signal.SIGTERM)  # the first evaluation is compiling now
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # 130 from leangpt; once (in CI) the process, having printed "interrupted", ended by SIGINT
    # during interpreter shutdown while torch's compile workers were up: a stop all the same
    assert child.returncode in (130, -signal.SIGINT), err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted", err[-2000:]
    assert "iter 0:" not in out and "Traceback" not in err


@pytest.mark.slow  # spawns processes or runs a sweep
def test_setting_notes_reach_the_sweep_console_and_the_report(tiny_data, tmp_path, capsys):
    from leangpt.sweep import sweep
    base = tmp_path / "base.py"
    base.write_text(
        f"data_dir = {str(tiny_data)!r}\ndataset = 'tiny'\ndevice = 'cpu'\ncompile = False\n"
        "n_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\nbatch_size = 4\n"
        "gradient_accumulation_steps = 1\nmax_iters = 2\nlr_decay_iters = 2\nwarmup_iters = 1\n"
        "eval_interval = 2\neval_iters = 1\nlog_interval = 1\nlearning_rate = 1e-3\nmin_lr = 1e-4\n")
    sw = sweep([str(base), "--grid=optimizer_variant=adamsn,galore", f"--sweep_dir={tmp_path / 'sw'}"])
    console = capsys.readouterr().out
    assert "    note: optimizer_variant=adamsn at learning_rate=0.001 is 50x below its tuned 0.05" in console
    assert "    note: galore_rank=128 is not below n_embd=16" in console
    report = (sw / "report.md").read_text()
    galore = report[report.index("## optimizer_variant=galore"):]
    assert "- Note: galore_rank=128 is not below n_embd=16" in galore
    adamsn = report[report.index("## optimizer_variant=adamsn"):report.index("## optimizer_variant=galore")]
    assert "- Note: optimizer_variant=adamsn at learning_rate=0.001 is 50x below" in adamsn

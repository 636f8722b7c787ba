"""The third adversarial pass on sharded (fsdp=True) checkpoints: a crafted `.metadata` or a crafted
item inside a shard runs nothing, a damaged, truncated or missing file is one `error:` line naming
it before anything loads, export never reads beside a running trainer, and `ckpt.dcp` cannot point
out of its out_dir. One real 2-rank FSDP save is made once; each test damages its own copy."""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from leangpt import checkpoint, sharded_checkpoint
from leangpt.cli import run
from leangpt.fileio import directory_lock
from tests.helpers import TIMEOUT, common_args, free_port

pytestmark = pytest.mark.slow  # the fixture trains on 2 ranks under torchrun


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    """out_dir of a 2-rank FSDP run (adamsn, 4 iterations) with its sharded checkpoint."""
    from leangpt.data import prepare_dataset
    from tests.helpers import CORPUS
    root = tmp_path_factory.mktemp("sharded")
    prepare_dataset(CORPUS * 40, root / "data" / "tiny")
    _torchrun(common_args(root / "data", root / "run", fsdp=True, batch_size=4, gradient_accumulation_steps=2,
                          max_iters=4, eval_interval=4, optimizer_variant="adamsn"))
    return root / "run"


def _torchrun(args, expect=0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--rdzv-backend=c10d",
           f"--rdzv-endpoint=127.0.0.1:{free_port()}", "-m", "leangpt", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture
def out(saved_run, tmp_path) -> Path:
    """This test's own copy of the saved run (the link copied as a link)."""
    copy = tmp_path / "run"
    shutil.copytree(saved_run, copy, symlinks=True)
    return copy


def shards(out: Path) -> Path:
    return (out / "ckpt.dcp").resolve()


def export_error(out: Path, capsys) -> str:
    """The one line `leangpt export` prints (it must fail with exit 2 and no traceback)."""
    assert run("export", [f"--out_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def rerecord(out: Path) -> None:
    """What an attacker who rewrote files would also do: record their new digests in leangpt.pt,
    so that only the restricted unpickling stands between the files and the process."""
    directory = shards(out)
    extras = torch.load(directory / "leangpt.pt", weights_only=True)
    extras = {k: v for k, v in extras.items() if k != "digest"}
    extras["files"] = {p.name: sharded_checkpoint._sha256(p) for p in directory.iterdir() if p.name != "leangpt.pt"}
    checkpoint.save_atomic(extras, directory / "leangpt.pt")


class Payload:
    """Unpickling this creates the file `marker` (a shell command would run the same way)."""

    def __init__(self, marker: Path, then=None):
        self.marker, self.then = marker, then

    def __reduce__(self):
        if self.then is None:
            return (Path.touch, (self.marker,))
        # create the marker, then hand back the real object so that nothing else looks wrong
        return (_touch_then, (str(self.marker), self.then))


def _touch_then(marker, value):
    Path(marker).touch()
    return value


def test_a_crafted_metadata_runs_nothing_on_export(out, tmp_path, capsys):
    marker = tmp_path / "pwned"
    metadata_path = shards(out) / ".metadata"
    real = pickle.loads(metadata_path.read_bytes())  # the test's own trusted read of the clean file
    metadata_path.write_bytes(pickle.dumps(Payload(marker, real)))
    rerecord(out)
    line = export_error(out, capsys)
    assert not marker.exists()
    assert line.startswith(f"error: {metadata_path} asks to run ") and "refused (nothing in a checkpoint is executed)" in line
    assert not (out / "ckpt.pt").exists()


def test_a_crafted_item_inside_a_shard_runs_nothing(out, tmp_path, capsys):
    """DCP saves non-tensor items (an optimizer's lr, betas) as pickles inside the shard files and
    torch's planner loads them with weights_only=False: a save whose lr is a payload runs nothing."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from leangpt.config import TrainConfig
    from leangpt.model import GPT
    from leangpt.optim import build_optimizer
    directory = shards(out)
    extras = torch.load(directory / "leangpt.pt", weights_only=True)
    model = GPT(checkpoint.model_config(extras, out / "ckpt.pt"))
    model_sd, optim_sd = get_state_dict(model, build_optimizer(model, TrainConfig(optimizer_variant="adamsn")))
    marker = tmp_path / "pwned"
    optim_sd["param_groups"][0]["lr"] = Payload(marker, 1e-3)
    crafted = out / "ckpt.dcp-crafted"
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(crafted))
    shutil.copy(directory / "leangpt.pt", crafted / "leangpt.pt")
    (out / "ckpt.dcp").unlink()
    (out / "ckpt.dcp").symlink_to(crafted.name)
    rerecord(out)
    line = export_error(out, capsys)
    assert not marker.exists()
    assert "is not plain data" in line and "refused (nothing in a checkpoint is executed)" in line


def test_a_crafted_metadata_runs_nothing_on_an_fsdp_resume(out, tmp_path):
    marker = tmp_path / "pwned"
    metadata_path = shards(out) / ".metadata"
    metadata_path.write_bytes(pickle.dumps(Payload(marker, pickle.loads(metadata_path.read_bytes()))))
    rerecord(out)
    proc = resume(out)
    assert not marker.exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all(f"{metadata_path} asks to run " in e for e in errors), proc.stderr[-3000:]
    assert "Unpickl" not in proc.stderr and "CheckpointException" not in proc.stderr


def resume(out: Path) -> subprocess.CompletedProcess:
    """The saved run resumed on 2 ranks, expected to fail (torchrun exits 1 when a rank does)."""
    return _torchrun(common_args(_find_data(out), out, fsdp=True, batch_size=4, gradient_accumulation_steps=2,
                                 max_iters=6, eval_interval=4, optimizer_variant="adamsn", init_from="resume"),
                     expect=1)


def _find_data(out: Path) -> Path:
    config = torch.load(shards(out) / "leangpt.pt", weights_only=True)["config"]
    return Path(config["data_dir"])


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("target", ["shard", ".metadata"])
def test_a_damaged_file_is_one_line_naming_it(out, capsys, damage, target):
    directory = shards(out)
    path = directory / ("__0_0.distcp" if target == "shard" else ".metadata")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01  # inside a tensor's bytes for the shard
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.unlink()
    says = {"flip": "is damaged: its contents do not match the digest the save recorded",
            "truncate": f"is damaged: {len(data) // 2} bytes where the save wrote {len(data)}",
            "delete": "is missing: the sharded checkpoint is incomplete"}[damage]
    assert export_error(out, capsys) == f"error: {path} {says}"
    assert not (out / "ckpt.pt").exists()


def test_a_damaged_shard_is_one_line_per_rank_on_resume(out):
    path = shards(out) / "__1_0.distcp"
    path.write_bytes(path.read_bytes()[:100])
    proc = resume(out)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all(e.startswith(f"error: {path} is damaged: 100 bytes") for e in errors), \
        proc.stderr[-3000:]
    assert "CheckpointException" not in proc.stderr


def test_export_beside_a_running_trainer_is_refused_with_the_trainers_line(out, capsys):
    with directory_lock(out):  # what a trainer holds on its out_dir for the whole run
        line = export_error(out, capsys)
    assert line == f"error: out_dir={str(out)!r} is in use by process {os.getpid()}; wait for it to finish " \
                   "or choose another out_dir"
    assert run("export", [f"--out_dir={out}"]) == 0  # and it works once the trainer is gone
    assert checkpoint.load(out / "ckpt.pt")["iter_num"] == 4


def test_export_reads_the_save_the_link_named_when_it_opened(out, monkeypatch):
    """A link moved after the checkpoint was opened (by anything) does not pair one save's counters
    with another save's weights: every read is from the directory resolved once."""
    first = shards(out)
    other = out / "ckpt.dcp-other"
    shutil.copytree(first, other)
    opened = sharded_checkpoint.open_sharded

    def open_then_move(path):
        found = opened(path)
        (out / "ckpt.dcp").unlink()
        (out / "ckpt.dcp").symlink_to(other.name)
        shutil.rmtree(other)  # what was linked now is gone: reading through the link would fail
        return found
    monkeypatch.setattr(sharded_checkpoint, "open_sharded", open_then_move)
    sharded_checkpoint.export(str(out), log=lambda *_: None)
    assert checkpoint.load(out / "ckpt.pt")["iter_num"] == 4


def test_a_link_out_of_out_dir_is_refused(out, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(shards(out), elsewhere / "ckpt.dcp-x")
    (out / "ckpt.dcp").unlink()
    (out / "ckpt.dcp").symlink_to(elsewhere / "ckpt.dcp-x")
    line = export_error(out, capsys)
    assert line == (f"error: {out / 'ckpt.dcp'} points to {elsewhere / 'ckpt.dcp-x'}, outside {out}: a sharded "
                    "checkpoint is a directory of its out_dir; refused")


def test_every_file_the_save_wrote_is_recorded_by_its_rank(saved_run):
    directory = shards(saved_run)
    extras = torch.load(directory / "leangpt.pt", weights_only=True)
    written = sorted(p.name for p in directory.iterdir() if p.name != "leangpt.pt")
    assert sorted(extras["files"]) == written and {"__0_0.distcp", "__1_0.distcp", ".metadata"} <= set(written)
    for name in written:
        import hashlib
        data = (directory / name).read_bytes()
        assert extras["files"][name] == [len(data), hashlib.sha256(data).hexdigest()]

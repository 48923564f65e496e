"""Run folders under attack and failure: crafted checkpoints, transactional --overwrite, one
writer per folder (also across processes and crashes), file modes, corrupt metrics lines."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from phyll.cli import main
from phyll.experiments.run_callbacks import RunFolderWriter
from phyll.experiments.run_folder import RunFolder, RunFolderError, RunLock

TINY = ["--epochs", "1", "--measurements", "8", "--width", "4", "--quiet"]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "folder"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def siblings(out: Path) -> list[Path]:
    """Staging or old-run folders left beside ``out``."""
    return [p for p in out.parent.iterdir() if p.name.startswith(f"{out.name}.")]


class Payload:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_never_runs_its_payload(tmp_path, capsys):
    live = tmp_path / "live.pt"
    torch.save({"config": Payload(tmp_path / "proof")}, live)
    torch.load(live, weights_only=False)  # the file is a real attack: unrestricted loading runs it
    assert (tmp_path / "proof").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format": "phyll-run/1", "resolved": {}}))
    torch.save({"config": Payload(tmp_path / "marker")}, run / "checkpoint.pt")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "checkpoint.pt" in err and "Traceback" not in err
    assert not (tmp_path / "marker").exists()


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert main(["train", *TINY, "--record", "--out", str(out)]) == 0
    return out


def test_overwrite_that_fails_before_its_first_checkpoint_keeps_the_old_run(
    old_run, monkeypatch, capsys
):
    before = snapshot(old_run)

    def full_disk(self, path, state):
        raise RunFolderError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(RunFolder, "save", full_disk)
    argv = ["train", *TINY, "--seed", "1", "--record", "--out", str(old_run), "--overwrite"]
    assert main(argv) == 2
    assert "No space left" in capsys.readouterr().err
    assert snapshot(old_run) == before
    assert siblings(old_run) == []


def test_overwrite_swaps_in_the_new_run_at_its_first_checkpoint_and_it_resumes(
    old_run, monkeypatch, capsys
):
    def stop(self, engine, record):
        raise RunFolderError("stopped after the first checkpoints")

    with monkeypatch.context() as m:
        m.setattr(RunFolderWriter, "on_epoch_end", stop)
        argv = ["train", *TINY, "--seed", "1", "--record", "--out", str(old_run), "--overwrite"]
        assert main(argv) == 2
    capsys.readouterr()
    assert json.loads((old_run / "config.json").read_text())["seed"] == 1  # the new run
    assert not (old_run / "summary.json").exists()  # the old run's is gone
    assert siblings(old_run) == [] and not (old_run / ".lock").exists()
    assert main(["train", "--resume", str(old_run), "--quiet"]) == 0
    assert json.loads((old_run / "summary.json").read_text())["seed"] == 1
    assert list((old_run / "records").rglob("*.npz"))  # records followed the swap
    assert siblings(old_run) == []


def test_a_completed_overwrite_leaves_one_folder_no_lock_and_shared_file_modes(old_run):
    mask = os.umask(0o022)
    try:
        assert main(["train", *TINY, "--seed", "2", "--out", str(old_run), "--overwrite"]) == 0
    finally:
        os.umask(mask)
    assert json.loads((old_run / "summary.json").read_text())["seed"] == 2
    assert not (old_run / "records").exists()  # the old run's records went with it
    assert siblings(old_run) == [] and not (old_run / ".lock").exists()
    for name in ("config.json", "summary.json", "checkpoint.pt", "model.pt"):
        assert (old_run / name).stat().st_mode & 0o777 == 0o644, name
    assert old_run.stat().st_mode & 0o777 == 0o755


def test_a_second_process_is_refused_naming_the_holder_and_a_crash_releases_it(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(run / ".lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"  # no timing: it says when it holds
        assert main(["train", *TINY, "--out", str(run)]) == 2
        err = capsys.readouterr().err
        assert f"PID {holder.pid}" in err and len(err.splitlines()) == 1
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()  # a crash: the OS releases the lock
        holder.wait()
    lock = RunLock(run)  # a stale lock file is taken over
    assert (run / ".lock").read_text().strip() == str(os.getpid())
    lock.release()
    assert not (run / ".lock").exists()


def test_a_corrupt_metrics_line_is_named_and_a_torn_last_line_is_left_out(tmp_path):
    folder = RunFolder(tmp_path)
    folder.metrics_file.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert folder.read_metrics() == [{"epoch": 1}, {"epoch": 2}]
    folder.metrics_file.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(RunFolderError, match=r"metrics\.jsonl: line 2 is corrupt"):
        folder.read_metrics()

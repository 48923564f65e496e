"""A user's own fixed-size device (tests/user_device.py, NumPy only) end to end from the CLI:
trained with no size flags, interrupted by SIGINT, resumed bit-identically with --trust-code,
evaluated with only its module on the import path."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import user_device

from phyll.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "vowels7", "--system", "user_device:make", "--epochs", "12"]


#: measured durations and clock times: they differ run to run (device time is declared: kept)
MEASURED = re.compile(
    r"^(time|(epoch_)?(wall|digital|simulation|projected)_time_s.*|startup_s|bookkeeping_s|load_average.*)$"
)


def without_times(record: dict) -> dict:
    """A metrics line or summary without its measured durations."""
    return {k: v for k, v in record.items() if not MEASURED.match(k)}


def metrics(run: Path) -> list[dict]:
    return [without_times(json.loads(line)) for line in (run / "metrics.jsonl").open()]


def interrupt_at_call(monkeypatch, call: int) -> None:
    """The device's process gets a real SIGINT at its ``call``-th measurement (the harness
    wraps the device from outside; its module is not touched)."""
    calls = {"n": 0}
    measure = user_device.CavityEmulator.__call__

    def measure_then_signal(self, drive):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return measure(self, drive)

    monkeypatch.setattr(user_device.CavityEmulator, "__call__", measure_then_signal)


def test_a_users_fixed_size_device_trains_resumes_exactly_and_evaluates(
    tmp_path, monkeypatch, capsys
):
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert main([*TRAIN, "--out", str(reference), "--quiet"]) == 0
    config = json.loads((reference / "config.json").read_text())
    assert (config["width"], config["measurements"], config["system"]) == (20, 20, TRAIN[4])
    assert [s["n_inputs"] for s in config["resolved"]["systems"]] == [20, 20]
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.8 and summary["device_time"] == "declared"

    with monkeypatch.context() as patch:
        interrupt_at_call(patch, 150)  # mid-training, epoch 3 or so
        assert main([*TRAIN, "--out", str(run), "--quiet"]) == 130
    assert 0 < len(metrics(run)) < 12 and not (run / "summary.json").exists()
    capsys.readouterr()
    for argv in (["evaluate", str(run), "--dataset", "vowels7"], ["report", str(run)]):
        assert main(argv) == 2  # unfinished: the hint is a command that will not refuse
        assert f"phyll train --resume {run} --trust-code`" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--quiet"]) == 2  # no consent, nothing built
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "module 'user_device'" in error and "--trust-code" in error
    assert main(["train", "--resume", str(run), "--trust-code", "--quiet"]) == 0
    assert metrics(run) == metrics(reference)
    resumed = json.loads((run / "summary.json").read_text())
    assert without_times(resumed) == without_times(summary)

    # a new process, with only phyll and the device's module on the import path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    done = subprocess.run(
        [sys.executable, "-m", "phyll.cli", "evaluate", str(run), "--dataset", "vowels7",
         "--trust-code"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"test accuracy {summary['test_accuracy']:.3f}" in done.stdout
    assert "the run's own test split" in done.stdout

"""Whole-run clocks and the machine: wall time from the start of the work (start-up and
bookkeeping included), the load, torch's threads and the CPU in every summary; ``--threads``."""

from __future__ import annotations

import time

import pytest
import torch

from phyll import machine
from phyll.errors import ConfigError
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train


def test_the_summary_covers_the_whole_run_and_records_the_machine(tmp_path):
    started = time.perf_counter() - 2.0  # as if the process had spent 2 s importing
    before = time.perf_counter()
    summary = train(
        TrainConfig(epochs=2, width=16, measurements=32), tmp_path / "run", progress=False,
        started=started,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert summary["startup_s"] >= 2.0
    phases = sum(summary[f"wall_time_s_{p}"] for p in ("setup", "training", "evaluation"))
    assert summary["wall_time_s"] == pytest.approx(
        summary["startup_s"] + phases + summary["bookkeeping_s"]
    )
    assert 0.9 * elapsed <= summary["wall_time_s"] <= elapsed
    assert summary["bookkeeping_s"] > 0  # checkpoints, metrics and the figure
    assert summary["projected_time_s"] == pytest.approx(
        summary["device_time_s"] + summary["wall_time_s"] - summary["simulation_time_s"]
    )
    assert summary["torch_threads"] == torch.get_num_threads()
    assert summary["cores"] >= 1 and summary["cpu_model"]
    for key in ("load_average", "load_average_start"):
        assert summary[key] is None or len(summary[key]) == 3
    assert time.perf_counter() - before < elapsed


def test_auto_threads_take_the_idle_cores(monkeypatch):
    monkeypatch.setattr(machine, "available_cores", lambda: 8)
    monkeypatch.setattr(machine, "load_average", lambda: [2.6, 1.0, 1.0])
    assert machine.choose_threads("auto") == 5  # 8 cores, 3 busy
    monkeypatch.setattr(machine, "load_average", lambda: [11.0, 9.0, 9.0])
    assert machine.choose_threads(None) == 1  # a busy machine still gets one thread
    assert machine.choose_threads("3") == 3
    for bad in ("0", "many", -1):
        with pytest.raises(ConfigError, match="--threads"):
            machine.choose_threads(bad)


def test_the_process_started_before_now():
    age = time.perf_counter() - machine.process_start()
    assert 0 < age < 24 * 3600


def test_chance_is_the_majority_class_rate_of_the_test_split():
    from phyll.experiments.train import chance_accuracy

    assert chance_accuracy(torch.tensor([0, 1, 1, 1, 2])) == pytest.approx(0.6)
    assert chance_accuracy(torch.tensor([], dtype=torch.long)) is None

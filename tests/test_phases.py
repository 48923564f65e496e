"""Costs per phase: setup, training and evaluation add up to the totals; one-time work is setup."""

from __future__ import annotations

import pytest

from phyll.engine import PHASES
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train

QUANTITIES = ("physical_queries", "digital_flops", "wall_time_s", "simulation_time_s",
              "device_time_s", "energy_j")  # fmt: skip


def test_phases_add_up_to_the_totals_and_pat_fits_its_twin_in_setup():
    params = {"twin_samples": 200, "twin_epochs": 3, "twin_hidden": [32]}
    config = TrainConfig(rule="pat", epochs=2, width=16, measurements=32, rule_params=params)
    summary = train(config, progress=False)
    for quantity in QUANTITIES:
        parts = [summary[f"{quantity}_{phase}"] for phase in PHASES]
        if quantity == "wall_time_s":  # the whole run: start-up and bookkeeping too
            parts += [summary["startup_s"], summary["bookkeeping_s"]]
        assert summary[quantity] == pytest.approx(sum(parts)), quantity
    # setup: the twin's data (queries) and its fit (FLOPs), and the systems' calibration
    calibration = sum(s["calibration_queries"] for s in summary["systems"])
    assert summary["physical_queries_setup"] == 2 * 200 + calibration
    assert summary["digital_flops_setup"] > 0
    # device time is the acoustic window per query; the simulation's CPU time is separate
    assert summary["device_time_s"] == pytest.approx(0.01 * summary["physical_queries"])
    assert summary["simulation_time_s"] > 0
    assert summary["projected_time_s"] == pytest.approx(
        summary["device_time_s"] + summary["digital_time_s"]
    )


def test_a_default_digits_run_evaluates_with_fewer_queries_than_it_trains():
    short = TrainConfig(dataset="digits", epochs=3)
    summary = train(short, progress=False)
    splits = build_experiment(short).splits
    n_classes, n_val, n_test = 10, len(splits.y_val), len(splits.y_test)

    def evaluation(epochs: int) -> int:  # every label, validation each epoch, test once
        return short.blocks * n_classes * (epochs * n_val + n_test)

    def training(epochs: int) -> int:  # positives and negatives of every training sample
        return short.blocks * 2 * len(splits.y_train) * epochs

    assert summary["physical_queries_evaluation"] == evaluation(3)
    assert summary["physical_queries_training"] == training(3)
    default_epochs = TrainConfig(dataset="digits").epochs
    assert evaluation(default_epochs) < training(default_epochs)

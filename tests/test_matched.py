"""Controls of matched cost: the MLP whose digital FLOPs per inference equal PhyLL's, every
run's cost per inference, and the linear control's own epoch budget."""

from __future__ import annotations

import pytest

from phyll.experiments.compare import LINEAR_MIN_EPOCHS, entry_config
from phyll.experiments.config import TrainConfig
from phyll.experiments.matched import inference_flops, matched_mlp_width, mlp_config
from phyll.experiments.train import train

BASE = TrainConfig(dataset="vowels", width=16, measurements=32, epochs=1)


def test_the_matched_mlp_costs_what_phyll_costs_per_inference():
    target = inference_flops(BASE)
    width, flops = matched_mlp_width(BASE)
    assert abs(flops - target) <= 0.02 * target
    assert inference_flops(mlp_config(BASE, width)) == flops
    assert inference_flops(mlp_config(BASE, width + 8)) > flops  # the count grows with width
    config = entry_config("mlp-matched", BASE, seed=2, matched_width=width)
    assert (config.rule, config.use_physics, config.width, config.seed) == (
        "backprop-ideal", False, width, 2,
    )  # fmt: skip


def test_a_run_reports_its_cost_per_inference_from_the_final_test():
    summary = train(BASE, progress=False)
    # PhyLL predicts by goodness: every one of the 7 labels through each of the 2 blocks
    assert summary["physical_queries_per_inference"] == pytest.approx(2 * 7)
    assert summary["digital_flops_per_inference"] == pytest.approx(inference_flops(BASE), rel=0.02)
    assert summary["digital_parameters"] == (32 + 19 + 1) * 16 + (32 + 16 + 1) * 16


def test_the_linear_control_trains_its_own_epoch_budget():
    assert entry_config("linear", BASE, seed=0).epochs == LINEAR_MIN_EPOCHS
    long = TrainConfig(dataset="vowels", epochs=LINEAR_MIN_EPOCHS + 5)
    assert entry_config("linear", long, seed=0).epochs == LINEAR_MIN_EPOCHS + 5

"""The meter's reuse of repeated counts is exact: every rule's FLOPs equal a full count."""

from __future__ import annotations

import logging

import pytest
import torch

from phyll.accounting import Meter
from phyll.engine import PHASES, Engine, EvalPlan
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.learning import RULES

PAT = {"twin_samples": 100, "twin_epochs": 2, "twin_hidden": [16], "refit_every": 3}
CASES = {
    **{name: {} for name in sorted(RULES) if name != "pat"},
    "pat": PAT,
    "phyll-readout": {"prediction": "readout"},
    "phyll-sgd": {"optimizer": "sgd"},  # momentum's first step differs from the later ones
}


def fit(case: str, reuse: bool) -> Engine:
    rule = {"phyll-readout": "phyll", "phyll-sgd": "phyll"}.get(case, case)
    config = TrainConfig(
        rule=rule, epochs=3, width=16, measurements=32, rule_params=CASES[case],
        use_physics=rule != "linear",
    )  # fmt: skip
    exp = build_experiment(config)
    engine = Engine(
        exp.model, exp.rule, exp.splits, epochs=config.epochs, batch_size=config.batch_size,
        eval_plan=EvalPlan(), augment=exp.augment,
    )  # fmt: skip
    for meter in engine.meters.values():
        meter.reuse = reuse
    engine.fit()
    return engine


@pytest.mark.parametrize("case", sorted(CASES))
def test_reused_counts_equal_a_full_count_for_every_rule(case, caplog):
    with caplog.at_level(logging.WARNING, logger="phyll.accounting"):
        reused, counted = fit(case, reuse=True), fit(case, reuse=False)
    assert not caplog.records  # no audit found a signature that misses a change of work
    for phase in PHASES:
        a, b = reused.meters[phase].costs, counted.meters[phase].costs
        assert a.digital_flops_by_kind == b.digital_flops_by_kind, phase
        assert a.digital_flops == b.digital_flops > 0 or phase == "setup"
        assert a.physical_queries == b.physical_queries
    assert reused.meters["training"]._repeated  # the steps were reused, not all counted


def test_a_reused_count_is_audited_and_a_change_is_caught(caplog):
    meter = Meter()
    x = torch.ones(4, 4)
    with caplog.at_level(logging.WARNING, logger="phyll.accounting"):
        for run in range(40):
            rows = 4 if run < 20 else 2  # the work changes after its count was confirmed
            with meter.measure("step"):
                _ = x[:rows] * 2.0
    assert "changed between runs" in caplog.text  # the audit at the 32nd run saw it
    assert "step" in meter._irregular
    with meter.measure("step"):  # from then on every run is counted
        _ = x[:1] * 2.0
    assert meter.costs.digital_flops == 32 * 16 + 8 * 8 + 4


def test_nested_meters_never_reuse_counts():
    outer, inner = Meter(), Meter()
    x = torch.ones(8, 8)
    with outer.measure():
        for _ in range(5):
            with inner.measure("step"):
                _ = x @ x
    assert inner.costs.digital_flops == outer.costs.digital_flops == 5 * 2 * 8**3
    assert not inner._repeated

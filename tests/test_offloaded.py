"""Offloaded FLOPs: the digital work each physical query replaced, counted on the nominal model."""

from __future__ import annotations

import pytest
import torch

from phyll.accounting import Meter, count_flops
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train
from phyll.registry import make_system
from phyll.systems.faults import FAULTS
from tests.conftest import numpy_square_law

SYSTEMS = {
    "acoustic": ("acoustic", {}),
    "acoustic-phase": ("acoustic", {"encoding": "phase", "speaker_saturation": 0.5}),
    "microwave": ("microwave", {}),
    "microwave-1bit": ("microwave", {"control": "1-bit"}),
    "optical": ("optical", {}),
    "optical-shg-amplitude": ("optical", {"nonlinearity": "shg", "encoding": "amplitude"}),
    "optical-linear": ("optical", {"nonlinearity": "none"}),
    "random-features": ("random-features", {}),
}


def one_query_of_the_design(system) -> int:
    """FLOPs of the nominal model measuring one mid-range drive, counted here directly."""
    design = system.nominal()
    with torch.no_grad():
        return count_flops(design._measure, torch.full((1, design.n_inputs), 0.5))


@pytest.mark.parametrize("case", sorted(SYSTEMS))
def test_the_per_query_figure_is_the_nominal_model_counted_on_one_sample(case):
    name, params = SYSTEMS[case]
    system = make_system(name, 12, 20, seed=1, **params)
    flops = system.emulation_flops_per_query
    assert flops == one_query_of_the_design(system)
    # at least the complex field on every output (a real product onto (re, im): 4 FLOPs per
    # input and output) for the square-law systems; the microwave solve costs far more
    assert flops >= 4 * 12 * 20
    assert system.describe()["emulation_flops_per_query"] == flops
    wrapped = FAULTS["noise"](FAULTS["quantize"](system, bits=2), std=0.1)
    assert wrapped.emulation_flops_per_query == flops  # faults are not part of the design


def test_systems_without_a_digital_model_report_none():
    system = numpy_square_law(12, 20)
    assert system.emulation_flops_per_query is None
    assert system.describe()["emulation_flops_per_query"] is None
    meter = Meter()
    with meter.measure():
        system(torch.rand(5, 12))
    assert meter.costs.physical_queries == 5 and meter.costs.offloaded_flops == 0


def test_a_metered_call_offloads_its_queries_and_counting_is_not_digital_work():
    system = make_system("acoustic", 12, 20, seed=1)  # its figure not yet counted
    meter = Meter()
    with meter.measure():
        system(torch.rand(7, 12))  # counts the figure now, inside the meter
    assert meter.costs.offloaded_flops == 7 * one_query_of_the_design(system)
    assert meter.costs.digital_flops == 0  # neither the physics nor the emulation count
    with meter.measure():
        system(torch.rand(3, 12))
    assert meter.costs.offloaded_flops == 10 * system.emulation_flops_per_query


def test_a_digital_model_offloads_nothing():
    control = make_system("random-features", 12, 20)
    assert control.emulation_flops_per_query is not None
    meter = Meter()
    with meter.measure():
        control(torch.rand(4, 12))
    assert meter.costs.offloaded_flops == 0 and meter.costs.digital_flops > 0


SMALL = dict(dataset="vowels", epochs=2, width=16, measurements=24)


def test_a_run_reports_offloaded_flops_per_phase_from_its_queries():
    summary = train(TrainConfig(**SMALL), progress=False)
    phases = [summary[f"offloaded_flops_{p}"] for p in ("setup", "training", "evaluation")]
    assert summary["offloaded_flops"] == sum(phases) and min(phases) > 0
    per_query = [s["emulation_flops_per_query"] for s in summary["systems"]]
    calibration = [s["calibration_queries"] for s in summary["systems"]]
    queries = summary["queries_per_system"]
    assert summary["offloaded_flops_setup"] == sum(
        c * f for c, f in zip(calibration, per_query, strict=True)
    )
    assert summary["offloaded_flops"] == sum(
        (q + c) * f for q, c, f in zip(queries, calibration, per_query, strict=True)
    )


def test_in_silico_training_and_black_boxes_offload_nothing_they_do_not_query():
    ideal = train(TrainConfig(**SMALL, rule="backprop-ideal"), progress=False)
    assert ideal["offloaded_flops"] == ideal["physical_queries"] == 0
    black_box = train(
        TrainConfig(**SMALL),
        progress=False,
        system_factory=lambda block, n_in, n_out: numpy_square_law(n_in, n_out, seed=block),
    )
    assert black_box["physical_queries"] > 0 and black_box["offloaded_flops"] == 0
    assert [s["emulation_flops_per_query"] for s in black_box["systems"]] == [None, None]

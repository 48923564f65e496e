"""FLOPs, queries and time come from instrumentation; the physics is not digital work."""

from __future__ import annotations

import pytest
import torch

from phyll.accounting import Meter, count_flops
from phyll.systems import AcousticCavity


def test_matmul_flops_are_counted_as_two_per_multiply_accumulate():
    a, b = torch.rand(8, 16), torch.rand(16, 4)
    meter = Meter()
    with meter.measure():
        a @ b
    assert meter.costs.digital_flops == 2 * 8 * 16 * 4


def test_physical_system_work_is_excluded_from_digital_flops_and_counted_as_queries():
    system = AcousticCavity(16, 32)
    x, w = torch.rand(10, 16), torch.rand(32, 5)
    physics = count_flops(system, x)  # the simulation and the drive/measurement checks
    # the transfer to 32 complex pressures, a real product onto interleaved (re, im): physics
    assert physics >= 2 * 10 * 16 * (2 * 32)
    meter = Meter()
    with meter.measure():
        z = system(x)
        z @ w
    assert meter.costs.digital_flops == 2 * 10 * 32 * 5  # the learner's matmul only
    assert meter.costs.digital_flops_by_kind == {
        "matmul": 2 * 10 * 32 * 5, "fft": 0, "linalg": 0, "elementwise": 0,
    }  # fmt: skip
    assert meter.costs.physical_queries == 10
    # device time: the 10 ms acoustic window per query; energy: power × that same time
    assert meter.costs.device_time_s == pytest.approx(10 * 0.01)
    assert meter.costs.physical_energy_j == pytest.approx(system.power_w * 10 * 0.01)
    assert meter.costs.physical_energy_j == pytest.approx(10 * system.energy_per_query_j)
    assert 0 < meter.costs.simulation_time_s <= meter.costs.wall_time_s
    assert meter.costs.projected_time_s == pytest.approx(
        meter.costs.device_time_s + meter.costs.digital_time_s
    )


def test_backward_flops_are_counted():
    w = torch.rand(16, 4, requires_grad=True)
    x = torch.rand(8, 16)
    meter = Meter()
    with meter.measure():
        (x @ w).sum().backward()
    # forward 2·8·16·4 and the sum's 8·4 adds, backward w.r.t. w: another 2·8·16·4 (no grad
    # for x; the sum's backward only broadcasts)
    assert meter.costs.digital_flops == 4 * 8 * 16 * 4 + 8 * 4


def test_nested_meters_both_count():
    outer, inner = Meter(), Meter()
    a = torch.rand(4, 4)
    with outer.measure():
        a @ a
        with inner.measure():
            a @ a
    assert inner.costs.digital_flops == 128
    assert outer.costs.digital_flops == 256


def test_nested_meters_both_exclude_the_physics_and_count_its_queries():
    system = AcousticCavity(16, 32)
    x = torch.rand(10, 16)
    outer, inner = Meter(), Meter()
    with outer.measure():
        torch.exp(x)
        with inner.measure():
            system(x)
    assert inner.costs.digital_flops == 0  # the system call, its checks included, is physics
    assert outer.costs.digital_flops == 8 * x.numel()
    assert inner.costs.physical_queries == outer.costs.physical_queries == 10


def test_the_meter_counts_by_the_same_rules_as_count_flops():
    layer = torch.nn.Linear(6, 3)
    optimizer = torch.optim.Adam(layer.parameters())
    x, y = torch.rand(5, 6), torch.randint(0, 3, (5,))

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(torch.nn.functional.silu(layer(x)), y).backward()
        optimizer.step()

    step()  # Adam's state exists from here on: every later step does the same work
    meter = Meter()
    with meter.measure():
        step()
    assert meter.costs.digital_flops == count_flops(step) > 22 * (6 * 3 + 3)


def test_costs_subtract_to_windows_and_meters_accumulate():
    meter = Meter()
    a = torch.rand(4, 4)
    with meter.measure():
        a @ a
    first = meter.snapshot()
    with meter.measure():
        a @ a
        a @ a
    window = meter.snapshot() - first
    assert window.digital_flops == 256 and first.digital_flops == 128
    assert window.digital_time_s >= 0

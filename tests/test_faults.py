"""Fault wrappers: each is a physical system around any other, composable, seeded, counted once."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from phyll.accounting import Meter
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import TrainingError, train
from phyll.registry import make_system
from phyll.systems import (
    AcousticCavity,
    CallableSystem,
    DriveError,
    NonFiniteMeasurementError,
)
from phyll.systems.faults import (
    FAULTS,
    Drift,
    DriveQuantization,
    Latency,
    MeasurementNoise,
    NaNBursts,
    StepPerturbation,
)


def identity(n: int = 4) -> CallableSystem:
    return CallableSystem(lambda d: d.copy(), n, n, power_w=1.0, measurement_time_s=1e-3)


def quiet_acoustic() -> AcousticCavity:
    return AcousticCavity(4, 8, noise_std=0.0, adc_bits=None)


def test_a_wrapped_query_is_counted_once_however_deep_the_stack():
    inner = identity()
    stack = Latency(MeasurementNoise(DriveQuantization(inner, bits=3), std=0.0))
    meter = Meter()
    with meter.measure():
        stack(torch.rand(7, 4))
    assert meter.costs.physical_queries == 7
    assert meter.costs.physical_energy_j == pytest.approx(7e-3)
    assert inner.queries == stack.queries == stack.inner.queries == 7


def test_wrappers_keep_the_drive_contract():
    strict = CallableSystem(lambda d: d.copy(), 3, 3, out_of_range="raise")
    wrapped = MeasurementNoise(strict, std=0.01)
    assert wrapped.drive_range == strict.drive_range and wrapped.out_of_range == "raise"
    with pytest.raises(DriveError, match=r"expects drive of shape \[batch, 3\]"):
        wrapped(torch.rand(2, 4))
    with pytest.raises(DriveError, match="outside"):
        wrapped(torch.tensor([[0.5, 1.5, 0.2]]))


def test_measurement_noise_has_the_set_std_and_is_seeded():
    drive = torch.full((5000, 4), 0.5)
    noisy = MeasurementNoise(identity(), std=0.03, seed=1)
    residual = noisy(drive) - 0.5
    assert abs(float(residual.std()) - 0.03) < 0.001 and abs(float(residual.mean())) < 0.001
    again = MeasurementNoise(identity(), std=0.03, seed=1)
    assert torch.equal(again(drive[:9]), MeasurementNoise(identity(), std=0.03, seed=1)(drive[:9]))
    relative = MeasurementNoise(identity(), std=0.1, relative=True)(torch.full((4000, 4), 0.2))
    assert abs(float((relative / 0.2 - 1).std()) - 0.1) < 0.005


def test_drive_quantization_rounds_to_levels_with_a_straight_through_gradient():
    one_bit = DriveQuantization(identity(), bits=1)
    assert torch.equal(
        one_bit(torch.tensor([[0.2, 0.49, 0.51, 0.9]])), torch.tensor([[0, 0, 1, 1.0]])
    )
    design = DriveQuantization(quiet_acoustic(), bits=2)
    x = torch.rand(3, 4, requires_grad=True)
    design(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_drift_spreads_like_a_random_walk_over_queries():
    finals = []
    for seed in range(300):
        drift = Drift(identity(), std=0.5, per_queries=100, target="gain", seed=seed)
        for _ in range(40):
            drift(torch.full((10, 4), 0.5))  # 400 queries = 4 × per_queries
        finals.append(drift.log_gain)
    assert abs(np.std(finals) - 0.5 * 2.0) < 0.1 and abs(np.mean(finals)) < 0.12


def test_drift_walks_the_systems_own_parameter():
    room = quiet_acoustic()
    drift = Drift(room, std=0.2, per_queries=10, seed=3)
    for _ in range(5):
        drift(torch.rand(10, 4))
    assert room.temperature_c == pytest.approx(20.0 + drift.displacement)
    assert drift.displacement != 0.0


def test_step_perturbation_fires_once_at_the_chosen_query_count():
    room = quiet_acoustic()
    step = StepPerturbation(room, at_query=20, strength=2.0)
    reference = quiet_acoustic()
    drive = torch.rand(10, 4)
    assert torch.allclose(step(drive), reference(drive))  # queries 0-9
    step(drive)  # 10-19
    assert room.temperature_c == 20.0
    after = step(drive)  # starts at 20: perturbed
    assert room.temperature_c == 22.0 and step.applied_at == 20
    reference.perturb(2.0)
    assert torch.allclose(after, reference(drive))
    step(drive)
    assert room.temperature_c == 22.0  # only once
    with pytest.raises(ValueError, match="already applied"):
        step.schedule(100)


def test_gain_target_works_on_a_black_box_without_a_perturbation_model():
    box = identity()
    assert not box.perturbable
    with pytest.raises(NotImplementedError, match="no perturbation model"):
        box.perturb(1.0)
    with pytest.raises(ValueError, match="use target='gain'"):
        StepPerturbation(box, at_query=0)
    step = StepPerturbation(box, at_query=None, strength=0.5, target="gain")
    drive = torch.full((2, 4), 0.4)
    assert torch.allclose(step(drive), drive)
    step.schedule(step.queries)
    assert torch.allclose(step(drive), 1.5 * drive)


def test_nan_bursts_are_refused_loudly_and_span_calls():
    with pytest.raises(NonFiniteMeasurementError, match="NaN/inf in 8 of 8"):
        NaNBursts(identity(), rate=1.0)(torch.rand(8, 4))
    bursts = NaNBursts(identity(), rate=0.0)
    state = bursts.state_dict()
    state["remaining"] = 3  # a burst of 3 samples in progress
    bursts.load_state_dict(state)
    with pytest.raises(NonFiniteMeasurementError, match="in 2 of 2"):
        bursts(torch.rand(2, 4))
    with pytest.raises(NonFiniteMeasurementError, match="in 1 of 4"):
        bursts(torch.rand(4, 4))
    assert torch.isfinite(bursts(torch.rand(4, 4))).all()


def test_nan_bursts_stop_training_naming_the_block():
    def factory(i: int, n_in: int, n_out: int):
        system = make_system("acoustic", n_in, n_out, seed=i)
        return NaNBursts(system, rate=0.002, length=4, seed=i) if i == 1 else system

    with pytest.raises(TrainingError, match="block 1"):
        train(TrainConfig(epochs=3), progress=False, system_factory=factory)


def test_latency_is_counted_as_device_time():
    slow = Latency(identity(), per_call_s=0.02, per_sample_s=0.001)
    meter = Meter()
    start = time.perf_counter()
    with meter.measure():
        slow(torch.rand(10, 4))
    assert time.perf_counter() - start >= 0.03
    assert meter.costs.simulation_time_s >= 0.03
    # the inner device's 1 ms per query, plus the wait: 10 ms + 20 ms + 10 × 1 ms
    assert meter.costs.device_time_s == pytest.approx(0.04)


def test_wrappers_compose_delegate_and_restore_their_state():
    def build() -> Drift:
        return Drift(MeasurementNoise(quiet_acoustic(), std=0.01, seed=2), std=0.3, seed=5)

    system = build()
    assert system.perturbable and system.differentiable
    assert system.describe()["inner"]["fault"]["class"] == "MeasurementNoise"
    design = system.nominal()
    assert isinstance(design, AcousticCavity) and design.noise_std == 0
    system(torch.rand(6, 4))
    state, drive = system.state_dict(), torch.rand(5, 4)
    expected = system(drive)
    other = build()
    other.load_state_dict(state)
    assert torch.equal(other(drive), expected) and other.queries == 11
    assert set(FAULTS) == {"noise", "quantize", "drift", "step", "nan-bursts", "latency"}

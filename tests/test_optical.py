"""Physical behaviour of the optical layer: SLM, scattering medium, absorber, free space, camera."""

from __future__ import annotations

import math

import pytest
import torch

from phyll.systems import OpticalSystem
from phyll.systems.optical import angular_spectrum


def ideal(**kw) -> OpticalSystem:
    base = {"grid": 12, "shot_noise": False, "read_noise_e": 0.0, "bit_depth": None}
    return OpticalSystem(10, 20, **{**base, **kw})


def total_power(field: torch.Tensor) -> torch.Tensor:
    return (field.abs() ** 2).flatten(1).sum(1)


def test_same_seed_same_medium_and_noise_stream():
    drive = torch.rand(8, 10, generator=torch.Generator().manual_seed(1))
    a, b = OpticalSystem(10, 20, grid=12, seed=4), OpticalSystem(10, 20, grid=12, seed=4)
    assert torch.equal(a(drive), b(drive))
    assert not torch.allclose(a(drive), OpticalSystem(10, 20, grid=12, seed=5)(drive), atol=0.01)


def test_lossless_medium_and_free_space_conserve_power():
    system = ideal(nonlinearity="none")
    drive = torch.rand(16, 10)
    slm = total_power(system.slm_field(drive))
    assert torch.allclose(slm, torch.full_like(slm, system.power_w), rtol=1e-6)
    after_medium = total_power(system.medium_field(drive))
    assert torch.allclose(after_medium, slm.float(), rtol=1e-4)
    after_space = total_power(system.propagate(system.medium_field(drive)))
    assert torch.allclose(after_space, after_medium, rtol=1e-4)
    h = angular_spectrum(16, 8e-6, 8e-7, 1e-3)
    assert torch.allclose(h.abs(), torch.ones_like(h.abs()))  # unitary transfer function


def test_saturable_absorber_is_passive_and_bleaches_with_intensity():
    system = ideal()
    field = system.medium_field(torch.rand(16, 10))
    out = system.nonlinear(field)
    assert (total_power(out) <= total_power(field)).all()
    weak = torch.full((1, 1), math.sqrt(0.01 * system.i_sat), dtype=torch.complex64)
    strong = torch.full((1, 1), math.sqrt(100 * system.i_sat), dtype=torch.complex64)
    transmission = [float((system.nonlinear(f) / f).abs() ** 2) for f in (weak, strong)]
    assert transmission[0] == pytest.approx(math.exp(-3.0 / 1.01), rel=1e-4)  # OD 3, I/Isat 0.01
    assert transmission[1] > 0.95  # bleached


def test_camera_detects_square_law_intensity():
    system = ideal(nonlinearity="none", encoding="amplitude")
    drive = 0.4 * torch.rand(8, 10)
    assert torch.allclose(system(2 * drive), 4 * system(drive), rtol=1e-4, atol=1e-7)


def test_shot_noise_variance_equals_mean_over_full_well():
    system = ideal(shot_noise=True, full_well_e=2000.0)
    drive = torch.full((4000, 10), 0.3)
    clean = ideal(full_well_e=2000.0)(drive[:1])[0]
    out = system(drive)
    bright = clean > 0.05
    assert torch.allclose(out.mean(0)[bright], clean[bright], rtol=0.02)
    ratio = out.var(0)[bright] * 2000.0 / clean[bright]
    assert abs(float(ratio.mean()) - 1.0) < 0.05


def test_camera_bit_depth_sets_the_levels():
    out = OpticalSystem(10, 20, grid=12, bit_depth=6)(torch.rand(32, 10))
    assert torch.allclose(out * 63, torch.round(out * 63), atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1


def test_medium_change_decorrelates_the_speckle_and_is_reversible():
    system = ideal()
    drive = torch.rand(64, 10)
    field0 = system.medium_field(drive).flatten(1)

    def correlation() -> float:
        field = system.medium_field(drive).flatten(1)
        return float((field0.conj() * field).sum().abs() / (field0.abs() ** 2).sum())

    system.perturb(0.1)
    slight = correlation()
    system.perturb(0.9)
    new = correlation()
    assert slight > 0.9 and new < 0.35
    system.perturb(-1.0)
    assert correlation() == pytest.approx(1.0, abs=1e-4)


def test_state_dict_restores_counter_medium_and_noise_stream():
    system = OpticalSystem(10, 20, grid=12)
    system(torch.rand(5, 10))
    system.perturb(0.3)
    state, drive = system.state_dict(), torch.rand(3, 10)
    expected = system(drive)
    other = OpticalSystem(10, 20, grid=12)
    other.load_state_dict(state)
    assert other.queries == 5 and other.theta == pytest.approx(0.3)
    assert torch.equal(other(drive), expected)


def test_nominal_is_the_design_and_offers_an_autograd_path():
    real = OpticalSystem(10, 20, grid=12, fabrication_std=0.2)
    design = real.nominal()
    drive = torch.rand(32, 10)
    assert float((real(drive) - design(drive)).abs().mean()) > 0.01
    assert torch.allclose(design(drive), ideal(fabrication_std=0.0)(drive), rtol=1e-4, atol=1e-6)
    x = torch.rand(3, 10, requires_grad=True)
    design(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_too_many_channels_for_the_grid_is_refused():
    with pytest.raises(ValueError, match="grid 4 has 16 modes"):
        OpticalSystem(20, 8, grid=4)

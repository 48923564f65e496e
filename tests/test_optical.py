"""Physical behaviour of the optical layer: SLM, scattering medium, absorber, free space, camera."""

from __future__ import annotations

import math

import pytest
import torch

from phyll.systems import OpticalSystem
from phyll.systems.optical import angular_spectrum, auto_grid


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


@pytest.mark.parametrize("model", ["gaussian", "poisson"])
def test_shot_noise_variance_equals_mean_over_full_well(model):
    system = ideal(shot_noise=True, shot_noise_model=model, full_well_e=2000.0)
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


def test_the_grid_is_sized_to_the_channels_by_default():
    assert auto_grid(128) == (8, 16) and auto_grid(2048) == (32, 64)
    assert auto_grid(794) == (25, 32) and auto_grid(1) == (1, 1) and auto_grid(3) == (2, 2)
    for n in range(1, 3000, 37):
        rows, cols = auto_grid(n)
        assert rows * cols >= n and rows <= cols <= 2 * rows
    big = OpticalSystem(794, 2048)  # the mnist5k block that a fixed 24 × 24 grid refused
    assert big.grid == (32, 64) and big(torch.rand(3, 794)).shape == (3, 2048)
    assert OpticalSystem(794, 128).grid == (25, 32)
    assert OpticalSystem(10, 20, grid=12).grid == (12, 12)
    assert OpticalSystem(10, 20, grid=(4, 6)).grid == (4, 6)


@pytest.mark.parametrize("encoding", ["phase", "amplitude"])
@pytest.mark.parametrize("nonlinearity", ["saturable", "shg", "none"])
@pytest.mark.parametrize("grid", [None, 12])
def test_folded_fast_path_matches_the_step_by_step_physics(encoding, nonlinearity, grid):
    system = OpticalSystem(
        10, 20, grid=grid, encoding=encoding, nonlinearity=nonlinearity, fabrication_std=0.3
    )
    drive = torch.rand(16, 10)
    field = system.propagate(system.nonlinear(system.medium_field(drive))).flatten(1)
    if system.n_outputs < system.n_modes:
        field = field[:, system._readout]
    reference = field.abs() ** 2
    fast = system.intensity(drive)
    assert torch.allclose(fast, reference, rtol=1e-4, atol=1e-6 * float(reference.max()))
    system.perturb(0.4)  # the folded matrices follow the medium
    field = system.propagate(system.nonlinear(system.medium_field(drive))).flatten(1)
    if system.n_outputs < system.n_modes:
        field = field[:, system._readout]
    assert torch.allclose(system.intensity(drive), field.abs() ** 2, rtol=1e-4, atol=1e-9)


def test_chunked_batches_give_the_same_measurements():
    drive = torch.rand(50, 10)
    ideal_camera = {"shot_noise": False, "read_noise_e": 0.0, "bit_depth": None, "seed": 3}
    whole = OpticalSystem(10, 20, **ideal_camera)
    chunked = OpticalSystem(10, 20, max_chunk_elements=100, **ideal_camera)
    assert chunked._chunk_rows < 50
    assert torch.allclose(whole(drive), chunked(drive), rtol=1e-5, atol=1e-7)

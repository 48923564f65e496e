"""Physical behaviour of the metasurface-programmed microwave cavity (coupled-dipole model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import j0

from phyll.registry import make_system
from phyll.systems import MicrowaveCavity


def ideal(**kw) -> MicrowaveCavity:
    return MicrowaveCavity(12, 12, noise_std=0.0, adc_bits=None, n_scatterers=4, **kw)


@pytest.fixture(scope="module")
def cavity() -> MicrowaveCavity:
    return ideal()


def test_same_seed_same_cavity_and_noise_stream():
    drive = torch.rand(8, 12, generator=torch.Generator().manual_seed(1))
    a, b = MicrowaveCavity(12, 12, seed=2), MicrowaveCavity(12, 12, seed=2)
    assert torch.equal(a(drive), b(drive))
    assert not torch.allclose(a(drive), MicrowaveCavity(12, 12, seed=3)(drive), atol=1e-3)


def test_interaction_matrix_is_symmetric_and_the_channel_reciprocal(cavity):
    drive = torch.rand(4, 12)
    w = cavity.interaction_matrix(drive)
    assert np.allclose(w, np.swapaxes(w, -1, -2))
    h = cavity.port_matrix(drive)
    assert torch.allclose(h, h.transpose(-1, -2), atol=1e-5 * float(h.abs().max()))  # S21 = S12


def test_schur_complement_solve_equals_inverting_the_full_interaction_matrix(cavity):
    drive = torch.rand(3, 12)
    full = np.linalg.inv(cavity.interaction_matrix(drive))
    ports = slice(0, cavity.n_antennas)
    direct = torch.from_numpy(full[:, :, ports, ports]).to(torch.complex64)
    fast = cavity.port_matrix(drive)
    assert torch.allclose(fast, direct, rtol=1e-3, atol=1e-4 * float(direct.abs().max()))


def test_energy_balance_source_power_is_radiated_plus_absorbed_and_bounds_what_is_received(
    cavity,
):
    """Optical theorem of the passive dipole model: Im(eᴴp) = pᴴ(J0/4)p + Σγ|p|²."""
    drive = torch.rand(5, 12)
    w = cavity.interaction_matrix(drive)[:, 0]  # first frequency
    e = np.zeros((5, w.shape[-1]), dtype=np.complex128)
    e[:, 0] = 1.0  # feed antenna 0
    p = np.linalg.solve(w, e[..., None])[..., 0]
    drawn = np.einsum("bi,bi->b", e.conj(), p).imag
    pos = cavity.positions()
    kernel = 0.25 * j0(cavity._k[0] * np.linalg.norm(pos[:, None] - pos[None], axis=-1))
    radiated = np.einsum("bi,ij,bj->b", p.conj(), kernel, p).real
    absorbed_each = cavity.losses() * np.abs(p) ** 2
    assert (radiated >= 0).all() and (drawn > 0).all()
    assert np.allclose(drawn, radiated + absorbed_each.sum(1), rtol=1e-8)
    received = absorbed_each[:, 1 : cavity.n_antennas].sum(1)  # loads of the other antennas
    assert (received < drawn).all()  # a passive cavity returns less than it is given


def test_multiple_scattering_couples_the_metasurface_elements(cavity):
    """Toggling two elements is not the sum of toggling each: the response is nonlinear."""
    base = torch.full((1, 12), 0.0)
    one, two, both = base.clone(), base.clone(), base.clone()
    one[0, 0] = two[0, 5] = 1.0
    both[0, [0, 5]] = 1.0
    h0, h1, h2, h12 = (cavity.port_matrix(d) for d in (base, one, two, both))
    interaction = (h12 - h0) - ((h1 - h0) + (h2 - h0))
    assert float(interaction.abs().max()) > 0.01 * float((h12 - h0).abs().max())


def test_one_bit_control_responds_only_to_the_element_state():
    system = ideal(control="1-bit")
    low, high = torch.full((2, 12), 0.1), torch.full((2, 12), 0.9)
    assert torch.allclose(system(low), system(low * 3))  # 0.1 and 0.3 are both state 0
    assert not torch.allclose(system(low), system(high))


def test_received_power_is_nonnegative_in_full_scale_units():
    out = make_system("microwave", 12, 24, noise_std=0.0)(torch.rand(128, 12))
    assert out.min() >= 0 and out.max() <= 1
    assert 0.1 < float(out.mean()) < 0.5  # gain staging: mean ≈ 1/4 full scale


def test_detector_noise_has_the_set_standard_deviation():
    drive = torch.full((1500, 6), 0.5)
    clean = MicrowaveCavity(6, 8, noise_std=0.0, adc_bits=None)(drive[:1])
    noisy = MicrowaveCavity(6, 8, noise_std=0.02, adc_bits=None)(drive)
    noise = noisy - clean
    assert abs(float(noise.std()) - 0.02) < 0.001 and abs(float(noise.mean())) < 0.001


def test_moving_a_scatterer_changes_the_channel_and_moving_it_back_restores_it(cavity):
    drive = torch.rand(16, 12)
    before = cavity(drive)
    cavity.perturb(1.0)
    moved = cavity(drive)
    cavity.perturb(-1.0)
    assert float((moved - before).abs().mean()) > 0.05 * float(before.mean())
    assert torch.allclose(cavity(drive), before, rtol=1e-4, atol=1e-6)


def test_state_dict_restores_counter_displacement_and_noise_stream():
    system = MicrowaveCavity(6, 8, noise_std=0.05)
    system(torch.rand(5, 6))
    system.perturb(0.7)
    state, drive = system.state_dict(), torch.rand(3, 6)
    expected = system(drive)
    other = MicrowaveCavity(6, 8, noise_std=0.05)
    other.load_state_dict(state)
    assert other.queries == 5 and other.displacement_cm == pytest.approx(0.7)
    assert torch.equal(other(drive), expected)


def test_nominal_is_the_design_and_offers_an_autograd_path():
    real = MicrowaveCavity(12, 12, fabrication_std=0.01, noise_std=0.01)
    design = real.nominal()
    drive = torch.rand(32, 12)
    assert float((real(drive) - design(drive)).abs().mean()) > 0.005
    exact = MicrowaveCavity(12, 12, fabrication_std=0.0, noise_std=0.0, adc_bits=None)
    assert torch.allclose(design(drive), exact(drive))
    x = torch.rand(3, 12, requires_grad=True)
    design(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_large_metasurfaces_are_solved_in_memory_bounded_chunks():
    # above 128 elements the CPU solve runs on one thread (multi-threaded batched LU fails)
    from phyll.systems.microwave import calibration_drives

    assert calibration_drives(64) == 512 and calibration_drives(794) == 32
    drive = torch.rand(5, 150, generator=torch.Generator().manual_seed(0))
    system = MicrowaveCavity(150, 12, noise_std=0.0, adc_bits=None)
    assert system._chunk_rows >= 5
    whole = system(drive)
    system._chunk_rows = 2  # what max_chunk_elements=2 * 4 * 150**2 sets
    out = system(drive)
    assert out.shape == (5, 12) and torch.isfinite(out).all()
    assert torch.allclose(whole, out, rtol=1e-4, atol=1e-6)
    assert MicrowaveCavity(8, 4, max_chunk_elements=2 * 4 * 8**2)._chunk_rows == 2


def dense_reference(system: MicrowaveCavity, drive: torch.Tensor) -> torch.Tensor:
    """The measurement by definition: invert the full W (complex128), |H_rt(f)|² per bin."""
    h = np.linalg.inv(system.interaction_matrix(drive))  # every dipole, no Schur complement
    rx, tx = np.triu_indices(system.n_antennas, k=1)
    j = np.arange(system.n_outputs)
    pair, freq = j // system.n_freqs, j % system.n_freqs
    power = np.abs(h[:, freq, rx[pair], tx[pair]]) ** 2
    return torch.from_numpy(power).float() / system._full_scale


@pytest.mark.parametrize("n_inputs", [12, 150])  # threaded and single-thread solves
def test_the_in_place_batched_solve_measures_what_the_dense_definition_gives(n_inputs):
    per_sample = 4 * n_inputs**2  # chunks of 3 samples: 3 + 3 + 1, then 2 in the workspace
    system = MicrowaveCavity(
        n_inputs, 10, noise_std=0.0, adc_bits=None, max_chunk_elements=3 * per_sample
    )
    drive = torch.rand(7, n_inputs, generator=torch.Generator().manual_seed(4))
    expected = dense_reference(system, drive)
    tolerance = {"rtol": 2e-3, "atol": 1e-4 * float(expected.abs().max())}
    torch.testing.assert_close(system(drive), expected, **tolerance)
    workspace = system._workspace[0].data_ptr()
    torch.testing.assert_close(system(drive[:2]), expected[:2], **tolerance)
    assert system._workspace[0].data_ptr() == workspace  # reused, not reallocated
    x = drive.clone().requires_grad_(True)  # the autograd path (solve_ex) agrees
    with_grad = system.port_matrix(x)
    torch.testing.assert_close(with_grad.detach(), system.port_matrix(drive))
    assert with_grad.requires_grad

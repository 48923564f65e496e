"""Physical behaviour of the acoustic reverberant cavity (not just shapes)."""

from __future__ import annotations

import math

import torch

from phyll.systems import AcousticCavity
from phyll.systems.acoustic import speed_of_sound


def ideal(**kw) -> AcousticCavity:
    return AcousticCavity(6, 12, noise_std=0.0, adc_bits=None, **kw)


def test_same_seed_same_room_and_noise_stream():
    drive = torch.rand(16, 6, generator=torch.Generator().manual_seed(3))
    a, b = AcousticCavity(6, 12, seed=4), AcousticCavity(6, 12, seed=4)
    assert torch.equal(a(drive), b(drive))
    assert not torch.equal(a(drive), AcousticCavity(6, 12, seed=5)(drive))


def test_square_law_detection_scales_with_drive_squared():
    system = ideal()
    drive = 0.4 * torch.rand(8, 6)
    assert torch.allclose(system(2 * drive), 4 * system(drive), rtol=1e-4, atol=1e-7)


def test_superposition_of_pressures_not_powers():
    """Interference: the power of two speakers together is not the sum of their powers."""
    system = ideal()
    a = torch.zeros(1, 6)
    a[0, 0] = 1.0
    b = torch.zeros(1, 6)
    b[0, 1] = 1.0
    together, separate = system(a + b), system(a) + system(b)
    assert not torch.allclose(together, separate, rtol=0.05)
    # ... but the cross term is bounded by 2·sqrt(Pa·Pb) (Cauchy–Schwarz)
    cross = (together - separate).abs()
    assert (cross <= 2 * torch.sqrt(system(a) * system(b)) + 1e-6).all()


def test_measurements_are_nonnegative_powers_in_full_scale_units():
    system = AcousticCavity(6, 12, noise_std=0.0)
    out = system(torch.rand(256, 6))
    assert out.min() >= 0 and out.max() <= 1
    assert 0.1 < float(out.mean()) < 0.5  # gain staging: mean power ≈ 1/4 of full scale


def test_detector_noise_has_the_set_standard_deviation():
    system = AcousticCavity(4, 64, noise_std=0.02, adc_bits=None, seed=1)
    drive = torch.full((2000, 4), 0.5)
    clean = AcousticCavity(4, 64, noise_std=0.0, adc_bits=None, seed=1)(drive[:1])
    noise = system(drive) - clean
    assert abs(float(noise.std()) - 0.02) < 0.001
    assert abs(float(noise.mean())) < 0.001


def test_adc_quantizes_to_the_set_number_of_levels():
    system = AcousticCavity(4, 16, noise_std=0.0, adc_bits=4)
    out = system(torch.rand(64, 4))
    assert torch.allclose(out * 15, torch.round(out * 15), atol=1e-5)


def test_temperature_changes_the_speed_of_sound_and_rephases_the_room():
    assert math.isclose(speed_of_sound(20.0), 343.2, rel_tol=1e-3)
    system = ideal()
    drive = torch.rand(4, 6)
    before = system(drive)
    system.set_temperature(21.0)
    after = system(drive)
    assert not torch.allclose(before, after, rtol=0.01)
    system.set_temperature(20.0)
    assert torch.allclose(system(drive), before, rtol=1e-5, atol=1e-7)


def test_passive_room_each_bin_power_bounded_by_incoherent_sum():
    """|Σ_n H_n a_n|² ≤ (Σ_n |H_n| a_n)²: the room cannot create energy."""
    system = ideal()
    drive = torch.rand(32, 6)
    bound = (drive.to(torch.complex64).abs() @ system._transfer.abs().T) ** 2
    assert (system._power(drive) <= bound * (1 + 1e-5)).all()


def test_phase_encoding_is_periodic_free_within_range_and_differs_from_amplitude():
    phase = ideal(encoding="phase")
    drive = torch.rand(8, 6)
    assert not torch.allclose(phase(drive), ideal()(drive))
    # a common phase shift of all speakers leaves every power unchanged
    shifted = (drive * 0.5 + 0.25).clamp(0, 1)
    assert torch.allclose(phase(shifted), phase(shifted - 0.2), rtol=1e-3, atol=1e-6)


def test_speaker_saturation_compresses_loud_drive():
    linear, saturating = ideal(), ideal(speaker_saturation=0.5)
    loud = torch.ones(1, 6)
    assert float(saturating(loud).sum()) < float(linear(loud).sum())


def test_autograd_path_exists_for_in_silico_baselines():
    system = AcousticCavity(6, 12)
    assert system.differentiable
    drive = torch.rand(3, 6, requires_grad=True)
    system(drive).sum().backward()
    assert drive.grad is not None and torch.isfinite(drive.grad).all()


def test_state_dict_restores_counter_temperature_and_noise_stream():
    system = AcousticCavity(4, 8, noise_std=0.05, adc_bits=None)
    system(torch.rand(5, 4))
    system.set_temperature(25.0)
    state = system.state_dict()
    drive = torch.rand(3, 4)
    expected = system(drive)
    other = AcousticCavity(4, 8, noise_std=0.05, adc_bits=None)
    other.load_state_dict(state)
    assert other.queries == 5 and other.temperature_c == 25.0
    assert torch.equal(other(drive), expected)


def test_nominal_model_is_the_design_without_noise_or_fabrication_error():
    real = AcousticCavity(6, 12, fabrication_std_m=0.01, noise_std=0.01)
    design = real.nominal()
    assert design.differentiable and design.noise_std == 0 and design.adc_bits is None
    drive = torch.rand(64, 6)
    gap = (real(drive) - design(drive)).abs().mean()
    assert gap > 0.01  # the built room is not the design
    exact = AcousticCavity(6, 12, fabrication_std_m=0.0, noise_std=0.0, adc_bits=None)
    assert torch.allclose(design(drive), exact(drive))


def test_microphone_count_sets_the_frequencies_per_microphone():
    system = AcousticCavity(6, 24, n_mics=3)
    assert system.n_mics == 3 and system.n_freqs == 8
    assert system(torch.rand(2, 6)).shape == (2, 24)


def test_perturbation_is_a_reversible_temperature_step():
    system = ideal()
    drive = torch.rand(4, 6)
    before = system(drive)
    system.perturb(10.0)
    assert system.temperature_c == 30.0 and system.perturbable
    assert not torch.allclose(system(drive), before, rtol=0.05)
    system.perturb(-10.0)
    assert torch.allclose(system(drive), before, rtol=1e-5, atol=1e-7)

r"""Optical layer: SLM → scattering medium → saturable absorber → free space → camera.

Physics
-------
A laser of power ``laser_power_w`` and wavelength ``wavelength_m`` illuminates a spatial light
modulator of ``n_inputs`` macro-pixels. Each macro-pixel carries :math:`P/n` of the power and
encodes its drive :math:`a_n \in [0, 1]` as a phase :math:`\varphi_n = \pi a_n`
(``encoding="phase"``, a phase-only liquid-crystal SLM) or as an amplitude (``"amplitude"``):

.. math:: e_n = \sqrt{P/n}\; e^{i \pi a_n} \quad \text{or} \quad e_n = \sqrt{P/n}\; a_n .

**Scattering medium.** The light crosses a thick multiple-scattering medium described by its
transmission matrix (Popoff et al., PRL 2010) onto a ``grid × grid`` array of output modes
(pixels of pitch ``pixel_pitch_m``): :math:`E = T(\theta) e`. :math:`T_0` has orthonormal columns
drawn at random (the transmission of a lossless medium into the observed modes: a random
unitary's columns), so :math:`\|T_0 e\|^2 = \|e\|^2`: the medium conserves power.

**Nonlinearity** (``nonlinearity``): a thin saturable absorber of small-signal optical depth
``optical_depth`` (OD) on the output face, ``"saturable"``:

.. math:: E' = E \exp\!\Big(-\frac{\mathrm{OD}/2}{1 + |E|^2/I_{sat}}\Big), \qquad
          I_{sat} = s \cdot P / N_{modes}

(``saturation`` = s, relative to the mean speckle intensity, so bright speckle grains bleach the
absorber and dim ones are absorbed); ``"shg"``: second-harmonic generation in a thin
:math:`\chi^{(2)}` crystal, :math:`E' \propto E^2` (propagating at :math:`\lambda/2`);
``"none"``: linear optics.

**Free-space propagation** over ``distance_m`` to the camera by the angular spectrum method:
:math:`E_{cam} = \mathcal F^{-1}[\mathcal F[E'] \, e^{i z \sqrt{k^2 - k_x^2 - k_y^2}}]` on the
grid's periodic window; with pitch > λ/2 every plane wave propagates, so the step is unitary
(power conserved, Parseval).

**Camera.** ``n_outputs`` pixels of the ``grid × grid`` sensor (a seeded readout subset) detect
the intensity :math:`I = |E_{cam}|^2` (square law). The exposure is set once (gain staging,
analytic: the mean pixel collects ``full_well_e / 4`` photo-electrons); each pixel counts
:math:`N \sim \mathrm{Poisson}(\bar N)` electrons (shot noise, ``shot_noise``), plus Gaussian
read noise ``read_noise_e``, clipped at the full well, digitised by a ``bit_depth``-bit ADC.
Outputs are in full-well units, in [0, 1]; the shot-noise variance of an output ``o`` is
``o / full_well_e``.

Fabrication error: the built SLM's macro-pixels have a static phase error of std
``fabrication_std`` rad (surface flatness, LC thickness); :meth:`OpticalSystem.nominal` is the
design (no error, no noise, ideal camera). Perturbation: :meth:`OpticalSystem.perturb` changes
the medium: :math:`T(\theta) = T_0 \exp(i\theta H)`, H Hermitian with a Haar eigenbasis and
eigenvalues uniform in :math:`[-\pi, \pi]` (a drifting scattering layer at the medium's input
face); the transmitted field keeps a mean correlation :math:`\sin(\pi\theta)/(\pi\theta)` with
the original: θ = 1 is a new medium, θ = 0.1 a slight change.

Parameters (SI units)
---------------------
=================== ================================================================ ========
parameter           meaning                                                          default
=================== ================================================================ ========
n_inputs            SLM macro-pixels (drive channels), at most grid²                 —
n_outputs           camera pixels read out, at most grid²                            —
grid                modes / camera pixels per side                                   24
encoding            "phase" or "amplitude" SLM                                       phase
nonlinearity        "saturable", "shg" or "none"                                     saturable
optical_depth       small-signal optical depth of the absorber                       3.0
saturation          saturation intensity / mean speckle intensity                    1.0
wavelength_m        laser wavelength                                                 8.0e-7
pixel_pitch_m       mode / camera pixel pitch                                        8.0e-6
distance_m          absorber → camera propagation distance                           1.0e-3
full_well_e         camera full-well capacity (electrons)                            10000
read_noise_e        camera read noise (electrons rms)                                2.0
shot_noise          Poisson photon statistics on/off                                 True
bit_depth           camera ADC bits, None = ideal                                    12
fabrication_std     static phase error of each SLM macro-pixel (rad)                 0.05
laser_power_w       laser power on the SLM (W)                                       1e-3
exposure_s          camera exposure per sample (s)                                   1e-3
seed                medium, readout pixels, fabrication and noise stream             0
=================== ================================================================ ========

Energy per query = ``laser_power_w × exposure_s`` (1 µJ: a 1 mW laser, 1 ms frame).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from phyll.systems.base import OutOfRange, PhysicalSystem
from phyll.systems.detection import quantize_straight_through

Encoding = Literal["phase", "amplitude"]
Nonlinearity = Literal["saturable", "shg", "none"]


def haar_columns(rows: int, cols: int, generator: torch.Generator) -> Tensor:
    """``cols`` orthonormal columns of a Haar-random ``rows × rows`` unitary (complex128)."""
    z = torch.complex(
        torch.randn(rows, cols, generator=generator, dtype=torch.float64),
        torch.randn(rows, cols, generator=generator, dtype=torch.float64),
    )
    q, r = torch.linalg.qr(z)
    return q * (torch.diagonal(r) / torch.diagonal(r).abs())  # fix phases: exactly Haar


def angular_spectrum(grid: int, pitch_m: float, wavelength_m: float, distance_m: float) -> Tensor:
    """Free-space transfer function ``exp(i z k_z)`` on the grid's FFT frequencies."""
    k = 2 * math.pi / wavelength_m
    freqs = 2 * math.pi * torch.fft.fftfreq(grid, d=pitch_m, dtype=torch.float64)
    kx, ky = torch.meshgrid(freqs, freqs, indexing="ij")
    kz2 = k**2 - kx**2 - ky**2
    if (kz2 < 0).any():
        raise ValueError("pixel pitch below λ/2: evanescent waves on the grid; enlarge the pitch")
    return torch.polar(torch.ones_like(kz2), distance_m * torch.sqrt(kz2))


class OpticalSystem(PhysicalSystem):
    """SLM encoding → scattering medium → nonlinearity → free space → camera (module docstring)."""

    differentiable = True
    perturbation = "medium decorrelation θ: field correlation sin(πθ)/(πθ), θ = 1 a new medium"
    typical_perturbation = 0.3

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        *,
        grid: int = 24,
        encoding: Encoding = "phase",
        nonlinearity: Nonlinearity = "saturable",
        optical_depth: float = 3.0,
        saturation: float = 1.0,
        wavelength_m: float = 8.0e-7,
        pixel_pitch_m: float = 8.0e-6,
        distance_m: float = 1.0e-3,
        full_well_e: float = 10000.0,
        read_noise_e: float = 2.0,
        shot_noise: bool = True,
        bit_depth: int | None = 12,
        fabrication_std: float = 0.05,
        laser_power_w: float = 1e-3,
        exposure_s: float = 1e-3,
        seed: int = 0,
        out_of_range: OutOfRange = "clip",
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            n_inputs,
            n_outputs,
            drive_range=(0.0, 1.0),
            out_of_range=out_of_range,
            power_w=laser_power_w,
            measurement_time_s=exposure_s,
            device=device,
        )
        n_modes = grid * grid
        if n_inputs > n_modes or n_outputs > n_modes:
            raise ValueError(
                f"grid {grid} has {n_modes} modes: need n_inputs ({n_inputs}) and n_outputs "
                f"({n_outputs}) <= {n_modes}; enlarge it (system parameter grid=N)"
            )
        if encoding not in ("phase", "amplitude"):
            raise ValueError(f"encoding must be 'phase' or 'amplitude', got {encoding!r}")
        if nonlinearity not in ("saturable", "shg", "none"):
            raise ValueError(f"nonlinearity must be saturable, shg or none, got {nonlinearity!r}")
        if min(optical_depth, read_noise_e, fabrication_std) < 0 or saturation <= 0:
            raise ValueError("optical_depth, read_noise_e, fabrication_std >= 0; saturation > 0")
        self.params: dict[str, Any] = {
            "grid": grid,
            "encoding": encoding,
            "nonlinearity": nonlinearity,
            "optical_depth": optical_depth,
            "saturation": saturation,
            "wavelength_m": wavelength_m,
            "pixel_pitch_m": pixel_pitch_m,
            "distance_m": distance_m,
            "full_well_e": full_well_e,
            "read_noise_e": read_noise_e,
            "shot_noise": shot_noise,
            "bit_depth": bit_depth,
            "fabrication_std": fabrication_std,
            "laser_power_w": laser_power_w,
            "exposure_s": exposure_s,
            "seed": seed,
        }
        self.grid, self.encoding, self.nonlinearity = grid, encoding, nonlinearity
        self.optical_depth, self.full_well_e = optical_depth, full_well_e
        self.read_noise_e, self.shot_noise, self.bit_depth = read_noise_e, shot_noise, bit_depth
        self.power_w = laser_power_w
        self.i_sat = saturation * laser_power_w / n_modes

        medium = torch.Generator().manual_seed(seed)
        self._t0 = haar_columns(n_modes, n_inputs, medium)  # [N, n_in]
        basis = haar_columns(n_inputs, n_inputs, medium)
        spectrum = math.pi * (2 * torch.rand(n_inputs, generator=medium, dtype=torch.float64) - 1)
        self._drift_basis, self._drift_spectrum = basis, spectrum
        self._readout = torch.randperm(n_modes, generator=medium)[:n_outputs].to(self.device)
        built = torch.Generator().manual_seed(seed + 3)
        self._slm_error = fabrication_std * torch.randn(n_inputs, generator=built)
        nl_wavelength = wavelength_m / 2 if nonlinearity == "shg" else wavelength_m
        self._propagator = (
            angular_spectrum(grid, pixel_pitch_m, nl_wavelength, distance_m)
            .to(torch.complex64)
            .to(self.device)
        )
        self._noise = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.theta = 0.0
        self._build_medium()
        self.calibration_queries = 512  # the gain-staging drives below
        self._exposure = self._calibrate_exposure(torch.Generator().manual_seed(seed + 2))

    # ------------------------------------------------------------------ physics
    def _build_medium(self) -> None:
        """``T(θ) = T0 exp(iθH)`` with ``H = V diag(λ) V^H``."""
        phases = torch.polar(
            torch.ones_like(self._drift_spectrum), self.theta * self._drift_spectrum
        )
        evolution = (self._drift_basis * phases) @ self._drift_basis.conj().T
        self._medium = (self._t0 @ evolution).to(torch.complex64).to(self.device)

    def slm_field(self, drive: Tensor) -> Tensor:
        """Complex field of each macro-pixel (√W units): ``[B, n_inputs]``."""
        amplitude = math.sqrt(self.power_w / self.n_inputs)
        error = self._slm_error.to(drive.device)
        if self.encoding == "phase":
            return amplitude * torch.polar(torch.ones_like(drive), math.pi * drive + error)
        return amplitude * drive * torch.polar(torch.ones_like(drive), error.expand_as(drive))

    def medium_field(self, drive: Tensor) -> Tensor:
        """Field on the medium's output modes, ``[B, grid, grid]``."""
        field = self.slm_field(drive).to(torch.complex64) @ self._medium.T
        return field.view(-1, self.grid, self.grid)

    def nonlinear(self, field: Tensor) -> Tensor:
        """The pointwise nonlinear optical step on the output face."""
        if self.nonlinearity == "saturable":
            intensity = field.real**2 + field.imag**2
            return field * torch.exp(-0.5 * self.optical_depth / (1 + intensity / self.i_sat))
        if self.nonlinearity == "shg":
            return field * field / math.sqrt(self.i_sat)  # χ(2) conversion, normalised
        return field

    def propagate(self, field: Tensor) -> Tensor:
        """Angular-spectrum free-space propagation to the camera (unitary)."""
        return torch.fft.ifft2(torch.fft.fft2(field) * self._propagator)

    def intensity(self, drive: Tensor) -> Tensor:
        """Noise-free intensity on the read-out camera pixels (W per pixel)."""
        field = self.propagate(self.nonlinear(self.medium_field(drive))).flatten(1)
        field = field[:, self._readout]
        return field.real**2 + field.imag**2

    def _calibrate_exposure(self, generator: torch.Generator) -> float:
        drives = torch.rand(512, self.n_inputs, generator=generator).to(self.device)
        with torch.no_grad():
            mean = float(self.intensity(drives).mean())
        return 0.25 * self.full_well_e / max(mean, 1e-30)  # electrons per (W per pixel)

    def _measure(self, drive: Tensor) -> Tensor:
        electrons = self.intensity(drive) * self._exposure
        if self.shot_noise:
            counts = torch.poisson(electrons.detach(), generator=self._noise)
            electrons = electrons + (counts - electrons).detach()  # straight-through
        if self.read_noise_e > 0:
            noise = torch.randn(
                electrons.shape, generator=self._noise, device=self.device, dtype=electrons.dtype
            )
            electrons = electrons + self.read_noise_e * noise
        signal = electrons / self.full_well_e
        if self.bit_depth is not None:
            return quantize_straight_through(signal, self.bit_depth)
        return signal

    def nominal(self) -> OpticalSystem:
        """The design: same medium and seed, flat SLM, no noise, ideal camera."""
        params = {
            **self.params,
            "fabrication_std": 0.0,
            "shot_noise": False,
            "read_noise_e": 0.0,
            "bit_depth": None,
        }
        return OpticalSystem(
            self.n_inputs, self.n_outputs, out_of_range=self.out_of_range, device=self.device,
            **params,
        )  # fmt: skip

    # ------------------------------------------------------------------ knobs
    def perturb(self, strength: float = 1.0) -> None:
        """Change the medium by a decorrelation ``strength`` (θ; see module docstring)."""
        self.set_medium_change(self.theta + float(strength))

    def set_medium_change(self, theta: float) -> None:
        self.theta = float(theta)
        self._build_medium()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "theta": self.theta, "noise_rng": self._noise.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.set_medium_change(state["theta"])
        self._noise.set_state(state["noise_rng"])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.params, "theta": self.theta}

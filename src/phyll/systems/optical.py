r"""Optical layer: SLM → scattering medium → saturable absorber → free space → camera.

Physics
-------
A laser of power ``laser_power_w`` and wavelength ``wavelength_m`` illuminates a spatial light
modulator of ``n_inputs`` macro-pixels. Each macro-pixel carries :math:`P/n` of the power and
encodes its drive :math:`a_n \in [0, 1]` as a phase :math:`\varphi_n = \pi a_n`
(``encoding="phase"``, a phase-only liquid-crystal SLM) or as an amplitude (``"amplitude"``):

.. math:: e_n = \sqrt{P/n}\; e^{i \pi a_n} \quad \text{or} \quad e_n = \sqrt{P/n}\; a_n .

**Scattering medium.** The light crosses a thick multiple-scattering medium described by its
transmission matrix (Popoff et al., PRL 2010) onto a ``rows × cols`` array of output modes
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

**Camera.** ``n_outputs`` pixels of the ``rows × cols`` sensor detect the intensity
:math:`I = |E_{cam}|^2` (square law): every pixel in raster order when the sensor has exactly
``n_outputs`` pixels (the automatic grid's usual case), else a seeded subset of them, read in
raster order. The exposure is set once (gain staging, analytic: the mean pixel collects
``full_well_e / 4`` photo-electrons); each pixel counts :math:`N` photo-electrons of mean
:math:`\bar N` with shot noise (``shot_noise``), plus Gaussian read noise ``read_noise_e``,
clipped at the full well, digitised by a ``bit_depth``-bit ADC. Outputs are in full-well units,
in [0, 1]; the shot-noise variance of an output ``o`` is ``o / full_well_e``.

Shot noise is drawn from the Gaussian approximation of the Poisson law,
:math:`N = \bar N + \sqrt{\bar N + \sigma_{read}^2}\,\xi` with :math:`\xi \sim \mathcal N(0, 1)`
(``shot_noise_model="gaussian"``, the default): same mean and variance as
Poisson(:math:`\bar N`) plus read noise; the Poisson skewness :math:`1/\sqrt{\bar N}` it drops is
0.02 at the mean pixel (2,500 e⁻) and only matters for pixels below ~25 e⁻, whose noise (≤ 5 e⁻)
is within two ADC steps of zero (12 bits over 10,000 e⁻: 2.4 e⁻ per step). It is one normal
draw per pixel instead of a Poisson draw (≈ 10× cheaper on a CPU). ``"poisson"`` draws exact
Poisson counts.

**Grid.** ``grid=None`` (default) sizes the medium's output modes and the sensor to the channel
counts: the ``rows × cols`` rectangle of smallest area with ``rows·cols ≥ max(n_inputs,
n_outputs)`` (a lossless medium needs at least ``n_inputs`` output modes; the camera needs
``n_outputs`` pixels), ``rows ≤ cols ≤ 2·rows`` and both sides products of 2, 3 and 5 (fast
FFTs); ties go to the squarer one. E.g. 64 → 128 channels: 8 × 16; 794 → 2,048: 32 × 64;
794 → 128: 25 × 32. ``grid=N`` asks for an ``N × N`` window and ``grid=(rows, cols)`` for a
rectangle; both must hold the channels.

Fabrication error: the built SLM's macro-pixels have a static phase error of std
``fabrication_std`` rad (surface flatness, LC thickness); :meth:`OpticalSystem.nominal` is the
design (no error, no noise, ideal camera). Perturbation: :meth:`OpticalSystem.perturb` changes
the medium: :math:`T(\theta) = T_0 \exp(i\theta H)`, H Hermitian with a Haar eigenbasis and
eigenvalues uniform in :math:`[-\pi, \pi]` (a drifting scattering layer at the medium's input
face); the transmitted field keeps a mean correlation :math:`\sin(\pi\theta)/(\pi\theta)` with
the original: θ = 1 is a new medium, θ = 0.1 a slight change.

Computation
-----------
The simulation is vectorised torch (CPU or CUDA) and does the least work the physics allows:
the SLM's per-pixel amplitude and fabrication phase are folded into the medium matrix
(``[n_inputs, modes]``, rebuilt when the medium changes), so the medium is one matrix product
per batch (complex for a phase SLM; for an amplitude SLM a real product whose interleaved
real/imaginary output is viewed as the complex field: half the arithmetic); the absorber runs in
place; free space is one FFT pair on the ``rows × cols`` grid. With ``nonlinearity="none"``
everything between the SLM and the camera is linear, so medium, free space and pixel readout
fold into one ``[n_inputs, n_outputs]`` matrix. Large batches are processed in chunks of at most
``max_chunk_elements`` complex field values (memory bound; results identical).

Parameters (SI units)
---------------------
=================== ================================================================ ========
parameter           meaning                                                          default
=================== ================================================================ ========
n_inputs            SLM macro-pixels (drive channels)                                —
n_outputs           camera pixels read out                                           —
grid                output modes / camera pixels: None (auto), N (N × N), (rows, cols) None
encoding            "phase" or "amplitude" SLM                                       phase
nonlinearity        "saturable", "shg" or "none"                                     saturable
optical_depth       small-signal optical depth of the absorber                       3.0
saturation          saturation intensity / mean speckle intensity                    1.0
wavelength_m        laser wavelength                                                 8.0e-7
pixel_pitch_m       mode / camera pixel pitch                                        8.0e-6
distance_m          absorber → camera propagation distance                           1.0e-3
full_well_e         camera full-well capacity (electrons)                            10000
read_noise_e        camera read noise (electrons rms)                                2.0
shot_noise          photon shot noise on/off                                         True
shot_noise_model    "gaussian" (variance = mean) or "poisson" (exact counts)         gaussian
bit_depth           camera ADC bits, None = ideal                                    12
fabrication_std     static phase error of each SLM macro-pixel (rad)                 0.05
laser_power_w       laser power on the SLM (W)                                       1e-3
exposure_s          camera exposure per sample (s)                                   1e-3
max_chunk_elements  largest batch × modes simulated at once (memory bound)           2**22
seed                medium, readout pixels, fabrication and noise stream             0
=================== ================================================================ ========

Energy per query = ``laser_power_w × exposure_s`` (1 µJ: a 1 mW laser, 1 ms frame).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor

from phyll.errors import ConfigError
from phyll.params import as_plain, check, param
from phyll.systems.base import MemoryNeed, OutOfRange, PhysicalSystem
from phyll.systems.detection import quantize_straight_through

Encoding = Literal["phase", "amplitude"]
Nonlinearity = Literal["saturable", "shg", "none"]
ShotNoiseModel = Literal["gaussian", "poisson"]
Grid = int | tuple[int, int] | list[int] | None


def haar_columns(rows: int, cols: int, generator: torch.Generator) -> Tensor:
    """``cols`` orthonormal columns of a Haar-random ``rows × rows`` unitary (complex128),
    drawn from ``generator`` (which ends as if it had drawn them here).

    The QR factorisation costs seconds at camera sizes (4,096 × 784) and a system's design
    model (:meth:`OpticalSystem.nominal`: PAT, in-silico backprop, the emulation count) needs
    the same medium again, so the last few are kept (:func:`_haar_from`), keyed by the
    generator's state: the same draw is never factorised twice. The result is shared: read it,
    never write into it.
    """
    q, end = _haar_from(rows, cols, generator.get_state().numpy().tobytes())
    generator.set_state(end)
    return q


@functools.lru_cache(maxsize=4)
def _haar_from(rows: int, cols: int, state: bytes) -> tuple[Tensor, Tensor]:
    """The factorised draw of :func:`haar_columns` from a generator state (its bytes: the
    cache key), and the generator's state after it."""
    generator = torch.Generator()
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    z = torch.complex(
        torch.randn(rows, cols, generator=generator, dtype=torch.float64),
        torch.randn(rows, cols, generator=generator, dtype=torch.float64),
    )
    q, r = torch.linalg.qr(z)
    return q * (torch.diagonal(r) / torch.diagonal(r).abs()), generator.get_state()


def _smooth(n: int) -> bool:
    """Whether ``n`` has no prime factor above 5 (fast FFT length)."""
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def auto_grid(n_modes: int) -> tuple[int, int]:
    """Smallest ``rows × cols ≥ n_modes``, ``rows ≤ cols ≤ 2 rows``, sides 5-smooth; squarest."""
    if n_modes < 1:
        raise ConfigError(f"need at least one mode, got {n_modes}")
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    for rows in range(1, 2 * math.isqrt(n_modes) + 3):
        if not _smooth(rows):
            continue
        cols = max(rows, -(-n_modes // rows))
        while not _smooth(cols):
            cols += 1
        if cols > 2 * rows:
            continue
        key = (rows * cols, cols - rows)
        if best is None or key < best[0]:
            best = (key, (rows, cols))
    assert best is not None
    return best[1]


def resolve_grid(grid: Grid, n_inputs: int, n_outputs: int) -> tuple[int, int]:
    """The ``(rows, cols)`` of the medium's output modes and camera (module docstring)."""
    if grid is None:
        return auto_grid(max(n_inputs, n_outputs))
    if isinstance(grid, int):
        shape = (grid, grid)
    else:
        if len(grid) != 2:
            raise ConfigError(f"grid must be None, N or (rows, cols), got {grid!r}")
        shape = (int(grid[0]), int(grid[1]))
    if min(shape) < 1:
        raise ConfigError(f"grid sides must be positive, got {grid!r}")
    n_modes = shape[0] * shape[1]
    if n_inputs > n_modes or n_outputs > n_modes:
        name = f"{shape[0]}" if shape[0] == shape[1] else f"{shape[0]}x{shape[1]}"
        raise ConfigError(
            f"grid {name} has {n_modes} modes: need n_inputs ({n_inputs}) and n_outputs "
            f"({n_outputs}) <= {n_modes}; enlarge it or leave grid=None (automatic)"
        )
    return shape


def angular_spectrum(
    grid: int | tuple[int, int], pitch_m: float, wavelength_m: float, distance_m: float
) -> Tensor:
    """Free-space transfer function ``exp(i z k_z)`` on the grid's FFT frequencies."""
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    k = 2 * math.pi / wavelength_m
    fx = 2 * math.pi * torch.fft.fftfreq(rows, d=pitch_m, dtype=torch.float64)
    fy = 2 * math.pi * torch.fft.fftfreq(cols, d=pitch_m, dtype=torch.float64)
    kx, ky = torch.meshgrid(fx, fy, indexing="ij")
    kz2 = k**2 - kx**2 - ky**2
    if (kz2 < 0).any():
        raise ConfigError("pixel pitch below λ/2: evanescent waves on the grid; enlarge the pitch")
    return torch.polar(torch.ones_like(kz2), distance_m * torch.sqrt(kz2))


def _abs2(field: Tensor) -> Tensor:
    """``|field|²`` as a new real tensor (cheaper than ``abs() ** 2`` or a sum over re/im)."""
    return field.real.square() + field.imag.square()


def _interleaved(matrix: Tensor) -> Tensor:
    """Real ``[n, 2m]`` matrix whose product with a real row gives interleaved (re, im) of m."""
    return torch.view_as_real(matrix).reshape(matrix.shape[0], -1).contiguous()


@dataclass(frozen=True)
class OpticalParams:
    """The optical system's parameters (module docstring: their physical meaning)."""

    grid: int | tuple[int, int] | None = param(
        None,
        "output modes / camera pixels: None (auto), N (N × N) or (rows, cols)",
        low=1,
        high=4096,
    )
    encoding: Encoding = param("phase", "SLM encoding: phase or amplitude")
    nonlinearity: Nonlinearity = param("saturable", "saturable, shg or none")
    optical_depth: float = param(3.0, "small-signal optical depth of the absorber")
    saturation: float = param(1.0, "saturation intensity", "mean speckle intensity")
    wavelength_m: float = param(8.0e-7, "laser wavelength", "m")
    pixel_pitch_m: float = param(8.0e-6, "mode / camera pixel pitch", "m")
    distance_m: float = param(1.0e-3, "absorber → camera propagation distance", "m")
    full_well_e: float = param(10000.0, "camera full-well capacity", "electrons")
    read_noise_e: float = param(2.0, "camera read noise", "electrons rms")
    shot_noise: bool = param(True, "photon shot noise on/off")
    shot_noise_model: ShotNoiseModel = param("gaussian", "gaussian (variance = mean) or poisson")
    bit_depth: int | None = param(12, "camera ADC bits (None: ideal)", "bits", low=1, high=32)
    fabrication_std: float = param(0.05, "static phase error of each SLM macro-pixel", "rad")
    laser_power_w: float = param(1e-3, "laser power on the SLM", "W")
    exposure_s: float = param(1e-3, "camera exposure per sample (the device time)", "s")
    max_chunk_elements: int = param(
        2**22, "largest batch × modes simulated at once (memory)", low=1, high=2**31
    )
    out_of_range: OutOfRange = param("clip", "drive outside [0, 1]: clip or raise")

    def __post_init__(self) -> None:
        check(
            min(self.optical_depth, self.read_noise_e, self.fabrication_std) >= 0
            and self.saturation > 0,
            "optical_depth, read_noise_e, fabrication_std >= 0; saturation > 0",
        )
        check(self.max_chunk_elements >= 1, "max_chunk_elements must be >= 1")
        check(self.exposure_s > 0 and self.laser_power_w >= 0, "exposure_s > 0, power >= 0")


class OpticalSystem(PhysicalSystem):
    """SLM encoding → scattering medium → nonlinearity → free space → camera (module docstring).

    Args:
        n_inputs: SLM macro-pixels.
        n_outputs: camera pixels read out.
        params: :class:`OpticalParams` (default: their defaults); ``**overrides`` by name.
        seed: medium, readout pixels, fabrication and noise stream.
        device: torch device of the simulation.
    """

    differentiable = True
    perturbation = "medium decorrelation θ: field correlation sin(πθ)/(πθ), θ = 1 a new medium"
    typical_perturbation = 0.3
    Params = OpticalParams

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        params: OpticalParams | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **overrides: Any,
    ) -> None:
        p: OpticalParams = self.resolve_params(params, overrides)
        super().__init__(
            n_inputs,
            n_outputs,
            drive_range=(0.0, 1.0),
            out_of_range=p.out_of_range,
            power_w=p.laser_power_w,
            measurement_time_s=p.exposure_s,
            device=device,
        )
        grid, encoding, nonlinearity = p.grid, p.encoding, p.nonlinearity
        optical_depth, saturation, full_well_e = p.optical_depth, p.saturation, p.full_well_e
        read_noise_e, shot_noise, bit_depth = p.read_noise_e, p.shot_noise, p.bit_depth
        shot_noise_model, laser_power_w = p.shot_noise_model, p.laser_power_w
        max_chunk_elements, fabrication_std = p.max_chunk_elements, p.fabrication_std
        wavelength_m, pixel_pitch_m, distance_m = p.wavelength_m, p.pixel_pitch_m, p.distance_m
        rows, cols = resolve_grid(grid, n_inputs, n_outputs)
        n_modes = rows * cols
        self.params, self.seed = p, seed
        self.grid_shape = (rows, cols)
        self.n_modes = n_modes
        self.encoding, self.nonlinearity = encoding, nonlinearity
        self.optical_depth, self.full_well_e = optical_depth, full_well_e
        self.read_noise_e, self.shot_noise, self.bit_depth = read_noise_e, shot_noise, bit_depth
        self.shot_noise_model = shot_noise_model
        self.i_sat = saturation * laser_power_w / n_modes
        self._chunk_rows = max(1, max_chunk_elements // n_modes)

        medium = torch.Generator().manual_seed(seed)
        self._t0 = haar_columns(n_modes, n_inputs, medium)  # [N, n_in]
        # camera pixels: the whole sensor in raster order, or a seeded subset in raster order
        self._readout: Tensor | None = None
        if n_outputs < n_modes:
            pick = torch.randperm(n_modes, generator=medium)[:n_outputs]
            self._readout = torch.sort(pick).values.to(self.device)
        self._drift: tuple[Tensor, Tensor] | None = None  # drawn at the first medium change
        built = torch.Generator().manual_seed(seed + 3)
        self._slm_error = fabrication_std * torch.randn(n_inputs, generator=built)
        nl_wavelength = wavelength_m / 2 if nonlinearity == "shg" else wavelength_m
        self._propagator = (
            angular_spectrum((rows, cols), pixel_pitch_m, nl_wavelength, distance_m)
            .to(torch.complex64)
            .to(self.device)
        )
        self._noise = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.theta = 0.0
        self._build_medium()
        self.calibration_queries = 512  # the gain-staging drives below
        self._exposure = self._calibrate_exposure(torch.Generator().manual_seed(seed + 2))

    @classmethod
    def memory_need(
        cls, n_inputs: int, n_outputs: int, params: OpticalParams | None = None
    ) -> MemoryNeed:
        """The Haar medium (complex128, cached) and its complex64 copies folded with the SLM
        kept; its QR factorisation is the largest temporary; a call simulates the fields of
        at most ``max_chunk_elements`` modes at once (complex, through FFTs)."""
        p = params or OpticalParams()
        rows, cols = resolve_grid(p.grid, n_inputs, n_outputs)
        medium = rows * cols * n_inputs
        per_sample = 48 * rows * cols
        cap = 48 * p.max_chunk_elements
        return MemoryNeed(
            resident=40 * medium,
            building=64 * medium + min(512 * per_sample, cap),  # the gain-staging drives
            per_sample=per_sample,
            workspace_cap=cap,
        )

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the medium's output modes and of the camera."""
        return self.grid_shape

    @property
    def output_grid(self) -> tuple[int, int] | None:  # type: ignore[override]
        """The camera image's ``(rows, cols)`` when every pixel is read (raster order), else
        None (a scattered subset of pixels has no image layout)."""
        return self.grid_shape if self._readout is None else None

    # ------------------------------------------------------------------ physics
    def _drift_basis(self) -> tuple[Tensor, Tensor]:
        """H's Haar eigenbasis and eigenvalues (drawn once, from the seed, when first needed)."""
        if self._drift is None:
            drift = torch.Generator().manual_seed(self.seed + 4)
            basis = haar_columns(self.n_inputs, self.n_inputs, drift)
            spectrum = math.pi * (
                2 * torch.rand(self.n_inputs, generator=drift, dtype=torch.float64) - 1
            )
            self._drift = (basis, spectrum)
        return self._drift

    def _build_medium(self) -> None:
        """``T(θ) = T0 exp(iθH)`` with ``H = V diag(λ) V^H``, and the folded matrices."""
        if self.theta == 0.0:
            medium = self._t0
        else:
            basis, spectrum = self._drift_basis()
            phases = torch.polar(torch.ones_like(spectrum), self.theta * spectrum)
            medium = self._t0 @ ((basis * phases) @ basis.conj().T)
        self._medium = medium.to(torch.complex64).to(self.device)  # [N, n_in]
        # SLM amplitude and fabrication phase folded in: field = encode(drive) @ matrix
        amplitude = math.sqrt(self.power_w / self.n_inputs)
        slm = amplitude * torch.polar(torch.ones_like(self._slm_error), self._slm_error)
        matrix = slm.to(torch.complex128)[:, None] * medium.T  # [n_in, N]
        if self.nonlinearity == "none":  # all linear: medium, free space and readout in one
            rows, cols = self.grid_shape
            prop = self._propagator.to(device="cpu", dtype=torch.complex128)
            matrix = torch.fft.ifft2(torch.fft.fft2(matrix.view(-1, rows, cols)) * prop)
            matrix = matrix.flatten(1)
            if self._readout is not None:
                matrix = matrix[:, self._readout.cpu()]
        self._matrix = matrix.to(torch.complex64).to(self.device)
        self._matrix_real = _interleaved(self._matrix) if self.encoding == "amplitude" else None

    def slm_field(self, drive: Tensor) -> Tensor:
        """Complex field of each macro-pixel (√W units): ``[B, n_inputs]``."""
        amplitude = math.sqrt(self.power_w / self.n_inputs)
        error = self._slm_error.to(drive.device)
        if self.encoding == "phase":
            return amplitude * torch.polar(torch.ones_like(drive), math.pi * drive + error)
        return amplitude * drive * torch.polar(torch.ones_like(drive), error.expand_as(drive))

    def medium_field(self, drive: Tensor) -> Tensor:
        """Field on the medium's output modes, ``[B, rows, cols]`` (reference implementation)."""
        field = self.slm_field(drive).to(torch.complex64) @ self._medium.T
        return field.view(-1, *self.grid_shape)

    def nonlinear(self, field: Tensor) -> Tensor:
        """The pointwise nonlinear optical step on the output face."""
        if self.nonlinearity == "saturable":
            # transmission exp(-(OD/2) / (1 + I/Isat)) = exp(-(OD/2) Isat / (Isat + I))
            intensity = _abs2(field)
            return field * torch.exp(
                -0.5 * self.optical_depth * self.i_sat / (intensity + self.i_sat)
            )
        if self.nonlinearity == "shg":
            return field * field / math.sqrt(self.i_sat)  # χ(2) conversion, normalised
        return field

    def _nonlinear_(self, field: Tensor) -> Tensor:
        """:meth:`nonlinear`, in ``field``'s buffer when no gradient is needed (hot path)."""
        if torch.is_grad_enabled() and field.requires_grad:
            return self.nonlinear(field)
        if self.nonlinearity == "saturable":
            factor = _abs2(field)
            factor.add_(self.i_sat).reciprocal_().mul_(-0.5 * self.optical_depth * self.i_sat)
            factor.exp_()
            field.real.mul_(factor)  # complex *= real costs several times more
            field.imag.mul_(factor)
            return field
        if self.nonlinearity == "shg":
            return field.mul_(field).mul_(1.0 / math.sqrt(self.i_sat))
        return field

    def propagate(self, field: Tensor) -> Tensor:
        """Angular-spectrum free-space propagation to the camera (unitary)."""
        spectrum = torch.fft.fft2(field)
        if torch.is_grad_enabled() and spectrum.requires_grad:
            return torch.fft.ifft2(spectrum * self._propagator)
        return torch.fft.ifft2(spectrum.mul_(self._propagator))

    def _encode(self, drive: Tensor) -> Tensor:
        """The folded optics up to the medium (or the camera, for linear optics)."""
        if self.encoding == "phase":
            phase = math.pi * drive
            return torch.complex(torch.cos(phase), torch.sin(phase)) @ self._matrix
        assert self._matrix_real is not None
        out = drive @ self._matrix_real  # interleaved (re, im): half a complex product
        return torch.view_as_complex(out.view(drive.shape[0], -1, 2))

    def _camera_intensity(self, drive: Tensor) -> Tensor:
        field = self._encode(drive)
        if self.nonlinearity != "none":
            field = self._nonlinear_(field).view(-1, *self.grid_shape)
            field = self.propagate(field).flatten(1)
            if self._readout is not None:
                field = field[:, self._readout]
        return _abs2(field)

    def intensity(self, drive: Tensor) -> Tensor:
        """Noise-free intensity on the read-out camera pixels (W per pixel)."""
        if drive.shape[0] <= self._chunk_rows:
            return self._camera_intensity(drive)
        return torch.cat([self._camera_intensity(d) for d in drive.split(self._chunk_rows)])

    def _calibrate_exposure(self, generator: torch.Generator) -> float:
        drives = torch.rand(512, self.n_inputs, generator=generator).to(self.device)
        with torch.no_grad():
            mean = float(self.intensity(drives).mean())
        return 0.25 * self.full_well_e / max(mean, 1e-30)  # electrons per (W per pixel)

    def _measure(self, drive: Tensor) -> Tensor:
        inplace = not torch.is_grad_enabled()  # no autograd path: work in the buffers
        electrons = self.intensity(drive)  # W per pixel, >= 0
        electrons = electrons.mul_(self._exposure) if inplace else electrons * self._exposure
        read = self.read_noise_e
        noise_std: Tensor | float = read
        if self.shot_noise and self.shot_noise_model == "poisson":
            counts = torch.poisson(electrons.detach(), generator=self._noise)
            electrons = counts if inplace else electrons + (counts - electrons).detach()
        elif self.shot_noise:  # Gaussian approximation: variance = mean, plus read noise
            noise_std = (electrons.detach() + read**2).sqrt_()
        if isinstance(noise_std, Tensor) or noise_std > 0:
            noise = torch.randn(
                electrons.shape, generator=self._noise, device=electrons.device,
                dtype=electrons.dtype,
            )  # fmt: skip
            if not inplace:
                electrons = electrons + noise * noise_std
            elif isinstance(noise_std, Tensor):
                electrons = electrons.addcmul_(noise, noise_std)
            else:
                electrons = electrons.add_(noise, alpha=noise_std)
        if self.bit_depth is None:  # full-well units
            return electrons.mul_(1 / self.full_well_e) if inplace else electrons / self.full_well_e
        levels = 2**self.bit_depth - 1  # ADC: clip at the full well, round to the levels
        if not inplace:
            return quantize_straight_through(electrons / self.full_well_e, self.bit_depth)
        counts = electrons.mul_(levels / self.full_well_e).clamp_(0.0, levels).round_()
        return counts.mul_(1.0 / levels)

    def nominal(self) -> OpticalSystem:
        """The design: same medium and seed, flat SLM, no noise, ideal camera."""
        design = replace(
            self.params,
            grid=self.grid_shape,
            fabrication_std=0.0,
            shot_noise=False,
            read_noise_e=0.0,
            bit_depth=None,
        )
        return OpticalSystem(
            self.n_inputs, self.n_outputs, design, seed=self.seed, device=self.device
        )

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
        if float(state["theta"]) != self.theta:  # rebuilding costs a solve
            self.set_medium_change(state["theta"])
        self._noise.set_state(state["noise_rng"])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            **as_plain(self.params),
            "grid": list(self.grid_shape),
            "seed": self.seed,
            "theta": self.theta,
        }

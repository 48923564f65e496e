r"""Microwave chaotic cavity programmed by a metasurface: a coupled-dipole model.

Physics
-------
A 2-D reverberant enclosure (TM polarisation, scalar field :math:`E_z`) is modelled, as in
coupled-dipole channel models of metasurface-programmable rooms (Faqiri, Saigre-Tardif,
Alexandropoulos, Shlezinger, Imani, del Hougne, "PhysFad", IEEE TWC 2023), by point dipoles:

* the **walls**: a closed ring of dipoles every ``wall_spacing`` (≤ λ/4), strong lossy
  scatterers; together they confine the field (a dipole fence of sub-wavelength spacing
  reflects), their loss ``wall_loss`` sets the reverberation time;
* ``n_scatterers`` **scatterers** at random positions inside (they make the cavity chaotic);
* ``n_antennas`` **antennas** at random positions inside (transmit and receive);
* ``n_inputs`` **metasurface elements** lining the walls (a conformal programmable metasurface,
  a quarter wavelength in front of the wall), each a resonant dipole whose resonance frequency
  the drive tunes: :math:`f_{r}(a) = f_{off} + a\,(f_{on} - f_{off})`, ``control="continuous"``
  (varactor-tuned elements, continuous reflection phase) or :math:`a \in \{0, 1\}`
  (``control="1-bit"``, PIN-diode elements; the drive is thresholded at 1/2, with a
  straight-through gradient on the autograd path, the usual surrogate for binary controls).

With the 2-D Green's function :math:`G(r) = \tfrac{i}{4} H_0^{(1)}(k r)`, :math:`k = 2\pi f/c`,
the dipole moments :math:`p` excited by external fields :math:`e` solve

.. math::

    W p = e, \qquad W_{ii} = \alpha_i^{-1}(f), \quad W_{ij} = -G(|r_i - r_j|)\ (i \ne j),

with inverse polarisabilities :math:`\alpha_i^{-1} = \kappa_i (f_{r,i}^2 - f^2)/f^2 -
i(\tfrac14 + \gamma_i)` (Lorentzian; :math:`-i/4` is the radiation damping that the optical
theorem requires in 2-D, :math:`\gamma_i \ge 0` absorption; walls, scatterers and antennas are
non-resonant, :math:`\kappa = 0`). Feeding antenna *t* (:math:`e = \hat e_t`) the received
signal at antenna *r* is :math:`H_{rt}(f) = (W^{-1})_{rt}`: every multiple-scattering path
between the antennas, through walls, scatterers and the metasurface, is in the inverse, so the
response is a nonlinear function of the metasurface configuration. :math:`W` is symmetric, so
the channel is reciprocal (:math:`H_{rt} = H_{tr}`); with :math:`Q = -\mathrm{Im}\,W =
\tfrac14 J_0(k r_{ij}) + \mathrm{diag}(\gamma) \succeq 0` the model is passive: the power drawn
from the source, :math:`\mathrm{Im}(e^H p) = p^H Q p`, equals radiated plus absorbed power.

Only the metasurface block of :math:`W` depends on the drive, so the static part (walls,
scatterers, antennas: ``A``) is inverted once per frequency and each sample solves the Schur
complement :math:`S = D(a) + C_{mm} - B^T A^{-1} B` of size ``n_inputs`` (block inversion,
exact): :math:`H = (A^{-1})_{pp} + U S^{-1} U^T` with :math:`U = (A^{-1}B)_{p\,\cdot}`, one
batched LU over ``[B, n_freqs, n_inputs, n_inputs]``: ``n_freqs · n_inputs³`` operations per
sample, so large metasurfaces are slow (784 elements, 33 antennas: 4 complex LUs of 784², 5.8
GFLOP per sample).

The solve runs at the rate of LAPACK itself (docs/microwave-performance.md): each chunk's ``S``
is written into a workspace reused across calls, already in LAPACK's column-major layout, its
diagonal added in place, and factorised there (``lu_factor_ex`` with ``out=``, then
``lu_solve`` for the antennas' right-hand sides ``U^T``), so the batch of n² matrices is never
copied. A drive that needs gradients (the autograd path of ``nominal()``) gets fresh buffers
and ``torch.linalg.solve_ex``, which autograd differentiates. Batches are solved in chunks of
at most ``max_chunk_elements`` matrix entries (8 MB by default: a chunk's matrices are still in
cache when factorised, the workspace stays small, and ``B · n_freqs · n_inputs²`` complex
values need not fit in memory at once; at least one sample per chunk). On the CPU, systems
above 128 elements are solved with one thread: with the MKL of torch 2.13 (AMD EPYC) a
multi-threaded batched LU of matrices of 150 and more (complex or real) fails ("Intel oneMKL
ERROR: Parameter 6 was incorrect on entry to CLASWP") and hangs.

The measurement is the received power :math:`|H_{rt}(f_k)|^2` for antenna pairs
:math:`r < t` (``n_pairs = ceil(n_outputs / n_freqs)``; the fewest antennas giving that many
pairs) at ``n_freqs`` frequencies spread over ``band_hz``: output bin *j* ↔ (pair ``j //
n_freqs``, frequency ``j % n_freqs``). Gain staging, detector noise and ADC are as in the
acoustic cavity: full scale = 4× each bin's mean power over random configurations (set once
at construction; 512 configurations, fewer above 128 elements, at least 32), Gaussian noise
of ``noise_std`` full scale, ``adc_bits`` quantization; outputs in [0, 1].

Fabrication error: each element's resonance frequencies are off by a relative Gaussian error
``fabrication_std`` (tolerances of the diodes and the PCB); :meth:`MicrowaveCavity.nominal` is
the design (no error, no noise, ideal ADC). Perturbation: :meth:`MicrowaveCavity.perturb` moves
``moving_scatterers`` scatterers by ``strength`` cm, each along its own fixed random direction
(someone moving an object in the room; a random walk of it: slow mechanical drift).

Parameters (SI units unless stated)
-----------------------------------
=================== ============================================================= ===========
parameter           meaning                                                       default
=================== ============================================================= ===========
n_inputs            metasurface elements (drive channels)                         —
n_outputs           measured (antenna pair, frequency) bins                       —
n_freqs             frequencies of the sweep                                      4
band_hz             lowest and highest frequency (Hz)                             5.0e9, 5.4e9
cavity_m            cavity width and depth (m)                                    0.30, 0.24
wall_spacing        wall dipole spacing (in centre wavelengths)                   0.25
wall_loss           absorption γ of a wall dipole (sets the reverberation time)   0.05
n_scatterers        scatterers inside the cavity                                  10
moving_scatterers   scatterers moved by :meth:`perturb`                            3
element_f_on_off    element resonance in state 1 / 0, fractions of the band centre 1.0, 0.9
element_kappa       Lorentzian strength κ of the elements (sharpness)             10
element_loss        absorption γ of an element (diode resistance)                 0.05
antenna_loss        absorption γ of an antenna (its matched load)                 0.25
control             "continuous" (varactor) or "1-bit" (PIN diode)                continuous
fabrication_std     relative error of each element's resonance frequencies        0.005
noise_std           detector noise std, fraction of full scale                    1e-3
adc_bits            converter resolution (bits), None = ideal                     12
max_chunk_elements  largest batch × n_freqs × n_inputs² solved at once (cache)     2**20
transmit_power_w    power fed to the transmitting antenna (W)                     0.01
dwell_s             measurement time per frequency point (s)                      1e-4
seed                geometry, fabrication and noise stream                        0
=================== ============================================================= ===========

Energy per query = ``transmit_power_w × dwell_s × n_freqs × n_antennas``: a 10 mW source
dwelling 100 µs per frequency point (a vector network analyser sweep), once per transmitter.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import hankel1
from torch import Tensor

from phyll.errors import ConfigError
from phyll.params import as_plain, check, param
from phyll.systems.base import MemoryNeed, OutOfRange, PhysicalSystem
from phyll.systems.detection import calibrate_full_scale, detect, quantize_straight_through

SPEED_OF_LIGHT = 299_792_458.0  # m/s
Control = Literal["continuous", "1-bit"]


def green_2d(k: np.ndarray, r: np.ndarray) -> np.ndarray:
    """2-D scalar Green's function ``(i/4) H0(k r)`` for ``k [K]`` and distances ``r [..]``."""
    return 0.25j * hankel1(0, k.reshape((-1,) + (1,) * r.ndim) * r)


def _wall_ring(width: float, depth: float, spacing: float, inset: float) -> np.ndarray:
    """Points every ``spacing`` along a rectangle inset by ``inset`` from the cavity boundary."""
    w, d = width - 2 * inset, depth - 2 * inset
    n = max(round(2 * (w + d) / spacing), 4)
    s = np.arange(n) * (2 * (w + d) / n)
    x = np.select([s < w, s < w + d, s < 2 * w + d], [s, w, 2 * w + d - s], 0.0)
    y = np.select([s < w, s < w + d, s < 2 * w + d], [0.0, s - w, d], 2 * (w + d) - s)
    return np.stack([x, y], axis=1) + inset


def _random_inside(
    n: int, width: float, depth: float, margin: float, avoid: np.ndarray, gap: float, rng
) -> np.ndarray:
    """``n`` random points inside the cavity, at least ``gap`` from each other and ``avoid``."""
    points: list[np.ndarray] = []
    taken = avoid
    for _ in range(1000 * n):
        if len(points) == n:
            return np.stack(points)
        p = rng.uniform([margin, margin], [width - margin, depth - margin])
        if len(taken) == 0 or np.min(np.linalg.norm(taken - p, axis=1)) >= gap:
            points.append(p)
            taken = np.vstack([taken, p]) if len(taken) else p[None]
    raise ConfigError("cannot place the antennas and scatterers: enlarge cavity_m")


#: above this many elements, the CPU batched solve runs on one thread (module docstring)
SINGLE_THREAD_SOLVE_ABOVE = 128


@contextlib.contextmanager
def _one_thread(active: bool) -> Iterator[None]:
    """Run torch's CPU kernels on one thread inside the block (if ``active``)."""
    if not active:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def calibration_drives(n_inputs: int) -> int:
    """Random configurations for the gain staging: 512, scaled down by the solve's n³ cost."""
    scale = (SINGLE_THREAD_SOLVE_ABOVE / n_inputs) ** 3
    return 512 if n_inputs <= SINGLE_THREAD_SOLVE_ABOVE else max(32, int(512 * scale))


def pairs_needed(n_pairs: int) -> int:
    """Fewest antennas ``A`` with ``A (A - 1) / 2 >= n_pairs``."""
    return max(2, math.ceil((1 + math.sqrt(1 + 8 * n_pairs)) / 2))


@dataclass(frozen=True)
class MicrowaveParams:
    """The microwave cavity's parameters (module docstring: their physical meaning)."""

    n_freqs: int = param(4, "frequencies of the sweep", low=1, high=1024)
    band_hz: tuple[float, float] = param((5.0e9, 5.4e9), "lowest and highest frequency", "Hz")
    cavity_m: tuple[float, float] = param((0.30, 0.24), "cavity width and depth", "m")
    wall_spacing: float = param(0.25, "wall dipole spacing", "centre wavelengths")
    wall_loss: float = param(0.05, "absorption of a wall dipole (sets the reverberation time)")
    n_scatterers: int = param(10, "scatterers inside the cavity", low=0, high=4096)
    moving_scatterers: int = param(3, "scatterers moved by perturb()", low=0, high=4096)
    element_f_on_off: tuple[float, float] = param(
        (1.0, 0.9), "element resonance in states 1 / 0", "fractions of the band centre"
    )
    element_kappa: float = param(10.0, "Lorentzian strength κ of the elements")
    element_loss: float = param(0.05, "absorption of an element (diode resistance)")
    antenna_loss: float = param(0.25, "absorption of an antenna (its matched load)")
    control: Control = param("continuous", "varactor (continuous) or PIN-diode (1-bit) elements")
    fabrication_std: float = param(0.005, "relative error of each element's resonances")
    noise_std: float = param(1e-3, "detector noise std", "fraction of full scale")
    adc_bits: int | None = param(12, "converter resolution (None: ideal)", "bits", low=1, high=32)
    max_chunk_elements: int = param(
        2**20, "largest batch × freqs × n² solved at once (cache)", low=1, high=2**31
    )
    transmit_power_w: float = param(0.01, "power fed to the transmitting antenna", "W")
    dwell_s: float = param(1e-4, "measurement time per frequency point", "s")
    out_of_range: OutOfRange = param("clip", "drive outside [0, 1]: clip or raise")

    def __post_init__(self) -> None:
        losses = (self.wall_loss, self.element_loss, self.antenna_loss)
        check(
            min(*losses, self.noise_std, self.fabrication_std) >= 0,
            "losses, noise_std and fabrication_std must be >= 0",
        )
        check(
            0 <= self.moving_scatterers <= self.n_scatterers and self.n_freqs >= 1,
            "need 0 <= moving_scatterers <= n_scatterers and n_freqs >= 1",
        )
        check(self.dwell_s > 0 and self.transmit_power_w >= 0, "dwell_s > 0, power >= 0")
        check(self.max_chunk_elements >= 1, "max_chunk_elements must be >= 1")


class MicrowaveCavity(PhysicalSystem):
    """Metasurface-programmed chaotic microwave cavity (see module docstring).

    Args:
        n_inputs: metasurface elements.
        n_outputs: measured (antenna pair, frequency) bins.
        params: :class:`MicrowaveParams` (default: their defaults); ``**overrides`` by name.
        seed: geometry, fabrication and noise stream.
        device: torch device of the per-sample solves.
    """

    differentiable = True
    perturbation = "displacement (cm) of the cavity's moving scatterers"
    typical_perturbation = 1.0
    Params = MicrowaveParams

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        params: MicrowaveParams | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **overrides: Any,
    ) -> None:
        p: MicrowaveParams = self.resolve_params(params, overrides)
        n_freqs = p.n_freqs
        n_pairs = math.ceil(n_outputs / n_freqs)
        n_antennas = pairs_needed(n_pairs)
        super().__init__(
            n_inputs,
            n_outputs,
            drive_range=(0.0, 1.0),
            out_of_range=p.out_of_range,
            power_w=p.transmit_power_w,
            measurement_time_s=p.dwell_s * n_freqs * n_antennas,
            device=device,
        )
        self.params, self.seed = p, seed
        band_hz, cavity_m, control = p.band_hz, p.cavity_m, p.control
        n_scatterers, wall_loss, antenna_loss = p.n_scatterers, p.wall_loss, p.antenna_loss
        self.n_freqs, self.n_antennas, self.control = n_freqs, n_antennas, control
        self.noise_std, self.adc_bits = p.noise_std, p.adc_bits
        self._chunk_rows = max(1, p.max_chunk_elements // (n_freqs * n_inputs * n_inputs))
        self.freqs_hz = np.linspace(band_hz[0], band_hz[1], n_freqs)
        f_c = 0.5 * (band_hz[0] + band_hz[1])
        wavelength = SPEED_OF_LIGHT / f_c
        self._k = 2 * np.pi * self.freqs_hz / SPEED_OF_LIGHT

        # geometry (seeded): walls, metasurface lining them, antennas and scatterers inside
        rng = np.random.default_rng(seed)
        width, depth = cavity_m
        walls = _wall_ring(width, depth, p.wall_spacing * wavelength, 0.0)
        inset = wavelength / 4
        elements = _wall_ring(width, depth, 2 * (width + depth - 4 * inset) / n_inputs, inset)
        elements = elements[:n_inputs]
        inner = _random_inside(
            n_antennas + n_scatterers,
            width,
            depth,
            margin=inset + wavelength / 6,
            avoid=np.zeros((0, 2)),
            gap=wavelength / 6,
            rng=rng,
        )
        self._antennas, self._scatterers, self._walls = (
            inner[:n_antennas],
            inner[n_antennas:],
            walls,
        )
        self._elements = elements
        angles = rng.uniform(0, 2 * np.pi, p.moving_scatterers)
        self._move_dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.displacement_cm = 0.0

        # static dipoles' inverse polarisabilities: antennas, walls, scatterers (non-resonant)
        self._static_inv_alpha = np.concatenate(
            [
                np.full(n_antennas, -1j * (0.25 + antenna_loss)),
                np.full(len(walls), -1j * (0.25 + wall_loss)),
                np.full(n_scatterers, -1j * 0.25),
            ]
        )
        self._static_loss = np.concatenate(
            [
                np.full(n_antennas, antenna_loss),
                np.full(len(walls), wall_loss),
                np.zeros(n_scatterers),
            ]
        )
        # metasurface element resonances (Hz) in states 1 and 0, with fabrication error
        f_on, f_off = (f_c * p.element_f_on_off[0], f_c * p.element_f_on_off[1])
        built = np.random.default_rng(seed + 3)
        errors = 1 + p.fabrication_std * built.standard_normal((2, n_inputs))
        f64 = {"dtype": torch.float64, "device": self.device}
        self._f_on = torch.tensor(f_on * errors[0], **f64)
        self._f_off = torch.tensor(f_off * errors[1], **f64)
        self.element_kappa, self.element_loss = p.element_kappa, p.element_loss
        self._freqs_t = torch.tensor(self.freqs_hz, **f64)

        pairs = torch.triu_indices(n_antennas, n_antennas, offset=1)
        n_bins = torch.arange(n_outputs)
        self._bin_rx = pairs[0][n_bins // n_freqs].to(self.device)
        self._bin_tx = pairs[1][n_bins // n_freqs].to(self.device)
        self._bin_freq = (n_bins % n_freqs).to(self.device)

        self._noise = torch.Generator(device=self.device).manual_seed(seed + 1)
        self._workspace: tuple[Tensor, Tensor, Tensor] | None = None
        self._build_static()
        self.calibration_queries = calibration_drives(n_inputs)  # the gain-staging drives below
        self._full_scale = calibrate_full_scale(
            self._power,
            n_inputs,
            self.calibration_queries,
            torch.Generator().manual_seed(seed + 2),
            self.device,
            1e-30,
        )

    @classmethod
    def memory_need(
        cls, n_inputs: int, n_outputs: int, params: MicrowaveParams | None = None
    ) -> MemoryNeed:
        """The ports' Schur complement ``[freqs, elements, elements]`` and the solve's reused
        workspace kept; building inverts the complex128 coupling of every dipole (walls,
        antennas, scatterers, elements) per frequency; a call solves ``[batch, freqs,
        elements, elements]`` systems in chunks of ``max_chunk_elements``."""
        p = params or MicrowaveParams()
        k, n = p.n_freqs, n_inputs
        antennas = pairs_needed(math.ceil(n_outputs / k))
        wavelength = SPEED_OF_LIGHT / (0.5 * (p.band_hz[0] + p.band_hz[1]))
        walls = max(round(2 * sum(p.cavity_m) / (p.wall_spacing * wavelength)), 4)
        static = antennas + walls + p.n_scatterers
        dipoles = static + n
        per_sample = 16 * k * n * n
        cap = 16 * p.max_chunk_elements + per_sample
        build = 16 * k * (dipoles**2 + 2 * static**2 + 2 * static * n + 2 * n * n) + 9 * dipoles**2
        return MemoryNeed(
            resident=8 * k * (antennas**2 + antennas * n + n * n) + cap // 2,
            building=build + min(calibration_drives(n) * per_sample, cap),
            per_sample=per_sample,
            workspace_cap=cap,
        )

    # ------------------------------------------------------------------ geometry
    def static_positions(self) -> np.ndarray:
        """Positions (m) of antennas, walls, scatterers (moved by the perturbation)."""
        scatterers = self._scatterers.copy()
        moving = len(self._move_dirs)
        scatterers[:moving] += 0.01 * self.displacement_cm * self._move_dirs
        return np.vstack([self._antennas, self._walls, scatterers])

    def positions(self) -> np.ndarray:
        """Positions (m) of every dipole: static ones, then the metasurface elements."""
        return np.vstack([self.static_positions(), self._elements])

    def _build_static(self) -> None:
        """Invert the static block per frequency; keep what the per-sample solve needs."""
        pos = self.positions()
        n_static = len(pos) - self.n_inputs
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        off = ~np.eye(len(pos), dtype=bool)
        coupling = np.zeros((self.n_freqs, len(pos), len(pos)), dtype=np.complex128)
        coupling[:, off] = -green_2d(self._k, dist[off])  # W_ij = -G(r_ij)
        a = coupling[:, :n_static, :n_static] + np.diag(self._static_inv_alpha)
        b = coupling[:, :n_static, n_static:]
        a_inv_b = np.linalg.solve(a, b)  # [K, S, M]
        a_inv = np.linalg.inv(a)
        ports = slice(0, self.n_antennas)
        schur = coupling[:, n_static:, n_static:] - np.swapaxes(b, 1, 2) @ a_inv_b
        cplx = torch.complex64
        self._p0 = torch.tensor(a_inv[:, ports, ports], dtype=cplx, device=self.device)
        self._u = torch.tensor(a_inv_b[:, ports, :], dtype=cplx, device=self.device)
        # column-major (LAPACK's layout): copied into the systems' workspace as one stream
        self._schur = torch.tensor(schur, dtype=cplx, device=self.device).mT.contiguous().mT

    # ------------------------------------------------------------------ physics
    def element_inverse_polarizability(self, drive: Tensor) -> Tensor:
        """``1/α`` of every element at every frequency: ``[B, n_freqs, n_inputs]`` complex."""
        state = drive.double()
        if self.control == "1-bit":
            state = quantize_straight_through(state, 1)
        f_on, f_off = self._f_on.to(drive.device), self._f_off.to(drive.device)
        f_res = f_off + state * (f_on - f_off)  # [B, M]
        f = self._freqs_t.to(drive.device)[None, :, None]  # [1, K, 1]
        real = self.element_kappa * (f_res[:, None, :] ** 2 - f**2) / f**2
        return torch.complex(real, torch.full_like(real, -(0.25 + self.element_loss)))

    def port_matrix(self, drive: Tensor) -> Tensor:
        """Antenna-to-antenna transmission ``H [B, n_freqs, A, A]`` (complex, symmetric)."""
        inv_alpha = self.element_inverse_polarizability(drive).to(torch.complex64)
        autograd = torch.is_grad_enabled() and inv_alpha.requires_grad
        b = inv_alpha.shape[0]
        s, pivots, info = self._system_buffers(b, reuse=not autograd)
        s.copy_(self._schur.expand(b, -1, -1, -1))  # S = Schur complement + diag(1/α), built
        s.diagonal(dim1=-2, dim2=-1).add_(inv_alpha)  # in place, in LAPACK's layout
        rhs = self._u.transpose(1, 2).expand(b, -1, -1, -1)
        one_thread = s.device.type == "cpu" and self.n_inputs > SINGLE_THREAD_SOLVE_ABOVE
        with _one_thread(one_thread):
            # no error checks: no host round trip on a GPU; a singular system gives non-finite
            # powers, which the base class refuses
            if autograd:
                x, _ = torch.linalg.solve_ex(s, rhs)
            else:  # factorised where S was built: no copy of the batch of n² matrices
                torch.linalg.lu_factor_ex(s, out=(s, pivots, info))
                x = torch.linalg.lu_solve(s, pivots, rhs)
        return self._p0 + self._u @ x

    def _system_buffers(self, batch: int, reuse: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Room for ``batch`` systems ``[batch, n_freqs, M, M]`` (column-major), their pivots
        and LAPACK infos; with ``reuse`` a workspace kept across calls (no fresh pages to fault
        in for every chunk), grown to the largest chunk seen."""
        k, m = self.n_freqs, self.n_inputs
        on = {"device": self.device}
        if not reuse or self._workspace is None or len(self._workspace[0]) < batch:
            buffers = (
                torch.empty(batch, k, m, m, dtype=torch.complex64, **on).mT,
                torch.empty(batch, k, m, dtype=torch.int32, **on),
                torch.empty(batch, k, dtype=torch.int32, **on),
            )
            if not reuse:
                return buffers
            self._workspace = buffers
        systems, pivots, info = self._workspace
        return systems[:batch], pivots[:batch], info[:batch]

    def interaction_matrix(self, drive: Tensor) -> np.ndarray:
        """The full ``W [B, n_freqs, N, N]`` (NumPy, complex128): for checks, not the hot path."""
        pos = self.positions()
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        off = ~np.eye(len(pos), dtype=bool)
        w = np.zeros((len(drive), self.n_freqs, len(pos), len(pos)), dtype=np.complex128)
        w[:, :, off] = -green_2d(self._k, dist[off])[None]
        inv_alpha = self.element_inverse_polarizability(drive.cpu()).numpy()
        n_static = len(self._static_inv_alpha)
        diag = np.concatenate(
            [np.broadcast_to(self._static_inv_alpha, (*inv_alpha.shape[:2], n_static)), inv_alpha],
            axis=-1,
        )
        idx = np.arange(len(pos))
        w[:, :, idx, idx] = diag
        return w

    def losses(self) -> np.ndarray:
        """Absorption γ of every dipole (order of :meth:`positions`)."""
        return np.concatenate([self._static_loss, np.full(self.n_inputs, self.element_loss)])

    def _power(self, drive: Tensor) -> Tensor:
        """Received power per bin; the batch is solved in memory-bounded chunks."""
        chunks = drive.split(self._chunk_rows)
        powers = []
        for chunk in chunks:
            h = self.port_matrix(chunk)[:, self._bin_freq, self._bin_rx, self._bin_tx]
            powers.append(h.real**2 + h.imag**2)
        return powers[0] if len(powers) == 1 else torch.cat(powers)

    def _measure(self, drive: Tensor) -> Tensor:
        return detect(
            self._power(drive) / self._full_scale, self.noise_std, self.adc_bits, self._noise
        )

    def nominal(self) -> MicrowaveCavity:
        """The design: same cavity and seed, exact element resonances, no noise, ideal ADC."""
        design = replace(self.params, fabrication_std=0.0, noise_std=0.0, adc_bits=None)
        return MicrowaveCavity(
            self.n_inputs, self.n_outputs, design, seed=self.seed, device=self.device
        )

    # ------------------------------------------------------------------ knobs
    def perturb(self, strength: float = 1.0) -> None:
        """Move the moving scatterers by ``strength`` cm along their fixed directions."""
        self.set_displacement(self.displacement_cm + float(strength))

    def set_displacement(self, displacement_cm: float) -> None:
        """Place the moving scatterers ``displacement_cm`` from their design positions."""
        self.displacement_cm = float(displacement_cm)
        self._build_static()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "displacement_cm": self.displacement_cm,
            "noise_rng": self._noise.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if float(state["displacement_cm"]) != self.displacement_cm:  # rebuilding costs a solve
            self.set_displacement(state["displacement_cm"])
        self._noise.set_state(state["noise_rng"])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            **as_plain(self.params),
            "seed": self.seed,
            "n_antennas": self.n_antennas,
            "n_dipoles": len(self.positions()),
            "displacement_cm": self.displacement_cm,
        }

r"""Acoustic reverberant cavity: loudspeakers drive a room, microphones measure sound power.

Physics
-------
``n_inputs`` loudspeakers at fixed (seeded) positions in a shoebox room each play a multitone
signal at ``n_freqs`` frequencies :math:`f_k` (spread over ``band_hz``); the drive sets either
the amplitude of each speaker (``encoding="amplitude"``, drive :math:`a_n\in[0,1]`) or its
phase (``encoding="phase"``, :math:`\varphi_n = \pi a_n`). Sound propagates linearly through a
reverberant multipath channel; at microphone :math:`m` the complex pressure at :math:`f_k` is

.. math::

    p_{mk} = \sum_n H_{mn}(f_k)\, e^{i\phi_{nk}}\, u_n(a_n), \qquad
    H_{mn}(f) = \sum_{p=0}^{P-1} A_{mnp}\, e^{-i 2\pi f L_{mnp} / c(T)}

where path :math:`p=0` is the direct path (length = speaker–microphone distance) and the
:math:`P-1` reflected paths arrive at delays :math:`t` drawn with the :math:`t^2` density of a
diffuse field over one reverberation time :math:`T_{60}`; their amplitudes fall as spherical
spreading :math:`1/L` times the exponential reverberant decay :math:`e^{-6.91\,t/T_{60}}`
(-60 dB after :math:`T_{60}`), with random sign. The built room differs from its design by
``fabrication_std_m``: every path length carries an independent Gaussian error of that standard
deviation (placement tolerance of speakers, microphones and reflectors), drawn from its own
seed; :meth:`AcousticCavity.nominal` returns the design (no fabrication error, no noise, ideal
ADC), the model an in-silico baseline would train on. :math:`\phi_{nk}` are the fixed (seeded)
starting phases of the multitone. The speed of sound follows the air temperature,
:math:`c(T) = 331.3\sqrt{1 + T/273.15}` m/s, so a temperature change re-phases every path: the
classic drift source of reverberant rooms. The loudspeaker's cone excursion limit is modelled as
:math:`u(a) = s \tanh(a/s)` (``speaker_saturation`` = :math:`s`; None = linear speaker).

The measurement is the power :math:`|p_{mk}|^2` in each (microphone, frequency) bin: square-law
detection is the nonlinearity. Each bin is read through an amplifier whose gain is set once so
that 4× the bin's mean power is the ADC's full scale (gain staging, done at construction with
the system's own calibration drives, not counted as queries); detector noise of standard
deviation ``noise_std`` (in units of full scale) is added, and the result is quantized by an
``adc_bits`` converter that clips to [0, 1] full scale. Outputs are therefore in full-scale
units, in [0, 1].

Parameters and their physical meaning
-------------------------------------
===================== ========================================================= ==============
parameter             meaning                                                   default
===================== ========================================================= ==============
n_inputs              loudspeakers (drive channels)                              —
n_outputs             measured (microphone, frequency) bins; ``n_mics`` follows  —
n_freqs               tones per speaker                                          4
n_mics                microphones; if given, n_freqs = ceil(n_outputs / n_mics)  None
room_size_m           room dimensions (m)                                        (4.0, 3.2, 2.6)
t60_s                 reverberation time T60 (s)                                 0.6
band_hz               lowest and highest tone (Hz)                               (400, 2000)
n_paths               propagation paths per speaker–microphone pair              48
temperature_c         air temperature (°C), sets the speed of sound              20.0
fabrication_std_m     path-length error of the built room vs its design (m)      0.005
encoding              "amplitude" or "phase"                                     "amplitude"
speaker_saturation    loudspeaker excursion limit s, None = linear               None
noise_std             detector noise std, fraction of full scale                 1e-3
adc_bits              converter resolution (bits), None = ideal                  12
channel_power_w       electrical power of one speaker at full drive (W)          0.01
window_s              measurement window per sample (s)                          0.01
seed                  positions, paths, tone phases and noise stream             0
===================== ========================================================= ==============

Perturbation: :meth:`AcousticCavity.perturb` changes the air temperature by ``strength`` °C
(a step: a door opened, the air conditioning switching; a random walk: slow thermal drift). At
20 °C, 1 °C changes c by 0.17 %, which re-phases a path of length L at frequency f by
:math:`2\pi f L \cdot 0.0017 / c`: about 0.1 rad for the direct path at 1 kHz, several radians
for the late reverberant paths. The early paths carry most of the power, so with the defaults
a 1 °C step changes the measured powers by ~3 % (mean absolute change / mean power) and a
10 °C step (``typical_perturbation``: a heating failure, a door to the outside) by ~28 %
(correlation 0.83 with the powers before).

Energy per query = ``n_inputs × channel_power_w × window_s``: a 10 mW small loudspeaker
channel driven for a 10 ms window (≈100 Hz frequency resolution), i.e. 0.1 mJ per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor

from phyll.params import as_plain, check, param
from phyll.systems.base import MemoryNeed, OutOfRange, PhysicalSystem
from phyll.systems.detection import calibrate_full_scale, detect

SPEED_OF_SOUND_0C = 331.3  # m/s, dry air at 0 °C
DECAY_60DB = 3.0 * math.log(10.0)  # amplitude e-folding per T60 for a 60 dB energy drop


def speed_of_sound(temperature_c: float) -> float:
    """Speed of sound in dry air (m/s) at ``temperature_c``."""
    return SPEED_OF_SOUND_0C * math.sqrt(1.0 + temperature_c / 273.15)


@dataclass(frozen=True)
class AcousticParams:
    """The acoustic cavity's parameters (module docstring: their physical meaning)."""

    n_freqs: int = param(4, "tones per speaker", low=1, high=1024)
    n_mics: int | None = param(
        None, "microphones; if given, n_freqs = ceil(n_outputs / n_mics)", low=1, high=2**22
    )
    room_size_m: tuple[float, float, float] = param((4.0, 3.2, 2.6), "room dimensions", "m")
    t60_s: float = param(0.6, "reverberation time T60", "s")
    band_hz: tuple[float, float] = param((400.0, 2000.0), "lowest and highest tone", "Hz")
    n_paths: int = param(48, "propagation paths per speaker–microphone pair", low=1, high=4096)
    temperature_c: float = param(20.0, "air temperature (sets the speed of sound)", "°C")
    fabrication_std_m: float = param(0.005, "path-length error of the built room", "m")
    encoding: Literal["amplitude", "phase"] = param("amplitude", "the drive sets amplitude/phase")
    speaker_saturation: float | None = param(None, "loudspeaker excursion limit (None: linear)")
    noise_std: float = param(1e-3, "detector noise std", "fraction of full scale")
    adc_bits: int | None = param(12, "converter resolution (None: ideal)", "bits", low=1, high=32)
    channel_power_w: float = param(0.01, "electrical power of one speaker at full drive", "W")
    window_s: float = param(0.01, "measurement window per sample (the device time)", "s")
    out_of_range: OutOfRange = param("clip", "drive outside [0, 1]: clip or raise")

    def __post_init__(self) -> None:
        check(self.n_mics is None or self.n_mics >= 1, f"n_mics must be >= 1, got {self.n_mics}")
        check(
            self.t60_s > 0 and self.n_paths >= 1 and self.n_freqs >= 1,
            "t60_s, n_paths and n_freqs must be positive",
        )
        check(self.noise_std >= 0 and self.fabrication_std_m >= 0, "noise and errors >= 0")
        check(
            self.speaker_saturation is None or self.speaker_saturation > 0,
            "speaker_saturation must be positive or None",
        )
        check(self.window_s > 0 and self.channel_power_w >= 0, "window_s > 0, power >= 0")


class AcousticCavity(PhysicalSystem):
    """Loudspeakers → reverberant room → microphone power spectra (see module docstring).

    Args:
        n_inputs: loudspeakers.
        n_outputs: measured (microphone, frequency) bins.
        params: :class:`AcousticParams` (default: their defaults); ``**overrides`` by name.
        seed: positions, paths, tone phases and noise stream.
        device: torch device of the simulation.
    """

    differentiable = True
    perturbation = "air temperature change (°C); re-phases every propagation path"
    typical_perturbation = 10.0
    Params = AcousticParams

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        params: AcousticParams | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **overrides: Any,
    ) -> None:
        p: AcousticParams = self.resolve_params(params, overrides)
        super().__init__(
            n_inputs,
            n_outputs,
            drive_range=(0.0, 1.0),
            out_of_range=p.out_of_range,
            power_w=n_inputs * p.channel_power_w,
            measurement_time_s=p.window_s,
            device=device,
        )
        self.params, self.seed = p, seed
        n_freqs = p.n_freqs if p.n_mics is None else math.ceil(n_outputs / p.n_mics)
        self.n_freqs = n_freqs
        self.n_mics = math.ceil(n_outputs / n_freqs)
        self.encoding = p.encoding
        self.speaker_saturation = p.speaker_saturation
        self.noise_std = p.noise_std
        self.adc_bits = p.adc_bits

        geometry = torch.Generator().manual_seed(seed)
        room = torch.tensor(p.room_size_m, dtype=torch.float64)
        margin = 0.3
        speakers = margin + (room - 2 * margin) * torch.rand(n_inputs, 3, generator=geometry)
        mics = margin + (room - 2 * margin) * torch.rand(self.n_mics, 3, generator=geometry)
        direct = torch.cdist(mics, speakers)  # [M, N] metres
        c0 = speed_of_sound(20.0)
        delay = p.t60_s * torch.rand(self.n_mics, n_inputs, p.n_paths, generator=geometry) ** (
            1 / 3
        )
        delay[..., 0] = 0.0  # the direct path
        lengths = direct[..., None] + c0 * delay  # [M, N, P]
        signs = torch.where(torch.rand(lengths.shape, generator=geometry) < 0.5, -1.0, 1.0)
        signs[..., 0] = 1.0
        if p.fabrication_std_m > 0:
            built = torch.Generator().manual_seed(seed + 3)
            lengths = lengths + p.fabrication_std_m * torch.randn(lengths.shape, generator=built)
        amplitudes = signs * torch.exp(-DECAY_60DB * delay / p.t60_s) / lengths
        self.freqs_hz = torch.linspace(p.band_hz[0], p.band_hz[1], n_freqs, dtype=torch.float64)
        tone_phases = 2 * math.pi * torch.rand(n_inputs, n_freqs, generator=geometry)
        # the geometry lives on the device: a temperature change (drift) rebuilds the transfer
        # there, with no host round trip
        dev = self.device
        self._path_lengths, self._path_amplitudes = lengths.to(dev), amplitudes.to(dev)
        self._freqs, self._tone_phases = self.freqs_hz.to(dev), tone_phases.to(dev)
        # output bin j ↔ (microphone j // n_freqs, frequency j % n_freqs)
        self._bin_mic = torch.arange(n_outputs, device=dev) // n_freqs
        self._bin_freq = torch.arange(n_outputs, device=dev) % n_freqs

        self._noise = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.temperature_c = p.temperature_c
        self._transfer = self._build_transfer()
        self.calibration_queries = 2048  # the gain-staging drives below
        self._full_scale = calibrate_full_scale(
            self._power, n_inputs, 2048, torch.Generator().manual_seed(seed + 2), self.device, 1e-12
        )

    @classmethod
    def memory_need(
        cls, n_inputs: int, n_outputs: int, params: AcousticParams | None = None
    ) -> MemoryNeed:
        """The room's paths (two float64 ``[mics, speakers, paths]`` arrays) and transfer
        matrices kept; its construction holds a few path arrays at once (the largest
        temporaries: the transfer is built one frequency at a time); a call holds the drive,
        the interleaved pressures and their powers."""
        p = params or AcousticParams()
        n_freqs = p.n_freqs if p.n_mics is None else math.ceil(n_outputs / p.n_mics)
        paths = math.ceil(n_outputs / n_freqs) * n_inputs * p.n_paths
        per_sample = 4 * (n_inputs + 6 * n_outputs)
        return MemoryNeed(
            resident=16 * paths + 16 * n_outputs * n_inputs,
            building=48 * paths + 2048 * per_sample,
            per_sample=per_sample,
        )

    # ------------------------------------------------------------------ physics
    def _build_transfer(self) -> Tensor:
        """Complex transfer ``[n_outputs, n_inputs]`` from speaker drive to each bin's pressure."""
        c = speed_of_sound(self.temperature_c)
        lengths, amplitudes = self._path_lengths, self._path_amplitudes  # [M, N, P]
        h = torch.empty(
            len(self._freqs), *lengths.shape[:2], dtype=torch.complex128, device=lengths.device
        )
        for j, f in enumerate(self._freqs.tolist()):  # one frequency at a time: [M, N, P]
            phase = lengths * (-2 * math.pi * f / c)  # temporaries, not [K, M, N, P] complex;
            # real cos/sin: a third of the time of a complex exp of an imaginary argument
            h[j] = torch.complex(
                (amplitudes * phase.cos()).sum(-1), (amplitudes * phase.sin()).sum(-1)
            )
        h = h * torch.exp(1j * self._tone_phases.T)[:, None, :]  # multitone starting phases
        transfer = h[self._bin_freq, self._bin_mic, :]  # [n_outputs, N]
        transfer = transfer.to(torch.complex64)
        # real [N, 2 n_outputs] with interleaved (re, im) columns: a real drive amplitude times
        # it gives the complex pressures at half the arithmetic of a complex product
        self._transfer_real = torch.view_as_real(transfer.T).reshape(self.n_inputs, -1)
        return transfer

    def _speaker_field(self, drive: Tensor) -> Tensor:
        """Complex source strength of each speaker for a drive in [0, 1]."""
        if self.encoding == "phase":
            return torch.polar(torch.ones_like(drive), math.pi * drive)
        amplitude = drive
        if self.speaker_saturation is not None:
            s = self.speaker_saturation
            amplitude = s * torch.tanh(drive / s)
        return amplitude.to(torch.complex64)

    def _power(self, drive: Tensor) -> Tensor:
        if self.encoding == "phase":
            pressure = torch.view_as_real(self._speaker_field(drive) @ self._transfer.T)
        else:  # real amplitudes: one real product, interleaved (re, im) output
            amplitude = drive
            if self.speaker_saturation is not None:
                s = self.speaker_saturation
                amplitude = s * torch.tanh(drive / s)
            pressure = (amplitude @ self._transfer_real).view(drive.shape[0], -1, 2)
        return pressure.square().sum(-1)

    def _measure(self, drive: Tensor) -> Tensor:
        return detect(
            self._power(drive) / self._full_scale, self.noise_std, self.adc_bits, self._noise
        )

    def nominal(self) -> AcousticCavity:
        """The design: same room and seed at 20 °C, no fabrication error, no noise, ideal ADC."""
        design = replace(
            self.params, fabrication_std_m=0.0, noise_std=0.0, adc_bits=None, temperature_c=20.0
        )
        return AcousticCavity(
            self.n_inputs, self.n_outputs, design, seed=self.seed, device=self.device
        )

    # ------------------------------------------------------------------ knobs
    def perturb(self, strength: float = 1.0) -> None:
        """Temperature jump of ``strength`` °C (sound speed change; see module docstring)."""
        self.set_temperature(self.temperature_c + float(strength))

    def set_temperature(self, temperature_c: float) -> None:
        """Change the air temperature (re-phases every path; the gain staging is kept)."""
        self.temperature_c = float(temperature_c)
        self._transfer = self._build_transfer()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "temperature_c": self.temperature_c,
            "noise_rng": self._noise.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if float(state["temperature_c"]) != self.temperature_c:  # rebuilding costs a solve
            self.set_temperature(state["temperature_c"])
        self._noise.set_state(state["noise_rng"])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            **as_plain(self.params),
            "seed": self.seed,
            "n_freqs": self.n_freqs,
            "n_mics": self.n_mics,
            "temperature_c": self.temperature_c,
        }

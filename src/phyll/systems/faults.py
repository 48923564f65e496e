r"""Imperfections as wrappers: each one is a :class:`PhysicalSystem` around any other.

``MeasurementNoise(DriveQuantization(make_system("optical", 64, 128), bits=1), std=0.01)`` is a
1-bit SLM optical system with extra detector noise; wrappers nest in any order, are seeded, and
carry their state (random stream, drift position, burst in progress) in :meth:`state_dict`.
Each declares its parameters (a ``Params`` dataclass, :mod:`phyll.params`), so a run's
configuration can name them: ``faults=[{"name": "drift", "std": 1.0}]``.

The black-box contract is kept: a wrapper declares its inner system's channels, drive range
and out-of-range policy, validates the drive like any system, and is what the network calls.
**Accounting**: the meters count every ``PhysicalSystem.__call__``; a wrapper therefore drives
its inner system through ``inner._run`` (validation + measurement + the inner query counter,
no meter report), so one wrapped sample is one physical query in the run's costs however deep
the stack, while both the wrapper's and the inner system's :attr:`queries` advance.

======================= ======================================================================
wrapper                 what it models
======================= ======================================================================
MeasurementNoise        extra Gaussian detector noise of std ``std`` (measurement units), or
                        multiplicative ``z (1 + std ε)`` with ``relative=True``
DriveQuantization       a ``bits``-bit driver: the drive is rounded to :math:`2^{bits}` levels
                        of the drive range (``bits=1``: 1-bit metasurface / binary SLM);
                        straight-through gradient
Drift                   slow drift: a parameter random-walks over queries, increments
                        :math:`\mathcal N(0, \sigma^2 B / Q)` per batch of B samples (σ =
                        ``std`` per ``per_queries`` = Q queries). ``target="system"`` walks the
                        system's own :meth:`~PhysicalSystem.perturb` parameter (temperature,
                        scatterer position, medium); ``target="gain"`` walks the log-gain of
                        the detector (works on every system, a real instrument included)
StepPerturbation        a sudden change at query ``at_query``: ``perturb(strength)`` of the
                        system (``target="system"``) or a gain step ``×(1 + strength)``
NaNBursts               detector dropouts: each sample starts a burst with probability
                        ``rate``; a burst makes ``length`` consecutive samples (across calls)
                        read NaN in every channel, which the base class refuses loudly
Latency                 a slow instrument: ``per_call_s + per_sample_s × B`` seconds per call,
                        counted as device time
======================= ======================================================================
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from phyll.errors import ConfigError
from phyll.params import as_plain, check, param
from phyll.plugins import Registry, subclasses_of
from phyll.systems.base import PhysicalSystem

Target = Literal["system", "gain"]


@dataclass(frozen=True)
class FaultParams:
    """A fault wrapper without parameters."""


class FaultWrapper(PhysicalSystem):
    """Base of the fault wrappers: same channels, range and physics as ``inner``, plus a fault.

    Subclasses declare :attr:`Params` and override :meth:`_before` (change the drive or the
    system before the batch) and/or :meth:`_after` (change the measurement).
    """

    Params: ClassVar[type | None] = FaultParams
    #: where the wrapper's random stream lives: "host" for decisions taken in Python (drift
    #: steps, burst starts: no device round trip), "system" for noise drawn on the system's
    #: device (no host-to-device copy per call)
    random_on: ClassVar[Literal["host", "system"]] = "host"

    def __init__(self, inner: PhysicalSystem, params: Any = None, **overrides: Any) -> None:
        super().__init__(
            inner.n_inputs,
            inner.n_outputs,
            drive_range=inner.drive_range,
            out_of_range=inner.out_of_range,
            power_w=inner.power_w,
            measurement_time_s=inner.measurement_time_s,
            device=inner.device,
        )
        self.params = self.resolve_params(params, overrides)
        self.inner = inner
        self.differentiable = inner.differentiable
        self.perturbation = inner.perturbation
        self.typical_perturbation = inner.typical_perturbation
        rng_device = self.device if self.random_on == "system" else torch.device("cpu")
        seed = int(getattr(self.params, "seed", 0))
        self._rng = torch.Generator(device=rng_device).manual_seed(seed)

    # ------------------------------------------------------------------ physics
    def _measure(self, drive: Tensor) -> Tensor:
        drive = self._before(drive)
        out = self.inner._run(self.inner._validate_drive(drive))
        return self._after(out)

    def _before(self, drive: Tensor) -> Tensor:
        return drive

    def _after(self, out: Tensor) -> Tensor:
        return out

    def _randn(self, shape: torch.Size | tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=self._rng, device=self._rng.device)

    # ------------------------------------------------------------------ delegation
    @property
    def perturbable(self) -> bool:
        return self.inner.perturbable

    @property
    def output_grid(self) -> tuple[int, int] | None:  # type: ignore[override]
        return self.inner.output_grid

    @property
    def calibration_queries(self) -> int:  # type: ignore[override]
        """The inner device's calibration drives (a fault makes none)."""
        return self.inner.calibration_queries

    @property
    def fixed_size(self) -> bool:  # type: ignore[override]
        return self.inner.fixed_size

    @property
    def device_key(self) -> Hashable:
        return self.inner.device_key

    def perturb(self, strength: float = 1.0) -> None:
        self.inner.perturb(strength)

    def nominal(self) -> PhysicalSystem:
        """The design model of the inner system: faults are not part of the design."""
        return self.inner.nominal()

    @functools.cached_property
    def emulation_flops_per_query(self) -> int | None:
        """The inner system's (faults are not part of the design: same nominal model)."""
        return self.inner.emulation_flops_per_query

    def device_time(self, n_samples: int, elapsed_s: float) -> float:
        """The inner device's time (a fault adds none, unless it is a delay)."""
        return self.inner.device_time(n_samples, elapsed_s)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "fault": {"class": type(self).__name__, **as_plain(self.params)},
            "inner": self.inner.describe(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "rng": self._rng.get_state(),
            "inner": self.inner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._rng.set_state(state["rng"])
        self.inner.load_state_dict(state["inner"])


@dataclass(frozen=True)
class NoiseParams:
    std: float = param(0.01, "noise standard deviation", "measurement units (relative: fraction)")
    relative: bool = param(False, "multiplicative noise z (1 + std ε) instead of additive")
    seed: int = param(0, "seed of the noise stream")

    def __post_init__(self) -> None:
        check(self.std >= 0, f"noise std must be >= 0, got {self.std}")


class MeasurementNoise(FaultWrapper):
    """Additive (or, with ``relative=True``, multiplicative) Gaussian measurement noise."""

    Params = NoiseParams
    params: NoiseParams
    random_on = "system"

    def _after(self, out: Tensor) -> Tensor:
        noise = self.params.std * self._randn(out.shape).to(out.dtype)
        return out * (1 + noise) if self.params.relative else out + noise


@dataclass(frozen=True)
class QuantizationParams:
    bits: int = param(
        1, "driver resolution: the drive takes 2**bits levels", "bits", low=1, high=32
    )

    def __post_init__(self) -> None:
        check(self.bits >= 1, f"bits must be >= 1, got {self.bits}")


class DriveQuantization(FaultWrapper):
    """A ``bits``-bit driver: drive rounded to ``2**bits`` levels (straight-through gradient)."""

    Params = QuantizationParams
    params: QuantizationParams

    def _before(self, drive: Tensor) -> Tensor:
        low, high = self.drive_range
        levels = 2**self.params.bits - 1
        unit = (drive - low) / (high - low)
        q = low + (high - low) * torch.round(unit * levels) / levels
        return drive + (q - drive).detach()


class _Perturbing(FaultWrapper):
    """Shared by drift and step: moves the system's perturbation parameter or the gain."""

    def __init__(self, inner: PhysicalSystem, params: Any = None, **overrides: Any) -> None:
        super().__init__(inner, params, **overrides)
        self.target: Target = self.params.target
        if self.target == "system" and not inner.perturbable:
            raise ConfigError(
                f"{type(inner).__name__} has no perturbation model; use target='gain'"
            )
        self.log_gain = 0.0  # detector log-gain (target="gain")
        self.displacement = 0.0  # total perturbation applied so far (system units or log-gain)

    def _move(self, amount: float) -> None:
        if self.target == "system":
            self.inner.perturb(amount)
        else:
            self.log_gain += amount
        self.displacement += amount

    def _after(self, out: Tensor) -> Tensor:
        return out * math.exp(self.log_gain) if self.log_gain else out

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "log_gain": self.log_gain,
            "displacement": self.displacement,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.log_gain = float(state["log_gain"])
        self.displacement = float(state["displacement"])


@dataclass(frozen=True)
class DriftParams:
    std: float = param(1.0, "random-walk std per per_queries queries", "perturbation unit")
    per_queries: int = param(1000, "queries over which the walk has std `std`", "queries")
    target: Target = param("system", "walk the system's perturbation (system) or the gain")
    seed: int = param(0, "seed of the walk")

    def __post_init__(self) -> None:
        check(self.std >= 0 and self.per_queries >= 1, "drift std >= 0 and per_queries >= 1")


class Drift(_Perturbing):
    """Random walk over queries of the system's perturbation parameter (or log-gain).

    Before a batch of B samples the parameter moves by :math:`\\mathcal N(0, \\sigma^2 B/Q)`
    with σ = ``std`` and Q = ``per_queries``: after n queries its spread is σ √(n/Q).
    """

    Params = DriftParams
    params: DriftParams

    def _before(self, drive: Tensor) -> Tensor:
        step = self.params.std * math.sqrt(drive.shape[0] / self.params.per_queries)
        self._move(step * float(torch.randn((), generator=self._rng, device="cpu")))
        return drive


@dataclass(frozen=True)
class StepParams:
    strength: float = param(1.0, "size of the step (target gain: relative gain change)", "unit")
    at_query: int | None = param(None, "the step applies from this query count (None: unarmed)")
    at_epoch: int | None = param(None, "arm the step at the start of this epoch (after it)")
    target: Target = param("system", "change the system's perturbation (system) or the gain")


class StepPerturbation(_Perturbing):
    """A sudden change of ``strength`` when the query count reaches ``at_query``.

    It applies from the first call that starts at or after ``at_query`` queries (a batch is
    measured in one go, as an instrument would); :meth:`schedule` (re)arms it, e.g. at the
    query count reached mid-training. ``at_epoch`` asks the training engine to arm it at the
    start of that epoch (:class:`phyll.experiments.build.StepSchedule`).
    """

    Params = StepParams
    params: StepParams

    def __init__(self, inner: PhysicalSystem, params: Any = None, **overrides: Any) -> None:
        super().__init__(inner, params, **overrides)
        self.at_query = self.params.at_query
        self.at_epoch = self.params.at_epoch
        self.applied_at: int | None = None

    def schedule(self, at_query: int) -> None:
        """Arm the step for the first call starting at or after ``at_query`` queries."""
        if self.applied_at is not None:
            raise ConfigError(f"the step perturbation was already applied at {self.applied_at}")
        self.at_query = int(at_query)

    def _before(self, drive: Tensor) -> Tensor:
        if self.applied_at is None and self.at_query is not None and self.queries >= self.at_query:
            strength = self.params.strength
            self._move(strength if self.target == "system" else math.log1p(strength))
            self.applied_at = self.queries
        return drive

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "at_query": self.at_query, "applied_at": self.applied_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.at_query = state["at_query"]
        self.applied_at = state["applied_at"]


@dataclass(frozen=True)
class BurstParams:
    rate: float = param(0.001, "probability that a sample starts a burst")
    length: int = param(1, "samples per burst (bursts span calls)", "samples")
    seed: int = param(0, "seed of the bursts")

    def __post_init__(self) -> None:
        check(0.0 <= self.rate <= 1.0 and self.length >= 1, "rate in [0, 1] and length >= 1")


class NaNBursts(FaultWrapper):
    """Detector dropouts: bursts of ``length`` consecutive samples read NaN in every channel."""

    Params = BurstParams
    params: BurstParams

    def __init__(self, inner: PhysicalSystem, params: Any = None, **overrides: Any) -> None:
        super().__init__(inner, params, **overrides)
        self._remaining = 0  # samples of a burst still to come (bursts span calls)

    def _after(self, out: Tensor) -> Tensor:
        batch, length = out.shape[0], self.params.length
        mask = torch.zeros(batch, dtype=torch.bool, device="cpu")  # host state, spans calls
        mask[: self._remaining] = True
        end = self._remaining
        starts = torch.rand(batch, generator=self._rng, device="cpu") < self.params.rate
        for start in torch.nonzero(starts)[:, 0]:
            mask[int(start) : int(start) + length] = True
            end = max(end, int(start) + length)
        self._remaining = max(end - batch, 0)
        if end == 0:  # no dropout in this batch: nothing to copy to the device
            return out
        return out.masked_fill(mask.to(out.device)[:, None], float("nan"))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "remaining": self._remaining}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._remaining = int(state["remaining"])


@dataclass(frozen=True)
class LatencyParams:
    per_call_s: float = param(0.0, "wait per call", "s")
    per_sample_s: float = param(0.0, "wait per sample", "s")

    def __post_init__(self) -> None:
        check(self.per_call_s >= 0 and self.per_sample_s >= 0, "latencies must be >= 0")


class Latency(FaultWrapper):
    """A slow instrument: waits ``per_call_s + per_sample_s × B`` seconds per call, which the
    device time counts on top of the inner device's."""

    Params = LatencyParams
    params: LatencyParams

    def delay(self, n_samples: int) -> float:
        return self.params.per_call_s + self.params.per_sample_s * n_samples

    def _before(self, drive: Tensor) -> Tensor:
        time.sleep(self.delay(drive.shape[0]))
        return drive

    def device_time(self, n_samples: int, elapsed_s: float) -> float:
        if self.measurement_time_s is None:
            return elapsed_s  # measured: the wait is in it
        return super().device_time(n_samples, elapsed_s) + self.delay(n_samples)


#: fault wrappers by name (``FAULTS[name](system, **params)``; ``faults`` in a run's config),
#: installed packages' ``phyll.faults`` entry points included
FAULTS: Registry[type[FaultWrapper]] = Registry(
    "fault",
    "phyll.faults",
    {
        "noise": MeasurementNoise,
        "quantize": DriveQuantization,
        "drift": Drift,
        "step": StepPerturbation,
        "nan-bursts": NaNBursts,
        "latency": Latency,
    },
    accept=subclasses_of(FaultWrapper),
)

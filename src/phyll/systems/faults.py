r"""Imperfections as wrappers: each one is a :class:`PhysicalSystem` around any other.

``MeasurementNoise(DriveQuantization(make_system("optical", 64, 128), bits=1), std=0.01)`` is a
1-bit SLM optical system with extra detector noise; wrappers nest in any order, are seeded, and
carry their state (random stream, drift position, burst in progress) in :meth:`state_dict`.

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
                        counted as physical time
======================= ======================================================================
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import torch
from torch import Tensor

from phyll.systems.base import PhysicalSystem

Target = Literal["system", "gain"]


class FaultWrapper(PhysicalSystem):
    """Base of the fault wrappers: same channels, range and physics as ``inner``, plus a fault.

    Subclasses override :meth:`_before` (change the drive or the system before the batch) and/or
    :meth:`_after` (change the measurement).
    """

    def __init__(self, inner: PhysicalSystem, seed: int = 0) -> None:
        super().__init__(
            inner.n_inputs,
            inner.n_outputs,
            drive_range=inner.drive_range,
            out_of_range=inner.out_of_range,
            energy_per_query_j=inner.energy_per_query_j,
            device=inner.device,
        )
        self.inner = inner
        self.differentiable = inner.differentiable
        self.perturbation = inner.perturbation
        self.typical_perturbation = inner.typical_perturbation
        self.seed = int(seed)
        self._rng = torch.Generator().manual_seed(self.seed)

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
        return torch.randn(shape, generator=self._rng).to(self.device)

    # ------------------------------------------------------------------ delegation
    @property
    def perturbable(self) -> bool:
        return self.inner.perturbable

    def perturb(self, strength: float = 1.0) -> None:
        self.inner.perturb(strength)

    def nominal(self) -> PhysicalSystem:
        """The design model of the inner system: faults are not part of the design."""
        return self.inner.nominal()

    def fault(self) -> dict[str, Any]:
        """This wrapper's parameters (for describe)."""
        return {"seed": self.seed}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "fault": {"class": type(self).__name__, **self.fault()},
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


class MeasurementNoise(FaultWrapper):
    """Additive (or, with ``relative=True``, multiplicative) Gaussian measurement noise."""

    def __init__(
        self, inner: PhysicalSystem, std: float, relative: bool = False, seed: int = 0
    ) -> None:
        super().__init__(inner, seed)
        if std < 0:
            raise ValueError(f"noise std must be >= 0, got {std}")
        self.std = float(std)
        self.relative = relative

    def _after(self, out: Tensor) -> Tensor:
        noise = self.std * self._randn(out.shape).to(out.dtype)
        return out * (1 + noise) if self.relative else out + noise

    def fault(self) -> dict[str, Any]:
        return {**super().fault(), "std": self.std, "relative": self.relative}


class DriveQuantization(FaultWrapper):
    """A ``bits``-bit driver: drive rounded to ``2**bits`` levels (straight-through gradient)."""

    def __init__(self, inner: PhysicalSystem, bits: int) -> None:
        super().__init__(inner)
        if bits < 1:
            raise ValueError(f"bits must be >= 1, got {bits}")
        self.bits = int(bits)

    def _before(self, drive: Tensor) -> Tensor:
        low, high = self.drive_range
        levels = 2**self.bits - 1
        unit = (drive - low) / (high - low)
        q = low + (high - low) * torch.round(unit * levels) / levels
        return drive + (q - drive).detach()

    def fault(self) -> dict[str, Any]:
        return {"bits": self.bits}


class _Perturbing(FaultWrapper):
    """Shared by drift and step: moves the system's perturbation parameter or the gain."""

    def __init__(self, inner: PhysicalSystem, target: Target, seed: int) -> None:
        super().__init__(inner, seed)
        if target not in ("system", "gain"):
            raise ValueError(f"target must be 'system' or 'gain', got {target!r}")
        if target == "system" and not inner.perturbable:
            raise ValueError(f"{type(inner).__name__} has no perturbation model; use target='gain'")
        self.target: Target = target
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


class Drift(_Perturbing):
    """Random walk over queries of the system's perturbation parameter (or log-gain).

    Before a batch of B samples the parameter moves by :math:`\\mathcal N(0, \\sigma^2 B/Q)`
    with σ = ``std`` and Q = ``per_queries``: after n queries its spread is σ √(n/Q).
    """

    def __init__(
        self,
        inner: PhysicalSystem,
        std: float,
        per_queries: int = 1000,
        target: Target = "system",
        seed: int = 0,
    ) -> None:
        super().__init__(inner, target, seed)
        if std < 0 or per_queries < 1:
            raise ValueError("drift std must be >= 0 and per_queries >= 1")
        self.std = float(std)
        self.per_queries = int(per_queries)

    def _before(self, drive: Tensor) -> Tensor:
        step = self.std * math.sqrt(drive.shape[0] / self.per_queries)
        self._move(step * float(torch.randn((), generator=self._rng)))
        return drive

    def fault(self) -> dict[str, Any]:
        return {
            **super().fault(),
            "std": self.std,
            "per_queries": self.per_queries,
            "target": self.target,
        }


class StepPerturbation(_Perturbing):
    """A sudden change of ``strength`` when the query count reaches ``at_query``.

    It applies from the first call that starts at or after ``at_query`` queries (a batch is
    measured in one go, as an instrument would); :meth:`schedule` (re)arms it, e.g. at the
    query count reached mid-training.
    """

    def __init__(
        self,
        inner: PhysicalSystem,
        at_query: int | None,
        strength: float = 1.0,
        target: Target = "system",
    ) -> None:
        super().__init__(inner, target, seed=0)
        self.strength = float(strength)
        self.at_query = at_query
        self.applied_at: int | None = None

    def schedule(self, at_query: int) -> None:
        """Arm the step for the first call starting at or after ``at_query`` queries."""
        if self.applied_at is not None:
            raise ValueError(f"the step perturbation was already applied at {self.applied_at}")
        self.at_query = int(at_query)

    def _before(self, drive: Tensor) -> Tensor:
        if self.applied_at is None and self.at_query is not None and self.queries >= self.at_query:
            amount = self.strength if self.target == "system" else math.log1p(self.strength)
            self._move(amount)
            self.applied_at = self.queries
        return drive

    def fault(self) -> dict[str, Any]:
        return {"at_query": self.at_query, "strength": self.strength, "target": self.target}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "at_query": self.at_query, "applied_at": self.applied_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.at_query = state["at_query"]
        self.applied_at = state["applied_at"]


class NaNBursts(FaultWrapper):
    """Detector dropouts: bursts of ``length`` consecutive samples read NaN in every channel."""

    def __init__(self, inner: PhysicalSystem, rate: float, length: int = 1, seed: int = 0) -> None:
        super().__init__(inner, seed)
        if not 0.0 <= rate <= 1.0 or length < 1:
            raise ValueError("NaN burst rate must be in [0, 1] and length >= 1")
        self.rate = float(rate)
        self.length = int(length)
        self._remaining = 0  # samples of a burst still to come (bursts span calls)

    def _after(self, out: Tensor) -> Tensor:
        batch = out.shape[0]
        mask = torch.zeros(batch, dtype=torch.bool)
        mask[: self._remaining] = True
        end = self._remaining
        for start in torch.nonzero(torch.rand(batch, generator=self._rng) < self.rate)[:, 0]:
            mask[int(start) : int(start) + self.length] = True
            end = max(end, int(start) + self.length)
        self._remaining = max(end - batch, 0)
        return out.masked_fill(mask.to(out.device)[:, None], float("nan"))

    def fault(self) -> dict[str, Any]:
        return {**super().fault(), "rate": self.rate, "length": self.length}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "remaining": self._remaining}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._remaining = int(state["remaining"])


class Latency(FaultWrapper):
    """A slow instrument: waits ``per_call_s + per_sample_s × B`` seconds per call."""

    def __init__(self, inner: PhysicalSystem, per_call_s: float = 0.0, per_sample_s: float = 0.0):
        super().__init__(inner)
        if per_call_s < 0 or per_sample_s < 0:
            raise ValueError("latencies must be >= 0")
        self.per_call_s = float(per_call_s)
        self.per_sample_s = float(per_sample_s)

    def _before(self, drive: Tensor) -> Tensor:
        time.sleep(self.per_call_s + self.per_sample_s * drive.shape[0])
        return drive

    def fault(self) -> dict[str, Any]:
        return {"per_call_s": self.per_call_s, "per_sample_s": self.per_sample_s}


#: fault wrappers by name (``FAULTS[name](system, **params)``)
FAULTS: dict[str, type[FaultWrapper]] = {
    "noise": MeasurementNoise,
    "quantize": DriveQuantization,
    "drift": Drift,
    "step": StepPerturbation,
    "nan-bursts": NaNBursts,
    "latency": Latency,
}

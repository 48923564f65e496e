"""The physical system: a black box that can only be driven and measured.

A :class:`PhysicalSystem` maps a batch of drive signals ``[B, n_inputs]`` to a batch of real,
finite measurements ``[B, n_outputs]``. It declares its admissible drive range and what happens
outside it (``"clip"`` or ``"raise"``, never silent), counts the samples driven through it
(:attr:`queries`, never reset by a learner) and says whether an autograd path exists
(:attr:`differentiable`, False for every real device). Subclasses implement :meth:`_measure`
only; validation, accounting and error reporting live here so every system behaves the same.

Devices: a simulated system runs on the torch device it was built on (``device=``), keeps its
state there and returns its measurements there. On CUDA each call synchronises three times: once
before the physics (so that the learner's queued work is timed as digital, not as physics) and
once for each finiteness check of the drive and the measurement (the black-box contract: NaN
never reaches the hardware and never reaches the learner).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from phyll.accounting import metering, physical_call, unmetered
from phyll.errors import ConfigError, UserError
from phyll.flops import count_flops
from phyll.params import as_plain, build_params
from phyll.usercode import UserCodeError, user_code

OutOfRange = Literal["clip", "raise"]


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a CUDA device (nothing to wait for elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _all_finite(x: Tensor) -> bool:
    """No NaN/inf in ``x``: one sum first (any NaN/inf makes it non-finite), exact check after."""
    if bool(torch.isfinite(x.sum())):
        return True
    return bool(torch.isfinite(x).all())  # the sum may only have overflowed


class PhysicalSystemError(UserError, RuntimeError):
    """A physical system could not produce a valid measurement."""


class NonFiniteMeasurementError(PhysicalSystemError):
    """The system returned NaN or inf (a detector fault, a disconnected instrument...)."""


class SystemCodeError(PhysicalSystemError, UserCodeError):
    """A user's system code raised an exception while measuring (the message names both)."""


class DriveError(UserError, ValueError):
    """The drive signal has the wrong shape, is not finite, or is outside the declared range."""


@dataclass(frozen=True)
class MemoryNeed:
    """A system's memory in bytes, estimated from its sizes and parameters before it is built.

    Attributes:
        resident: what it keeps once built (matrices, geometry, caches).
        building: what its construction needs on top, for a moment (temporaries, the
            calibration drives).
        per_sample: the workspace of one call, per driven sample.
        workspace_cap: the most one call's workspace takes (a system that simulates in
            bounded chunks), None: unbounded.
    """

    resident: int
    building: int
    per_sample: int
    workspace_cap: int | None = None

    def call(self, rows: int) -> int:
        """The workspace of one call driving ``rows`` samples."""
        work = self.per_sample * rows
        return work if self.workspace_cap is None else min(work, self.workspace_cap)


class PhysicalSystem(ABC):
    """Base class of every physical system, simulated or real.

    Args:
        n_inputs: number of drive channels (speakers, SLM pixels, metasurface elements...).
        n_outputs: number of measured channels (microphones × frequencies, camera pixels...).
        drive_range: admissible drive interval ``(low, high)``.
        out_of_range: ``"clip"`` to clip drive into range, ``"raise"`` to refuse it.
        power_w: the device's power while it measures (sources, drivers, detectors), in W.
        measurement_time_s: the device time of one query (a measurement window, an exposure,
            a sweep), in s; None for a device whose time is measured per call (a remote or a
            wrapped instrument). Device time and energy (power × device time) of every query
            follow from these two; each system documents where its values come from.
        device: torch device the simulation runs on (ignored by real instruments).
    """

    #: True only for simulators that offer an end-to-end autograd path (in-silico baselines).
    differentiable: bool = False
    #: True when this object is used as a *digital model* (a simulator run by an in-silico
    #: learner, see :meth:`as_digital_model`): its calls are digital work, not physical queries.
    digital_model: bool = False
    #: Tolerance for drive values just outside the range due to float rounding.
    range_tolerance: float = 1e-6
    #: Called with every validated (drive, measurement) pair; see phyll.systems.recording.
    recorder: Callable[[Tensor, Tensor], None] | None = None
    #: The system's declared parameters (a dataclass of :func:`phyll.params.param` fields);
    #: None for systems without any
    Params: ClassVar[type | None] = None
    #: Drives the system made of itself when it was built (gain staging, exposure): physical
    #: queries the run's *setup* phase counts (:mod:`phyll.engine`).
    calibration_queries: int = 0
    #: ``(rows, cols)`` when the measurements are an image read in raster order (a camera's
    #: pixels), so that blocks can pool neighbouring pixels (``TrainConfig.pool``); None for
    #: measurements without a 2-D layout
    output_grid: tuple[int, int] | None = None
    #: True for a device whose channels are what they are (20 speakers, 20 microphones):
    #: the network is sized around it (block inputs = its inputs, measurements = its
    #: outputs) instead of asking for sizes (:mod:`phyll.systems.contract`)
    fixed_size: bool = False

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        drive_range: tuple[float, float] = (0.0, 1.0),
        out_of_range: OutOfRange = "clip",
        power_w: float = 0.0,
        measurement_time_s: float | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if n_inputs < 1 or n_outputs < 1:
            raise ConfigError(
                f"n_inputs and n_outputs must be positive, got {n_inputs}, {n_outputs}"
            )
        low, high = drive_range
        if not high > low:
            raise ConfigError(f"drive_range must be (low, high) with high > low, got {drive_range}")
        if out_of_range not in ("clip", "raise"):
            raise ConfigError(f"out_of_range must be 'clip' or 'raise', got {out_of_range!r}")
        self.n_inputs = int(n_inputs)
        self.n_outputs = int(n_outputs)
        self.drive_range = (float(low), float(high))
        self.out_of_range: OutOfRange = out_of_range
        if power_w < 0 or (measurement_time_s is not None and measurement_time_s < 0):
            raise ConfigError("power_w and measurement_time_s must be >= 0")
        self.power_w = float(power_w)
        self.measurement_time_s = None if measurement_time_s is None else float(measurement_time_s)
        self.device = torch.device(device)
        self._queries = 0

    @classmethod
    def memory_need(cls, n_inputs: int, n_outputs: int, params: Any = None) -> MemoryNeed:
        """This system's memory at these sizes (``params``: its resolved ``Params``, None for
        the defaults), estimated before anything is allocated: what a run's memory estimate
        (:mod:`phyll.experiments.memory_plan`) adds up. The default is a dense complex
        matrix between drive and measurement (8 bytes per channel pair), made once more while
        it is built, and 8 bytes per channel and sample per call; simulators override it with
        their own model, and a real device's memory is its driver's."""
        matrix = 8 * n_inputs * n_outputs
        return MemoryNeed(matrix, matrix, 8 * (n_inputs + n_outputs))

    @classmethod
    def resolve_params(cls, params: Any, overrides: dict[str, Any]) -> Any:
        """``params`` (or the declared defaults) with ``overrides`` applied and checked: an
        unknown name or a wrong type is one :class:`~phyll.params.ParamError` line."""
        if cls.Params is None:
            raise TypeError(f"{cls.__name__} declares no parameters (Params)")
        base = as_plain(params) if params is not None else {}
        return build_params(cls.Params, {**base, **overrides}, f"system {cls.__name__}")

    # ------------------------------------------------------------------ public interface
    @property
    def queries(self) -> int:
        """Samples driven through this system since it was built (or restored)."""
        return self._queries

    @property
    def device_key(self) -> Hashable:
        """What identifies the physical device behind this object: a device's calibration
        is counted once per run, however many blocks it serves."""
        return id(self)

    @property
    def energy_per_query_j(self) -> float | None:
        """Energy of one query (power × measurement time); None when the time is measured."""
        if self.measurement_time_s is None:
            return None
        return self.power_w * self.measurement_time_s

    def device_time(self, n_samples: int, elapsed_s: float) -> float:
        """Device time of a call of ``n_samples`` that took ``elapsed_s`` here: the declared
        measurement time per query, or the measured duration when none is declared."""
        if self.measurement_time_s is None:
            return elapsed_s
        return n_samples * self.measurement_time_s

    def __call__(self, drive: Tensor) -> Tensor:
        """Drive the system with a batch and return the measurements ``[B, n_outputs]``."""
        if self.digital_model:  # a simulator run by a digital learner: its FLOPs are digital
            drive = self._validate_drive(drive)
            return self._validate_measurement(self._run(drive), drive.shape[0])
        synchronize(self.device)  # the learner's queued work is digital time, not physics
        with physical_call(0, 0.0, lambda elapsed: 0.0):  # the interface's checks, not learning
            drive = self._validate_drive(drive)
        n = drive.shape[0]
        offloaded = n * (self.emulation_flops_per_query or 0) if metering() else 0
        device_time = functools.partial(self.device_time, n)
        with physical_call(n, self.power_w, device_time, offloaded):
            out = self._validate_measurement(self._run(drive), n)
        if self.recorder is not None:
            self.recorder(drive, out)
        return out

    def _run(self, drive: Tensor) -> Tensor:
        """Measure a validated drive and count its queries, without reporting to the meters.

        :meth:`__call__` wraps this in one :func:`~phyll.accounting.physical_call`; a wrapper
        around another system (:mod:`phyll.systems.faults`) calls its inner system's
        ``_run`` so that a wrapped query is counted once by the meters, not once per layer.
        """
        with self._user_code():
            if self.differentiable and torch.is_grad_enabled():
                out = self._measure(drive)
            else:
                with torch.no_grad():
                    out = self._measure(drive)
        self._queries += drive.shape[0]
        return out

    def _user_code(self) -> AbstractContextManager[None]:
        """Around a measurement: what a user's system (a class outside phyll) raises becomes
        one line naming it; phyll's own systems keep their tracebacks (a failure is a bug)."""
        if type(self).__module__.split(".")[0] == "phyll":
            return nullcontext()
        return user_code(f"system {type(self).__name__}", "measuring", SystemCodeError)

    @functools.cached_property
    def emulation_flops_per_query(self) -> int | None:
        """Digital FLOPs one query would cost if this system's transform were emulated.

        Counted once, by :func:`phyll.flops.count_flops`, on the :meth:`nominal` model's
        measurement (the design, noise-free) of one mid-range drive: the emulation of one
        query. Its few per-call operations (e.g. the microwave cavity's frequency terms, 20
        of its 44,772 FLOPs at 12 → 20 channels) are counted once per query, so batched
        emulation would cost at most that much less. Building the model and counting are kept
        out of any active meter (:func:`~phyll.accounting.unmetered`). None for a system
        without a digital model (a real, remote or wrapped instrument).
        """
        with unmetered():
            try:
                model = self.nominal()
            except NotImplementedError:
                return None
            low, high = model.drive_range
            drive = torch.full((1, model.n_inputs), (low + high) / 2, device=model.device)
            with torch.no_grad():
                return count_flops(model._measure, drive)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to restore the system exactly (counter, noise RNG...)."""
        return {"queries": self._queries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._queries = int(state["queries"])

    def describe(self) -> dict[str, Any]:
        """Plain-data description for run configs and reports."""
        return {
            "class": type(self).__name__,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "drive_range": list(self.drive_range),
            "differentiable": self.differentiable,
            "power_w": self.power_w,
            "measurement_time_s": self.measurement_time_s,
            "calibration_queries": self.calibration_queries,
            "emulation_flops_per_query": self.emulation_flops_per_query,
        }

    def nominal(self) -> PhysicalSystem:
        """The designer's model of this system: same design, no noise, no fabrication error.

        In-silico baselines train on it and deploy on the real system (the reality gap). A real
        instrument has no such model: the default refuses.
        """
        raise NotImplementedError(f"{type(self).__name__} has no nominal (digital) model")

    def as_digital_model(self) -> PhysicalSystem:
        """The :meth:`nominal` design model, marked as digital computation.

        Running a simulator to train in silico queries no hardware: its forward (and, through
        autograd, backward) FLOPs are counted as the learner's digital FLOPs, and no physical
        query is reported to the meters. The model keeps its own sample counter.
        """
        model = self.nominal()
        model.digital_model = True
        return model

    #: what :meth:`perturb`'s ``strength`` means for this system (unit and physical change)
    perturbation: str = "none: this system has no perturbation model"
    #: a strong but realistic step in those units (the robustness experiment's default)
    typical_perturbation: float = 1.0

    @property
    def perturbable(self) -> bool:
        """Whether :meth:`perturb` models a physical change of this system."""
        return type(self).perturb is not PhysicalSystem.perturb

    def perturb(self, strength: float = 1.0) -> None:
        """Change the system physically by ``strength`` (units: :attr:`perturbation`).

        Perturbations are cumulative and continuous (``perturb(a); perturb(b)`` equals
        ``perturb(a + b)``, ``perturb(-a)`` undoes ``perturb(a)``), so the drift wrapper can
        random-walk them; they are part of :meth:`state_dict`. Each simulator implements a
        physical change (a temperature jump, a moved scatterer, a changed medium). A real
        instrument cannot be perturbed on demand: the default refuses.
        """
        del strength
        raise NotImplementedError(
            f"{type(self).__name__} has no perturbation model; perturb its measurement with "
            "a fault wrapper (target='gain') instead"
        )

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _measure(self, drive: Tensor) -> Tensor:
        """Physics: validated, in-range drive ``[B, n_inputs]`` → measurement ``[B, n_outputs]``."""

    # ------------------------------------------------------------------ validation
    def _validate_drive(self, drive: Tensor) -> Tensor:
        if not isinstance(drive, Tensor):
            raise DriveError(f"drive must be a torch.Tensor, got {type(drive).__name__}")
        if drive.dim() != 2 or drive.shape[1] != self.n_inputs:
            raise DriveError(
                f"{type(self).__name__} expects drive of shape [batch, {self.n_inputs}], "
                f"got {list(drive.shape)}"
            )
        if drive.shape[0] == 0:
            raise DriveError("drive batch is empty")
        if not drive.is_floating_point():
            drive = drive.float()
        if not _all_finite(drive):
            raise DriveError(f"drive to {type(self).__name__} contains NaN or inf")
        low, high = self.drive_range
        tol = self.range_tolerance * (high - low)
        if self.out_of_range == "raise" and (
            (drive < low - tol).any() or (drive > high + tol).any()
        ):
            raise DriveError(
                f"drive outside {type(self).__name__}'s range [{low}, {high}]: "
                f"min {drive.min().item():.4g}, max {drive.max().item():.4g}"
            )
        return drive.clamp(low, high).to(self.device)

    def _validate_measurement(self, out: Tensor, batch: int) -> Tensor:
        if not isinstance(out, Tensor):
            out = torch.as_tensor(out, device="cpu")
        if tuple(out.shape) != (batch, self.n_outputs):
            raise PhysicalSystemError(
                f"{type(self).__name__} returned shape {list(out.shape)}, "
                f"expected [{batch}, {self.n_outputs}]"
            )
        if out.is_complex():
            raise PhysicalSystemError(f"{type(self).__name__} returned complex measurements")
        if not _all_finite(out):
            rows = int((~torch.isfinite(out)).any(dim=1).sum())
            raise NonFiniteMeasurementError(
                f"{type(self).__name__} returned NaN/inf in {rows} of {batch} samples"
            )
        return out.to(self.device, torch.float32)

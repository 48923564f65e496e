"""Instrumented cost accounting: physical queries, digital FLOPs, device and wall time, energy.

These figures are phyll's main claim, so they are measured, never estimated:

* **digital FLOPs** come from :class:`phyll.flops.FlopCounter` running around the learner's
  digital work (forward, backward, twin fitting, the optimizer's update): every aten operation
  counted by a documented formula (table in :mod:`phyll.flops`): matrix-class operations as
  PyTorch's ``FlopCounterMode`` counts them (2 per multiply-accumulate, 8 per complex one), FFTs
  as 5·N·log2 N, linear solves as ⅔·n³ + 2·n²·k, elementwise operations and reductions per
  element (transcendental functions 8), data movement 0; also broken down by kind
  (``digital_flops_by_kind``: matmul, fft, linalg, elementwise). :func:`count_flops` counts a
  call.
* the **simulation of the physics** is *not* digital work of the learner: every
  :class:`~phyll.systems.base.PhysicalSystem` call (its drive and measurement checks included)
  reports itself to the active meters through :func:`physical_call`, and the FLOPs and CPU
  seconds spent inside it are moved out of the digital column: the seconds are
  ``simulation_time_s``.
* **device time** (``device_time_s``) is what the hardware would take: each system declares its
  measurement time per query (the acoustic window, the camera exposure, the analyser's sweep),
  or, for a device whose time is not declared (a remote or user-wrapped instrument), the call's
  measured duration. **Energy** of the physics is the system's power × that same device time,
  so device time and energy can never disagree; digital energy is FLOPs × energy per FLOP.
* **projected time** (``projected_time_s``) = device time + digital time (the wall time spent
  outside the systems, on this CPU): what the run would take with the hardware in the loop,
  the figure to compare across rules.
* a simulator used as a **digital model** by an in-silico learner
  (:meth:`~phyll.systems.base.PhysicalSystem.as_digital_model`, e.g. in-silico backprop)
  queries no hardware: its calls do not enter :func:`physical_call`, so its forward FLOPs and
  the FLOPs of its autograd backward pass (which always runs outside any call's context) are
  the learner's digital FLOPs, and no physical query is reported.
* **physical queries** are samples driven through a system, reported by the system itself.
* **offloaded FLOPs** (``offloaded_flops``) are what the physics replaced: each query a system
  reports carries the digital FLOPs its transform would cost if emulated
  (:attr:`~phyll.systems.base.PhysicalSystem.emulation_flops_per_query`: the nominal model's
  forward, counted by :class:`~phyll.flops.FlopCounter` in a counter of its own, under
  :func:`unmetered`); a system without a digital model (a remote or wrapped instrument)
  reports none, and a digital model's calls (in-silico learners, the random-features control)
  offload nothing: their FLOPs are already the learner's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from phyll.flops import KINDS, FlopCounter, count_flops

__all__ = [
    "DEFAULT_ENERGY_PER_FLOP_J",
    "Costs",
    "Meter",
    "count_flops",
    "metering",
    "physical_call",
    "report_queries",
    "unmetered",
]

#: Energy of one digital FLOP on a conventional processor, in joules. Horowitz, "Computing's
#: energy problem", ISSCC 2014: a 32-bit float multiply costs 3.7 pJ and an add 0.9 pJ at 45 nm,
#: i.e. ≈ 2.3 pJ per FLOP before any memory access (which only makes it worse).
DEFAULT_ENERGY_PER_FLOP_J = 2.3e-12

_ACTIVE: list[Meter] = []
_log = logging.getLogger(__name__)


def _no_flops() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


def _merge(a: dict[str, int], b: dict[str, int], sign: int = 1) -> dict[str, int]:
    return {k: a.get(k, 0) + sign * b.get(k, 0) for k in KINDS}


@dataclass
class Costs:
    """A snapshot of accumulated costs (all cumulative; subtract two snapshots for a window)."""

    physical_queries: int = 0
    digital_flops: int = 0
    wall_time_s: float = 0.0
    simulation_time_s: float = 0.0
    device_time_s: float = 0.0
    physical_energy_j: float = 0.0
    offloaded_flops: int = 0
    digital_flops_by_kind: dict[str, int] = field(default_factory=_no_flops)

    @property
    def digital_time_s(self) -> float:
        """Wall time not spent inside physical systems (the learner's digital work)."""
        return max(self.wall_time_s - self.simulation_time_s, 0.0)

    @property
    def projected_time_s(self) -> float:
        """Device time plus digital time: the run's duration with the hardware in the loop."""
        return self.device_time_s + self.digital_time_s

    def energy_j(self, energy_per_flop_j: float = DEFAULT_ENERGY_PER_FLOP_J) -> float:
        """Physical energy (power × device time) plus digital energy."""
        return self.physical_energy_j + self.digital_flops * energy_per_flop_j

    def _combine(self, other: Costs, sign: int) -> Costs:
        numbers = {  # vars, not asdict: no deep copy (a pipeline adds costs per task)
            k: v + sign * getattr(other, k)
            for k, v in vars(self).items()
            if k != "digital_flops_by_kind"
        }
        kinds = _merge(self.digital_flops_by_kind, other.digital_flops_by_kind, sign)
        return Costs(**numbers, digital_flops_by_kind=kinds)

    def __sub__(self, other: Costs) -> Costs:
        return self._combine(other, -1)

    def __add__(self, other: Costs) -> Costs:
        return self._combine(other, 1)

    def as_dict(self) -> dict[str, Any]:
        """Every figure, the derived ones (digital and projected time, energy) included."""
        out: dict[str, Any] = asdict(self)
        out["digital_time_s"] = self.digital_time_s
        out["projected_time_s"] = self.projected_time_s
        out["energy_j"] = self.energy_j()
        return out


#: a repeated block's count is re-checked (counted again, compared) at these occurrences and at
#: every power of two above them, so a signature that misses a change of work is caught early
#: and cheaply (log2 of the repetitions)
AUDIT_FROM = 16


@dataclass
class RepeatedWork:
    """What a meter knows of a block that repeats under one signature (:meth:`Meter.measure`).

    ``flops`` is the digital count by kind once two consecutive counted runs agreed (then it is
    reused); ``last`` the latest counted run until then; ``runs`` the occurrences so far.
    """

    last: dict[str, int] | None = None
    flops: dict[str, int] | None = None
    runs: int = 0

    def due_for_audit(self) -> bool:
        """Whether this occurrence is counted again to check the reused count."""
        n = self.runs
        return n >= AUDIT_FROM and n & (n - 1) == 0


@dataclass(eq=False)  # meters are told apart by identity (the active list removes them)
class Meter:
    """Accumulates costs while :meth:`measure` is active; one meter per run and phase.

    Meters nest: while an outer and an inner meter are active, both count the work. Nested
    meters share the outermost meter's :class:`~phyll.flops.FlopCounter` (each reads its own
    window of the running total), so every operation is dispatched through one counter however
    deep the nesting.

    **Repeated work is counted once.** A block measured with a ``signature`` (e.g. a training
    step's rule and batch shapes) whose digital work is a function of that signature does the
    same operations on the same shapes every time: once two consecutive counted runs give the
    same FLOPs by kind, later runs execute without the counter (no dispatch overhead, the
    clocks undisturbed) and add that count: exact, not estimated. Physical queries, device and
    simulation time are always measured. The reused count is audited (counted again) at
    occurrence 16, 32, 64, …; a mismatch (a signature that misses what changes the work) is
    logged and the signature is counted every time from then on. ``reuse=False`` counts
    every run (the reference the tests compare with).
    """

    costs: Costs = field(default_factory=Costs)
    reuse: bool = True
    _counter: FlopCounter | None = field(default=None, repr=False)
    _at_start: dict[str, int] = field(default_factory=_no_flops, repr=False)
    _excluded: dict[str, int] = field(default_factory=_no_flops, repr=False)
    _repeated: dict[Hashable, RepeatedWork] = field(default_factory=dict, repr=False)
    _irregular: set[Hashable] = field(default_factory=set, repr=False)

    @contextlib.contextmanager
    def measure(self, signature: Hashable | None = None) -> Iterator[Meter]:
        """Count FLOPs and wall time of everything run inside the block.

        ``signature``: a hashable description of the work that fixes its digital FLOPs (see
        the class docstring); None counts the block as it runs.
        """
        work = self._repeated_work(signature)
        if work is not None and work.flops is not None and not work.due_for_audit():
            work.runs += 1
            with self._uncounted():
                yield self
            self.costs.digital_flops += sum(work.flops.values())
            self.costs.digital_flops_by_kind = _merge(self.costs.digital_flops_by_kind, work.flops)
            return
        shared = _ACTIVE[-1]._counter if _ACTIVE else None
        counter = shared if shared is not None else FlopCounter()
        self._counter, self._at_start = counter, dict(counter.by_kind)
        self._excluded = _no_flops()
        start = time.perf_counter()
        _ACTIVE.append(self)
        try:
            with counter if shared is None else contextlib.nullcontext():
                yield self
        finally:
            _ACTIVE.remove(self)
            self.costs.wall_time_s += time.perf_counter() - start
            window = self._window()
            self.costs.digital_flops += sum(window.values())
            self.costs.digital_flops_by_kind = _merge(self.costs.digital_flops_by_kind, window)
            self._counter = None
        if work is not None:  # reached only when the block finished without an exception
            self._learn(signature, work, window)

    def _repeated_work(self, signature: Hashable | None) -> RepeatedWork | None:
        """The record of ``signature``'s repetitions, when its count may be reused (not nested
        in another meter, whose counter must see every operation)."""
        if signature is None or not self.reuse or _ACTIVE or signature in self._irregular:
            return None
        return self._repeated.setdefault(signature, RepeatedWork())

    def _learn(self, signature: Hashable, work: RepeatedWork, window: dict[str, int]) -> None:
        """Take a counted run of a signature: confirm, audit or keep counting."""
        work.runs += 1
        if work.flops is not None and window != work.flops:  # an audit found a change
            _log.warning(
                "the digital FLOPs of %r changed between runs (%d, then %d): counting it "
                "every time from now on",
                signature,
                sum(work.flops.values()),
                sum(window.values()),
            )
            self._irregular.add(signature)
            del self._repeated[signature]
        elif work.flops is None:
            work.flops, work.last = (window, None) if window == work.last else (None, window)

    @contextlib.contextmanager
    def _uncounted(self) -> Iterator[None]:
        """Active for physical calls (queries, device and simulation time) and wall time, with
        no FLOP counter."""
        start = time.perf_counter()
        _ACTIVE.append(self)
        try:
            yield
        finally:
            _ACTIVE.remove(self)
            self.costs.wall_time_s += time.perf_counter() - start

    def snapshot(self) -> Costs:
        """Cumulative costs so far, including the FLOPs of a block still running."""
        costs = Costs(**{**asdict(self.costs), "digital_flops_by_kind": {}})
        costs.digital_flops_by_kind = dict(self.costs.digital_flops_by_kind)
        if self._counter is not None:
            window = self._window()
            costs.digital_flops += sum(window.values())
            costs.digital_flops_by_kind = _merge(costs.digital_flops_by_kind, window)
        return costs

    def _window(self) -> dict[str, int]:
        """The running block's digital FLOPs by kind (the counter's advance less physics')."""
        if self._counter is None:
            return _no_flops()
        return _merge(_merge(self._counter.by_kind, self._at_start, -1), self._excluded, -1)


def metering() -> bool:
    """Whether any meter is active (costs reported now are counted)."""
    return bool(_ACTIVE)


@contextlib.contextmanager
def unmetered() -> Iterator[None]:
    """Keep the FLOPs of the block out of every active meter's digital column.

    For accounting's own work, e.g. counting what a system's transform would cost emulated:
    it is neither the learner's work nor physics. Its seconds stay in the meters' wall time
    (the engine does such work before its first meter).
    """
    meters = list(_ACTIVE)
    counter = meters[-1]._counter if meters else None
    before = dict(counter.by_kind) if counter is not None else _no_flops()
    try:
        yield
    finally:
        if counter is not None:
            moved = _merge(counter.by_kind, before, -1)
            for meter in meters:
                meter._excluded = _merge(meter._excluded, moved)


@contextlib.contextmanager
def physical_call(
    n_samples: int,
    power_w: float,
    device_time: Callable[[float], float] | None = None,
    offloaded_flops: int = 0,
) -> Iterator[None]:
    """Mark a block as physics: its FLOPs and CPU seconds leave the digital column of every
    active meter, which count ``n_samples`` queries, their device time
    (``device_time(elapsed)``; by default the block's measured duration), energy (power ×
    device time) and the ``offloaded_flops`` their emulation would have cost."""
    meters = list(_ACTIVE)
    counter = meters[-1]._counter if meters else None
    before = dict(counter.by_kind) if counter is not None else _no_flops()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        physics = _merge(counter.by_kind, before, -1) if counter is not None else _no_flops()
        device = elapsed if device_time is None else device_time(elapsed)
        for meter in meters:
            meter._excluded = _merge(meter._excluded, physics)
            meter.costs.simulation_time_s += elapsed
            _report(meter.costs, n_samples, power_w, device, offloaded_flops)


def report_queries(
    n_samples: int, power_w: float, device_time_s: float, offloaded_flops: int = 0
) -> None:
    """Count queries made outside any call (e.g. a system's calibration drives at build time)
    in every active meter, with their device time, energy and offloaded FLOPs."""
    for meter in _ACTIVE:
        _report(meter.costs, n_samples, power_w, device_time_s, offloaded_flops)


def _report(
    costs: Costs, n_samples: int, power_w: float, device_time_s: float, offloaded_flops: int
) -> None:
    costs.physical_queries += n_samples
    costs.device_time_s += device_time_s
    costs.physical_energy_j += power_w * device_time_s
    costs.offloaded_flops += offloaded_flops

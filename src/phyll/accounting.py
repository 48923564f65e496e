"""Instrumented cost accounting: physical queries, digital FLOPs, wall time, energy.

These figures are phyll's main claim, so they are measured, never estimated:

* **digital FLOPs** come from :class:`phyll.flops.FlopCounter` running around the learner's
  digital work (forward, backward, twin fitting, the optimizer's update): every aten operation
  counted by a documented formula (table in :mod:`phyll.flops`): matrix-class operations as
  PyTorch's ``FlopCounterMode`` counts them (2 per multiply-accumulate, 8 per complex one), FFTs
  as 5·N·log2 N, linear solves as ⅔·n³ + 2·n²·k, elementwise operations and reductions per
  element (transcendental functions 8), data movement 0. :func:`count_flops` counts a call.
* the **simulation of the physics** is *not* digital work of the learner: every
  :class:`~phyll.systems.base.PhysicalSystem` call reports itself to the active meters through
  :func:`physical_call`, and the FLOPs and seconds spent inside it are moved from the digital to
  the physical column.
* a simulator used as a **digital model** by an in-silico learner
  (:meth:`~phyll.systems.base.PhysicalSystem.as_digital_model`, e.g. in-silico backprop)
  queries no hardware: its calls do not enter :func:`physical_call`, so its forward FLOPs and
  the FLOPs of its autograd backward pass (which always runs outside any call's context) are
  the learner's digital FLOPs, and no physical query is reported.
* **physical queries** are samples driven through a system, reported by the system itself.
* **energy** = queries × energy per query + FLOPs × energy per FLOP (constants below).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from phyll.flops import FlopCounter, count_flops

__all__ = ["DEFAULT_ENERGY_PER_FLOP_J", "Costs", "Meter", "count_flops", "physical_call"]

#: Energy of one digital FLOP on a conventional processor, in joules. Horowitz, "Computing's
#: energy problem", ISSCC 2014: a 32-bit float multiply costs 3.7 pJ and an add 0.9 pJ at 45 nm,
#: i.e. ≈ 2.3 pJ per FLOP before any memory access (which only makes it worse).
DEFAULT_ENERGY_PER_FLOP_J = 2.3e-12

_ACTIVE: list[Meter] = []


@dataclass
class Costs:
    """A snapshot of accumulated costs (all cumulative; subtract two snapshots for a window)."""

    physical_queries: int = 0
    digital_flops: int = 0
    wall_time_s: float = 0.0
    physical_time_s: float = 0.0
    physical_energy_j: float = 0.0

    @property
    def digital_time_s(self) -> float:
        """Wall time not spent inside physical systems."""
        return max(self.wall_time_s - self.physical_time_s, 0.0)

    def energy_j(self, energy_per_flop_j: float = DEFAULT_ENERGY_PER_FLOP_J) -> float:
        """Physical energy (declared per system and query) plus digital energy."""
        return self.physical_energy_j + self.digital_flops * energy_per_flop_j

    def __sub__(self, other: Costs) -> Costs:
        return Costs(
            physical_queries=self.physical_queries - other.physical_queries,
            digital_flops=self.digital_flops - other.digital_flops,
            wall_time_s=self.wall_time_s - other.wall_time_s,
            physical_time_s=self.physical_time_s - other.physical_time_s,
            physical_energy_j=self.physical_energy_j - other.physical_energy_j,
        )

    def __add__(self, other: Costs) -> Costs:
        return Costs(
            physical_queries=self.physical_queries + other.physical_queries,
            digital_flops=self.digital_flops + other.digital_flops,
            wall_time_s=self.wall_time_s + other.wall_time_s,
            physical_time_s=self.physical_time_s + other.physical_time_s,
            physical_energy_j=self.physical_energy_j + other.physical_energy_j,
        )

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        out = asdict(self)
        out["digital_time_s"] = self.digital_time_s
        out["energy_j"] = self.energy_j()
        return {f"{prefix}{k}": v for k, v in out.items()}


@dataclass
class Meter:
    """Accumulates costs while :meth:`measure` is active; one meter per run and phase.

    Meters nest: while an outer and an inner meter are active, both count the work. Nested
    meters share the outermost meter's :class:`~phyll.flops.FlopCounter` (each reads its own
    window of the running total), so every operation is dispatched through one counter however
    deep the nesting.
    """

    costs: Costs = field(default_factory=Costs)
    _counter: FlopCounter | None = field(default=None, repr=False)
    _flops_at_start: int = field(default=0, repr=False)
    _excluded_flops: int = field(default=0, repr=False)

    @contextlib.contextmanager
    def measure(self) -> Iterator[Meter]:
        """Count FLOPs and wall time of everything run inside the block."""
        shared = _ACTIVE[-1]._counter if _ACTIVE else None
        counter = shared if shared is not None else FlopCounter()
        self._counter, self._flops_at_start, self._excluded_flops = counter, counter.total, 0
        start = time.perf_counter()
        _ACTIVE.append(self)
        try:
            with counter if shared is None else contextlib.nullcontext():
                yield self
        finally:
            _ACTIVE.remove(self)
            self.costs.wall_time_s += time.perf_counter() - start
            self.costs.digital_flops += self._window_flops()
            self._counter = None

    def snapshot(self) -> Costs:
        """Cumulative costs so far, including the FLOPs of a block still running."""
        costs = Costs(**asdict(self.costs))
        costs.digital_flops += self._window_flops()
        return costs

    def _window_flops(self) -> int:
        """Digital FLOPs of the running block (0 if none): the counter's advance less physics'."""
        if self._counter is None:
            return 0
        return self._counter.total - self._flops_at_start - self._excluded_flops


@contextlib.contextmanager
def physical_call(n_samples: int, energy_per_query_j: float) -> Iterator[None]:
    """Mark a block as physics: its FLOPs and seconds go to the physical column of every meter."""
    meters = list(_ACTIVE)
    counter = meters[-1]._counter if meters else None
    flops_before = counter.total if counter is not None else 0
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        physics_flops = counter.total - flops_before if counter is not None else 0
        for meter in meters:
            meter._excluded_flops += physics_flops
            meter.costs.physical_time_s += elapsed
            meter.costs.physical_queries += n_samples
            meter.costs.physical_energy_j += n_samples * energy_per_query_j

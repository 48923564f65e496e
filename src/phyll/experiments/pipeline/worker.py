"""One block on its own worker: what each Ray actor of a pipelined run holds and does.

A :class:`BlockWorker` holds one block of the network (its digital weights and measurement
conditioner), the block's physical system (built *in the worker's process*, so that a remote
instrument is driven from there), the block's optimizer and its local objective. Every task
runs under a fresh :class:`~phyll.accounting.Meter`, so the worker reports the queries, FLOPs
and time of its share of the work exactly as the same code counts them in a sequential run.

The worker's meters are kept from task to task (their costs reset per task), so that a step
repeating a signature the driver sends (the rule's :meth:`~phyll.learning.base.LearningRule.
step_signature`, tagged with the part of the step) reuses its counted FLOPs, as the sequential
engine's meter does: exact, and without the counter's overhead on every step.

Tasks carry a sequence number: a worker refuses a task that does not follow the previous one,
so the per-block order of the work (and of every physical query) is the sequential order or
the run stops. A task asked to ``snapshot`` also returns the worker's whole state right after
it (weights, optimizer, system), which the driver assembles into a checkpoint without waiting
for the tasks queued behind it.

This module does not import Ray: :mod:`phyll.experiments.pipeline.actors` makes the class an
actor.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from phyll.accounting import Costs, Meter
from phyll.errors import UserError
from phyll.learning.blockwise import BlockObjective, neutral_pass, train_block
from phyll.machine import available_cores
from phyll.network import BlockMeasurementError, PhysicalBlock
from phyll.systems.base import NonFiniteMeasurementError, PhysicalSystem, PhysicalSystemError


def to_wire(t: Tensor | None) -> np.ndarray | None:
    """A tensor as it travels between processes: a NumPy array (Ray's zero-copy path)."""
    return None if t is None else t.detach().numpy()


def from_wire(a: np.ndarray | None) -> Tensor | None:
    """A tensor from the wire (a writable copy of Ray's read-only array)."""
    return None if a is None else torch.from_numpy(np.array(a))


def context_to_wire(context: dict[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in context.items()}


def tagged(part: str, signature: Hashable | None) -> Hashable | None:
    """The signature of one part of a step (None: counted every time, as the rule asks)."""
    return None if signature is None else (part, signature)


def shape_signature(part: str, x: Tensor | np.ndarray) -> Hashable:
    """The signature of a pass whose work is fixed by its input's shape and type."""
    return (part, tuple(x.shape), str(x.dtype))


def fresh(meter: Meter) -> Meter:
    """``meter`` with its costs reset and its learned repetitions kept."""
    meter.costs = Costs()
    return meter


@dataclass
class WorkerSpec:
    """What a worker needs to hold block ``index`` (sent once per run).

    Attributes:
        index: the block's position in the network.
        block: the block without its system (``block.system`` is None); its weights are
            loaded with :class:`WorkerState` afterwards.
        build_system: builds the block's physical system in the worker's process.
        optimizer: the block optimizer's class and ``defaults`` (its state is loaded later).
        optimizer_defaults: keyword arguments of ``optimizer`` (learning rate, betas, ...).
        objective: the block's local loss (:meth:`~phyll.learning.blockwise.BlockwiseRule.
            block_objective`).
        threads: the most torch threads the worker uses (the driver's); the driver then
            gives it its share of its machine's cores (:func:`~phyll.experiments.pipeline.
            actors.thread_shares`).
    """

    index: int
    block: PhysicalBlock
    build_system: Callable[[], PhysicalSystem]
    optimizer: type[torch.optim.Optimizer]
    optimizer_defaults: dict[str, Any]
    objective: BlockObjective
    threads: int


@dataclass
class WorkerState:
    """A worker's state (any part None: left as it is when loaded).

    Pickled with its CPU tensors as NumPy arrays (:class:`_WireArray`): a snapshot travels at
    every epoch end, and torch's own pickling costs ~0.1 ms of CPU per tensor on each side.
    """

    block: dict[str, Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    system: dict[str, Any] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        parts = (self.block, self.optimizer, self.system)
        return (_rebuilt_state, tuple(map_leaves(p, Tensor, _WireArray.of) for p in parts))


@dataclass(frozen=True)
class _WireArray:
    """A CPU tensor on the wire: its values as a NumPy array (pickled out of band)."""

    array: np.ndarray

    @staticmethod
    def of(t: Tensor) -> Any:
        """``t`` as a wire array, or ``t`` itself where NumPy cannot hold it exactly."""
        if t.device.type != "cpu" or t.dtype in (torch.bfloat16, torch.complex32):
            return t
        return _WireArray(t.detach().numpy())

    def tensor(self) -> Tensor:
        return torch.from_numpy(np.array(self.array))  # writable, as the worker had it


def map_leaves(tree: Any, kind: type, f: Callable[[Any], Any]) -> Any:
    """``tree`` (dicts, lists, tuples) with ``f`` applied to every leaf of type ``kind``."""
    if isinstance(tree, kind):
        return f(tree)
    if isinstance(tree, dict):
        return {k: map_leaves(v, kind, f) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(map_leaves(v, kind, f) for v in tree)
    return tree


def _rebuilt_state(*parts: Any) -> WorkerState:
    return WorkerState(*(map_leaves(p, _WireArray, _WireArray.tensor) for p in parts))


class WorkerError(UserError):
    """A block's worker stopped on an error the user can fix (a faulty system, a bad drive);
    carries what the driver needs to report it as the sequential run would."""

    def __init__(self, message: str, block_index: int, kind: str) -> None:
        super().__init__(message)
        self.message, self.block_index, self.kind = message, block_index, kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.block_index, self.kind))

    def as_driver_error(self) -> UserError:
        """The error a sequential run raises at the same point."""
        if self.kind == "nonfinite":
            return BlockMeasurementError(self.block_index, NonFiniteMeasurementError(self.message))
        if self.kind == "physical":
            return PhysicalSystemError(self.message)
        return UserError(self.message)


def worker_error(exc: UserError, index: int) -> WorkerError:
    """``exc`` raised in block ``index``'s worker, as a picklable :class:`WorkerError`."""
    if isinstance(exc, BlockMeasurementError):
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return WorkerError(str(cause), index, "nonfinite")
    if isinstance(exc, PhysicalSystemError):
        return WorkerError(f"block {index}: {exc}", index, "physical")
    return WorkerError(str(exc), index, "user")


@dataclass
class Report:
    """What a task tells the driver: its costs, the step's loss (a training step, as a float:
    exact, the driver sums it as float64 like a sequential step), and the worker's state right
    after it when asked (a snapshot)."""

    costs: Costs
    loss: float | None = None
    snapshot: WorkerState | None = None
    #: the costs of the pass after the update (a training step with a neutral pass): apart,
    #: because a sequential step makes that pass after every block's update
    neutral_costs: Costs | None = None

    def all_costs(self) -> list[Costs]:
        """The task's costs, in the order its work was done."""
        return [self.costs] if self.neutral_costs is None else [self.costs, self.neutral_costs]


class BlockWorker:
    """The body of one block's actor (see module docstring). Reusable: :meth:`setup` makes it
    hold another run's block."""

    def __init__(self) -> None:
        self.index = -1
        self.block: PhysicalBlock | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.objective: BlockObjective | None = None
        self.seq = 0
        #: one meter per kind of work, kept across tasks (see the module docstring)
        self.meters = {part: Meter() for part in ("train", "neutral", "pass")}

    # ------------------------------------------------------------------ life cycle
    def where(self) -> tuple[str, int]:
        """This worker's host name and the cores it may run on."""
        return socket.gethostname(), available_cores()

    def setup(self, spec: WorkerSpec, threads: int | None = None) -> None:
        """Hold ``spec``'s block, with ``threads`` torch threads (None: the spec's): build its
        system here."""
        self.clear()
        self.use_threads(spec.threads if threads is None else threads)
        self.index = spec.index
        try:
            system = spec.build_system()
        except UserError as exc:
            raise worker_error(exc, spec.index) from None
        spec.block.system = system
        self.block, self.objective = spec.block, spec.objective
        self.optimizer = spec.optimizer(self.block.parameters(), **spec.optimizer_defaults)
        self.seq = 0
        self.meters = {part: Meter() for part in self.meters}  # another block's work

    def use_threads(self, threads: int) -> None:
        """torch's intra-op thread count in this worker."""
        torch.set_num_threads(threads)

    def clear(self) -> None:
        """Let go of the run's block and close its system's connection, if it has one."""
        if self.block is not None and self.block.system is not None:
            close = getattr(self.block.system, "close", None)
            if callable(close):
                close()
        self.block = self.optimizer = self.objective = None

    def ping(self) -> int:
        """Alive: the last task's sequence number."""
        return self.seq

    # ------------------------------------------------------------------ state
    def load(self, state: WorkerState) -> None:
        """Take the given parts of a state; the next task is number 1."""
        block, optimizer = self._held()
        try:
            if state.block is not None:
                block.load_state_dict(state.block)
            if state.optimizer is not None:
                optimizer.load_state_dict(state.optimizer)
            if state.system is not None:
                block.system.load_state_dict(state.system)
        except UserError as exc:
            raise worker_error(exc, self.index) from None
        self.seq = 0

    def set_hyperparameters(self, groups: list[dict[str, Any]]) -> None:
        """The optimizer's hyperparameters (learning rate, ...) per group, e.g. a schedule's."""
        _, optimizer = self._held()
        for group, values in zip(optimizer.param_groups, groups, strict=True):
            group.update(values)

    def state(self) -> WorkerState:
        """A copy of the whole state (weights, optimizer, system)."""
        block, optimizer = self._held()
        return WorkerState(
            {k: v.detach().clone() for k, v in block.state_dict().items()},
            copy.deepcopy(optimizer.state_dict()),
            copy.deepcopy(block.system.state_dict()),
        )

    # ------------------------------------------------------------------ tasks
    def train(
        self,
        seq: int,
        inputs: list[np.ndarray],
        contexts: list[dict[str, np.ndarray]],
        neutral: list[np.ndarray] | None,
        snapshots: list[bool],
        signatures: list[Hashable | None],
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[Report]]:
        """Consecutive local steps, one per entry of ``inputs`` (a chunk: one task for several
        steps costs Ray's overhead once). Each step trains on its rows, then, with ``neutral``,
        measures its neutral rows with the updated weights; with ``snapshots[i]``, the state
        after step ``i`` joins its report; ``signatures[i]`` is step ``i``'s signature.
        Returns every step's output for the next block, its neutral output, and its report
        (arrays: see :func:`to_wire`)."""
        block, optimizer = self._held()
        self._follow(seq)
        assert self.objective is not None
        outputs, passed, reports = [], [], []
        try:
            for i, (h, context) in enumerate(zip(inputs, contexts, strict=True)):
                rest = {k: torch.from_numpy(np.array(v)) for k, v in context.items()}
                meter = fresh(self.meters["train"])
                with meter.measure(tagged("train", signatures[i])):
                    block.train()
                    loss, out = train_block(block, from_wire(h), self.objective, rest, optimizer)
                report = Report(meter.costs, float(loss))
                if neutral is not None:
                    after = fresh(self.meters["neutral"])
                    with after.measure(tagged("neutral", signatures[i])):
                        passed.append(to_wire(neutral_pass(block, from_wire(neutral[i]))))
                    report.neutral_costs = after.costs
                if snapshots[i]:
                    report.snapshot = self.state()
                outputs.append(to_wire(out))
                reports.append(report)
        except UserError as exc:
            raise worker_error(exc, self.index) from None
        return outputs, passed if neutral is not None else None, reports

    def passes(
        self, seq: int, inputs: list[np.ndarray], snapshots: list[bool]
    ) -> tuple[list[np.ndarray], list[Report]]:
        """Eval-mode passes of consecutive inputs (the neutral passes of a chunk of steps in
        the sequential order, ``--pipeline-sync``), with snapshots as :meth:`train`."""
        self._follow(seq)
        outputs, reports = [], []
        for h, snapshot in zip(inputs, snapshots, strict=True):
            out, report = self._pass(h)
            if snapshot:
                report.snapshot = self.state()
            outputs.append(out)
            reports.append(report)
        return outputs, reports

    def forward(self, seq: int, h: np.ndarray, snapshot: bool = False) -> tuple[np.ndarray, Report]:
        """The block's output for ``h`` in eval mode (a prediction's pass) and the report, with
        the state after the pass if ``snapshot`` (an epoch's end: no task of its own)."""
        self._follow(seq)
        out, report = self._pass(h)
        if snapshot:
            report.snapshot = self.state()
        return out, report

    def report_state(self) -> Report:
        """The state now, as a report of no work (after the tasks queued before this one)."""
        return Report(Costs(), snapshot=self.state())

    # ------------------------------------------------------------------ internals
    def _pass(self, h: np.ndarray) -> tuple[np.ndarray, Report]:
        block, _ = self._held()
        meter = fresh(self.meters["pass"])
        try:
            with meter.measure(shape_signature("pass", h)):
                out = neutral_pass(block, from_wire(h))
        except UserError as exc:
            raise worker_error(exc, self.index) from None
        return to_wire(out), Report(meter.costs)

    def _held(self) -> tuple[PhysicalBlock, torch.optim.Optimizer]:
        if self.block is None or self.optimizer is None:
            raise RuntimeError("this block worker holds no block: call setup first")
        return self.block, self.optimizer

    def _follow(self, seq: int) -> None:
        if seq != self.seq + 1:
            raise RuntimeError(
                f"block {self.index}: task {seq} arrived after task {self.seq}: out of order"
            )
        self.seq = seq

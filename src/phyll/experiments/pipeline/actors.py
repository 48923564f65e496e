"""The Ray side of a pipelined run: Ray itself, a pool of block workers, one run's actors.

:class:`Pipeline` holds one actor per block (:class:`~phyll.experiments.pipeline.worker.
BlockWorker`) and submits their tasks: a training step flows through the actors as a chain of
tasks, each taking the previous block's output (an object reference, so block *k* can start
on step *t* while block *k + 1* still works on step *t − 1*). Ray runs the tasks one caller
submits to one actor in submission order; the workers check it.

Actors ask for no CPU (``num_cpus=0``): a block behind a latency-bound device mostly waits, so
four of them share two cores. They share them in torch's threads too (:func:`thread_shares`):
four actors each running the driver's two threads on two cores made a run 2.4× *slower* than
sequential training (``benchmarks/pipeline_speedup.py``), where one thread each makes it 3×
faster. They are pooled per process and Ray session: the runs of one
``phyll compare`` (or of one sweep worker) reuse them instead of starting a process per block
and run. Ray is started here (a local instance, or the cluster at ``address``) unless this
process is already connected, e.g. inside a ``phyll sweep`` trial.

A worker that raises a user error (a faulty system) is reported as the sequential run reports
it (:meth:`~phyll.experiments.pipeline.worker.WorkerError.as_driver_error`); an actor whose
process died is an :class:`ActorDied`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from torch import Tensor

from phyll.errors import UserError
from phyll.experiments.extras import require
from phyll.experiments.pipeline.worker import (
    BlockWorker,
    WorkerError,
    WorkerSpec,
    WorkerState,
    context_to_wire,
    to_wire,
)
from phyll.learning.blockwise import BlockStep
from phyll.systems.base import PhysicalSystemError

#: the object store of a local Ray instance started here: batches and small states pass
OBJECT_STORE_BYTES = 200 * 2**20
#: objects up to this size travel inside task messages instead of through the object store
#: (Ray's default is 100 KiB): a chunk's outputs and an epoch-end snapshot are a few hundred
#: KiB, and a store round trip costs each task milliseconds of CPU on a busy machine
#: (``benchmarks/pipeline_speedup.py``: 10 % faster). Set when phyll starts the local instance.
INLINE_OBJECT_BYTES = 2 * 2**20
#: every block worker's actor options: no CPU reserved, never restarted by Ray (the pipeline
#: restarts a run from its last checkpoint itself)
ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": 0}
#: step contexts up to this size are sent with each task, larger ones stored once for all
INLINE_BYTES = 100 * 1024


class PipelineError(UserError):
    """The pipeline cannot run (no Ray cluster at the address, a system that cannot be sent)."""


class ActorDied(PhysicalSystemError):
    """The actor of a block died (its process ended, its node went away)."""

    def __init__(self, block_index: int, reason: str) -> None:
        super().__init__(f"the actor of block {block_index} died ({reason})")
        self.block_index = block_index

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.block_index, str(self)))


def ray_module() -> ModuleType:
    """Ray, or one line saying how to install the extra."""
    return require("ray", "ray", "--pipeline ray")


def connect(address: str | None) -> ModuleType:
    """Ray, connected: this process's connection, else the cluster at ``address``, else a
    local instance started here."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        ray.init(
            object_store_memory=OBJECT_STORE_BYTES,
            include_dashboard=False,
            _system_config={"max_direct_call_object_size": INLINE_OBJECT_BYTES},
            **quiet,
        )
        return ray
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise PipelineError(f"cannot connect to the Ray cluster at {address}: {reason}") from None
    return ray


#: idle block workers of this process, for the Ray session they belong to
_POOL: dict[str, Any] = {"session": None, "idle": []}


def _session(ray: ModuleType) -> str:
    return str(ray.get_runtime_context().get_job_id())


class BlockActor(BlockWorker):
    """A block worker in a process of its own (a Ray actor's).

    The process's objects from its imports (torch, Ray, phyll: about 340,000) are frozen out
    of Python's cyclic garbage collector (:func:`gc.freeze`) when it starts: a full collection
    walked them all, 150 to 180 ms in every actor at once, once or twice a run of the
    benchmark, while the next blocks waited (``benchmarks/pipeline_speedup.py``: that run's
    pipelined time 4.1 to 4.4 s instead of 3.6 to 3.9 s). A full collection now walks what
    the runs allocate; their garbage is collected as before.
    """

    def __init__(self) -> None:
        gc.freeze()
        super().__init__()


def acquire(ray: ModuleType, n: int) -> list[Any]:
    """``n`` block-worker actors: idle ones of this session first, new ones for the rest."""
    session = _session(ray)
    if _POOL["session"] != session:
        _POOL.update(session=session, idle=[])
    idle: list[Any] = _POOL["idle"]
    taken = [idle.pop() for _ in range(min(n, len(idle)))]
    actor_class = ray.remote(BlockActor).options(**ACTOR_OPTIONS)
    return taken + [actor_class.remote() for _ in range(n - len(taken))]


def give_back(ray: ModuleType, actors: Sequence[Any]) -> None:
    """Return living actors to the pool (their runs' blocks dropped), forget dead ones."""
    session = _session(ray)
    if _POOL["session"] != session:
        _POOL.update(session=session, idle=[])
    for actor in actors:
        try:
            ray.get(actor.clear.remote())
        except ray.exceptions.RayError:  # dead, or its system failed to close: not reused
            continue
        _POOL["idle"].append(actor)


def thread_shares(hosts: Sequence[str], cores: Sequence[int], most: int) -> list[int]:
    """torch threads of each actor: the run's threads (``most``: the driver's, e.g. what a
    sweep gave the trial), at most its machine's cores (``cores``: the cores each actor may run
    on), divided among the run's actors on that machine (``hosts``: each actor's host); at
    least 1.

    The arithmetic of a block is the same for any thread count except in PyTorch kernels that
    split large operations by thread (a long reduction may then round differently); a run
    with ``--threads 1``, or ``--pipeline-sync`` (which keeps the driver's count: one task runs
    at a time), computes exactly as the sequential run."""
    on_host = Counter(hosts)
    return [max(1, min(most, c) // on_host[h]) for h, c in zip(hosts, cores, strict=True)]


@dataclass
class BlockRefs:
    """The object references of one block's part of a chunk of training steps (each a list
    over the steps: outputs, neutral outputs, the tasks' reports) or of a prediction pass (an
    output and a report)."""

    out: Any
    reports: list[Any]
    neutral: Any = None


@dataclass
class Pipeline:
    """The actors of one run, one per block (see module docstring).

    Args:
        specs: each block's worker spec, in block order.
        address: the Ray cluster (None: this process's connection or a local instance).
        serial: run one task at a time, waiting for each (``--pipeline-sync``): every device,
            even one shared by several blocks, then sees the queries in the sequential order.
    """

    specs: list[WorkerSpec]
    address: str | None = None
    serial: bool = False
    actors: list[Any] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    #: cores each actor may run on, and the torch threads it was given
    cores: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    startup_s: float = 0.0
    _seq: list[int] = field(default_factory=list)
    _methods: list[dict[str, Any]] = field(default_factory=list)
    _ray: Any = None
    #: the optimizer hyperparameters last sent to every actor (None: unknown to the driver)
    _sent: list[Any] | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Connect to Ray, take one actor per block and give each its block."""
        started = time.perf_counter()
        self._ray = connect(self.address)
        self.actors = acquire(self._ray, len(self.specs))
        self.hosts = [""] * len(self.specs)
        self.cores = [1] * len(self.specs)
        self._setup(range(len(self.specs)))
        self.startup_s += time.perf_counter() - started

    def replace_dead(self) -> list[int]:
        """Replace the actors that died with new ones holding their blocks; their indices."""
        ray = self._ray
        dead = []
        for i, actor in enumerate(self.actors):
            try:
                ray.get(actor.ping.remote())
            except ray.exceptions.RayActorError:
                dead.append(i)
        fresh = acquire(ray, len(dead))
        for i, actor in zip(dead, fresh, strict=True):
            self.actors[i] = actor
        self._setup(dead)
        return dead

    def release(self) -> None:
        """Give the actors back to the pool."""
        if self._ray is not None and self.actors:
            give_back(self._ray, self.actors)
        self.actors = []

    # ------------------------------------------------------------------ state
    def load(self, states: Sequence[WorkerState]) -> None:
        """Give every block its state (waits); task numbers restart."""
        refs = [a.load.remote(s) for a, s in zip(self.actors, states, strict=True)]
        for i, ref in enumerate(refs):
            self.get(i, ref)
        self._seq = [0] * len(self.actors)
        self._sent = None  # the states carry their own

    def states(self) -> list[WorkerState]:
        """Every block's live state (call when nothing is in flight)."""
        refs = [a.state.remote() for a in self.actors]
        return [self.get(i, ref) for i, ref in enumerate(refs)]

    def state_refs(self) -> list[Any]:
        """Reports of every block's state right after the tasks submitted so far."""
        return [a.report_state.remote() for a in self.actors]

    def set_hyperparameters(self, groups: Sequence[list[dict[str, Any]]]) -> None:
        """Every block optimizer's hyperparameters, before the tasks submitted next (not sent
        again while unchanged: each task costs every actor Ray's overhead)."""
        if self._sent == list(groups):
            return
        for actor, g in zip(self.actors, groups, strict=True):
            actor.set_hyperparameters.remote(g)
        self._sent = list(groups)

    # ------------------------------------------------------------------ tasks
    def train(
        self,
        steps: Sequence[BlockStep],
        snapshots: Sequence[bool],
        signatures: Sequence[Hashable | None],
    ) -> list[BlockRefs]:
        """Submit consecutive training steps (a chunk) through every block, with a snapshot
        after the flagged ones, and each step's signature (the rule's, see
        :func:`~phyll.experiments.pipeline.worker.tagged`); their references per block (each a
        list over the steps)."""
        ray, refs = self._ray, []
        contexts = [context_to_wire(step.context) for step in steps]
        size = sum(a.nbytes for c in contexts for a in c.values())
        # stored once for every actor when large; small ones travel with each task (a stored
        # object costs each actor a fetch through the object store)
        shared = ray.put(contexts) if size > INLINE_BYTES else contexts
        neutral = steps[0].neutral is not None
        after = self.serial and neutral  # sequential order: the neutral passes after
        h: Any = [to_wire(step.inputs) for step in steps]
        n: Any = [to_wire(step.neutral) for step in steps] if neutral and not after else None
        flags = [False] * len(steps) if after else list(snapshots)
        for i, methods in enumerate(self._methods):
            h, n, report = methods["train"].remote(
                self._next(i), h, shared, n, flags, list(signatures)
            )
            refs.append(BlockRefs(h, [report], n))
            if self.serial:
                self.get(i, h)
        if after:
            h = [to_wire(step.neutral) for step in steps]
            for i, methods in enumerate(self._methods):
                h, report = methods["passes"].remote(self._next(i), h, list(snapshots))
                refs[i].neutral = h
                refs[i].reports.append(report)
                self.get(i, h)
        return refs

    def forward(self, inputs: Tensor, snapshot: bool = False) -> list[BlockRefs]:
        """Submit one eval-mode pass of ``inputs`` through every block (with ``snapshot``,
        each report carries the block's state after the pass)."""
        refs, h = [], to_wire(inputs)
        for i, methods in enumerate(self._methods):
            h, report = methods["forward"].remote(self._next(i), h, snapshot)
            refs.append(BlockRefs(h, [report]))
            if self.serial:
                self.get(i, h)
        return refs

    def get_all(self, refs: list[tuple[int, Any]]) -> list[Any]:
        """The values of ``(block, reference)`` pairs, fetched at once (errors as :meth:`get`)."""
        ray = self._ray
        try:
            return ray.get([ref for _, ref in refs])
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
            return [self.get(i, ref) for i, ref in refs]  # which block failed, and how

    def get(self, index: int, ref: Any) -> Any:
        """The value of block ``index``'s reference: its worker's user error as the sequential
        run raises it, a dead actor as :class:`ActorDied`."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            raise ActorDied(index, _reason(exc)) from None
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, WorkerError):
                raise cause.as_driver_error() from None
            raise

    def discard(self, refs: Sequence[Any], timeout_s: float = 10.0) -> None:
        """Let go of abandoned work: fetch what finishes within ``timeout_s`` (errors
        included), so that Ray does not report them as unhandled errors."""
        ray = self._ray
        refs = list(dict.fromkeys(r for r in refs if r is not None))
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for ref in ready:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(ref)

    # ------------------------------------------------------------------ internals
    def _setup(self, indices: Sequence[int]) -> None:
        """Give the actors at ``indices`` their blocks, with their share of their machine's
        cores in torch threads (the other actors' shares adjusted where that changes them)."""
        where = {i: self.actors[i].where.remote() for i in indices}
        for i, ref in where.items():
            self.hosts[i], self.cores[i] = self._started(i, ref)
        before = self.threads or [None] * len(self.actors)
        most = max(spec.threads for spec in self.specs)  # the driver's, in every spec
        if self.serial:  # one task at a time: nothing to share, the driver's exact arithmetic
            self.threads = [most] * len(self.actors)
        else:
            self.threads = thread_shares(self.hosts, self.cores, most)
        refs = {}
        for i in indices:
            try:
                refs[i] = self.actors[i].setup.remote(self.specs[i], self.threads[i])
            except TypeError as exc:  # Ray could not serialize the spec
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                raise PipelineError(
                    f"block {i}'s system factory, rule objective or block cannot be sent to its "
                    f"actor ({_reason(cause)}): build them from picklable objects"
                ) from None
        for i, ref in refs.items():
            self._started(i, ref)
        for i, actor in enumerate(self.actors):
            if i not in refs and before[i] != self.threads[i]:
                actor.use_threads.remote(self.threads[i])  # before the tasks submitted next
        self._seq = [0] * len(self.actors)
        self._sent = None
        self._methods = [  # bound once: options per submission cost Python time per task
            {
                "train": a.train.options(num_returns=3),
                "passes": a.passes.options(num_returns=2),
                "forward": a.forward.options(num_returns=2),
            }
            for a in self.actors
        ]

    def _started(self, index: int, ref: Any) -> Any:
        """The value of a start-up call of block ``index``'s actor (one line if it failed)."""
        try:
            return self.get(index, ref)
        except self._ray.exceptions.RaySystemError as exc:
            raise PipelineError(
                f"cannot start the actor of block {index}: {_reason(exc)}"
            ) from None

    def _next(self, index: int) -> int:
        self._seq[index] += 1
        return self._seq[index]


def _reason(exc: BaseException) -> str:
    """The first line of a Ray error, shortened."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]

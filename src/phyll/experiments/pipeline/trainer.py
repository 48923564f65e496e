"""The training loop of a pipelined run: :class:`PipelineEngine`, an :class:`~phyll.engine.Engine`
whose blocks train on their own actors, several steps in flight.

**Why it is exact.** In a sequential step of a local rule, block *l* computes its output for
minibatch *t* with the weights it has after step *t − 1*, passes it on, then updates. So block
*l*'s step *t* needs only its own state after step *t − 1* and block *l − 1*'s output of step
*t*: block *l* can train on step *t* while block *l + 1* trains on step *t − 1*, and the
numbers are those of the sequential run. Each device sees its own queries in the sequential
order (the workers check it), so with one device per block the run is identical to a
sequential one: accuracies, weights, queries and FLOPs (each actor runs its share of the
run's torch threads: a kernel that splits a large operation by thread may round
differently than the driver's count would; ``--threads 1`` rules that out,
:func:`~phyll.experiments.pipeline.actors.thread_shares`). ``--pipeline-sync`` runs one task at a
time instead, in the sequential order across blocks too: identical even when several blocks
share one device, and as slow as a sequential run.

**The driver** keeps the data, the schedule and the run folder. It prepares each step (the
rule's negatives, embeddings: :meth:`~phyll.learning.blockwise.BlockwiseRule.prepare_step`),
submits chunks of consecutive steps as chains of actor tasks (one task per block and chunk),
and keeps up to ``window`` steps in flight, across epoch ends: an epoch's evaluation is a
chain of prediction passes queued behind its last step, so each block evaluates with exactly
its epoch-end weights while the earlier blocks already train on the next epoch. Results are
processed in submission order: losses, the rule's
:meth:`~phyll.learning.blockwise.BlockwiseRule.finish_step` (a readout), accuracies, the
epoch's record, selection and the callbacks, as the sequential engine does.

**Consistent checkpoints without stopping.** At every checkpoint step (``checkpoint_every``)
and epoch end, each worker reports a snapshot of its state right after that point, and the
driver records its own random streams as they were when it submitted it. When that point is
processed, the driver's copy of the model, optimizers and systems is loaded from the
snapshots, and :meth:`PipelineEngine.state_dict` gives the state *at that point*, although
later steps are already running: resuming it continues exactly. Between those points the
driver's copy of the weights lags behind the actors. A stop request (Ctrl-C) stops submitting,
lets the steps in flight finish, and checkpoints there.

**Costs.** Every task's queries, FLOPs and time are measured in its worker by the same meters
as in a sequential run and added to the phase they belong to, with the driver's own part; a
step's parts are measured under the rule's :meth:`~phyll.learning.base.LearningRule.
step_signature` (tagged with the part), so repeated steps reuse their counted FLOPs as the
sequential engine does. The costs therefore add up exactly as sequentially (wall time is the
sum of busy seconds, as a sequential run would spend them). The pipeline's elapsed time and
each actor's busy and idle time are the :class:`~phyll.experiments.pipeline.timeline.Timeline`.

**A dead actor** (its process or node gone) is replaced, and the run continues from the last
consistent point (the last checkpoint), at most ``restarts`` times; then the run stops with one
line, its last checkpoint kept.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from phyll.accounting import Costs, Meter
from phyll.engine import Engine, TrainingError, calibration_report
from phyll.experiments.pipeline.actors import ActorDied, BlockRefs, Pipeline
from phyll.experiments.pipeline.timeline import Timeline
from phyll.experiments.pipeline.worker import (
    Report,
    WorkerState,
    fresh,
    from_wire,
    map_leaves,
    shape_signature,
    tagged,
)
from phyll.learning.base import evaluating
from phyll.learning.blockwise import BlockStep, BlockwiseRule

#: prediction batch size (as :func:`phyll.engine.accuracy`)
EVAL_BATCH = 512


@dataclass
class Cut:
    """A consistent point of the run: where each worker's snapshot right after it comes from
    (references to reports; None: the reports of the step it follows), and the driver's random
    streams as they were when it was submitted."""

    reports: list[Any] | None
    streams: dict[str, Any]


@dataclass
class Step:
    """One training step of a chunk: what the rule prepared, the driver's costs of preparing
    it, the rule's signature of the step, the consistent point after it (a checkpoint step),
    if any."""

    block_step: BlockStep
    driver: Costs
    signature: Hashable | None = None
    cut: Cut | None = None


@dataclass
class ChunkItem:
    """Consecutive training steps of one epoch in flight, one task per block."""

    epoch: int
    order: Tensor
    steps: list[Step]
    refs: list[BlockRefs]


@dataclass
class Evaluation:
    """One split's prediction passes in flight: ``(x, y, refs)`` per batch."""

    key: str
    n: int
    batches: list[tuple[Tensor, Tensor, list[BlockRefs]]] = field(default_factory=list)
    driver: Costs = field(default_factory=Costs)


@dataclass
class EpochEndItem:
    """The end of an epoch in flight: its evaluations and the consistent point after them."""

    epoch: int
    evaluations: list[Evaluation]
    cut: Cut


@dataclass
class Cursor:
    """Where submission stands: the epoch and step to submit next, that epoch's sample order,
    the global step count once the steps submitted so far complete, and the chunks submitted
    (since the run started or resumed)."""

    epoch: int
    step: int
    order: Tensor | None
    global_step: int
    entered: bool = False
    chunks: int = 0  # submitted so far


class PipelineEngine(Engine):
    """An engine whose blocks train on Ray actors (see module docstring).

    Args:
        model, rule, splits, and the rest: as :class:`~phyll.engine.Engine`; ``rule`` must be a
            :class:`~phyll.learning.blockwise.BlockwiseRule`.
        pipeline: the run's actors (not started yet).
        checkpoint_every: the steps where the run folder checkpoints mid-epoch (consistent
            points are taken there).
        chunk: consecutive steps one actor task trains (1 with a serial pipeline).
        window: training steps in flight at most (1 with a serial pipeline).
        restarts: dead actors replaced at most this many times in the run.
    """

    def __init__(
        self,
        *args: Any,
        pipeline: Pipeline,
        checkpoint_every: int,
        chunk: int,
        window: int,
        restarts: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.rule, BlockwiseRule):
            raise TypeError(f"a pipeline trains block-wise rules, got {type(self.rule).__name__}")
        self.blockwise: BlockwiseRule = self.rule
        self.pipeline = pipeline
        self.checkpoint_every = checkpoint_every
        self.chunk = 1 if pipeline.serial else max(int(chunk), 1)
        self.window = 1 if pipeline.serial else max(int(window), self.chunk)
        self.restarts = restarts
        self.timeline = Timeline.empty(len(self.model.blocks))
        self._inflight: deque[ChunkItem | EpochEndItem] = deque()
        self._cut_streams: dict[str, Any] | None = None
        self._restart_point: dict[str, Any] | None = None
        self._pipeline_started = 0.0
        self._outputs_needed = self.blockwise.needs_outputs
        #: the driver's meters per part of the work, kept across steps (signatures reused)
        self._driver_meters = {p: Meter() for p in ("prepare", "finish", "input", "predict")}

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """As :meth:`Engine.fit`, the epochs pipelined on the actors."""
        self.stop_reason = None
        self._start_session()
        try:
            for cb in self.callbacks:
                cb.on_fit_start(self)
            for system in self.systems:  # counted (once, cached) before any meter runs
                _ = system.emulation_flops_per_query
            self.pipeline.start()
            self.timeline.startup_s += self.pipeline.startup_s
            self.timeline.hosts = list(self.pipeline.hosts)
            self.timeline.threads = list(self.pipeline.threads)
            if not self.setup_done:  # block-wise rules have no setup of their own
                with self.meters["setup"].measure():
                    calibration_report(self.model, self.rule)
                self.setup_done = True
            self._train_with_restarts()
            summary = self._physics(self.finish, "testing the selected weights")
            for cb in self.callbacks:
                cb.on_fit_end(self, summary)
            return summary
        finally:
            for cb in self.callbacks:
                cb.on_fit_exit(self)
            self.pipeline.release()

    def _train_with_restarts(self) -> None:
        while True:
            try:
                self._physics(self._pipelined_session, f"in epoch {self.epoch + 1}")
                return
            except TrainingError as exc:
                if not isinstance(exc.__cause__, ActorDied):
                    raise
                self._restart(exc.__cause__)

    def _restart(self, died: ActorDied) -> None:
        """Replace the dead actor(s) and continue from the last consistent point."""
        if self.timeline.restarts >= self.restarts or self._restart_point is None:
            raise TrainingError(
                f"training stopped in epoch {self.epoch + 1}: {died}; "
                f"{self.timeline.restarts} restart(s) of {self.restarts} allowed"
            ) from died
        elapsed = self.timeline.elapsed_s  # the failed session's time included
        point = self._restart_point
        self.load_state_dict(copy.deepcopy(point))
        replaced = self.pipeline.replace_dead()
        self.timeline.elapsed_s = elapsed
        self.timeline.restarts += 1
        self.timeline.hosts = list(self.pipeline.hosts)
        self.timeline.threads = list(self.pipeline.threads)
        print(
            f"phyll: {died}: block(s) {', '.join(map(str, replaced))} restarted, continuing from "
            f"epoch {self.epoch + 1}, step {self.global_step} (restart {self.timeline.restarts} "
            f"of {self.restarts})",
            file=sys.stderr,
            flush=True,
        )

    def _pipelined_session(self) -> None:
        """Submit and complete every remaining step and evaluation."""
        self._pipeline_started = time.perf_counter()
        self.pipeline.load(self._worker_states())
        self._cut_streams = None
        self._restart_point = self._restart_state()
        progress = self.progress
        cursor = Cursor(
            self.epoch,
            progress["step"] if progress else 0,
            progress["order"] if progress else None,
            self.global_step,
        )
        try:
            while cursor.epoch < self.epochs or self._inflight:
                while (
                    self.stop_reason is None
                    and cursor.epoch < self.epochs
                    and self._steps_in_flight() < self.window
                ):
                    self._submit(cursor)
                if self._inflight:
                    self._complete(self._inflight[0])
                    self._inflight.popleft()
                if self.stop_reason is not None and not self._inflight:
                    self._settle()
                    self._stop_if_requested()
            self._settle()
        except BaseException:
            self.pipeline.discard([ref for item in self._inflight for ref in _references(item)])
            self._inflight.clear()
            raise
        finally:
            self.timeline.elapsed_s += time.perf_counter() - self._pipeline_started
            self._pipeline_started = time.perf_counter()

    def _settle(self) -> None:
        """Nothing in flight: the driver's copy takes the actors' live state."""
        self._load_states(self.pipeline.states())
        self._cut_streams = None

    # ------------------------------------------------------------------ submission
    def _submit(self, cursor: Cursor) -> None:
        """Submit the next step of ``cursor`` (entering its epoch first), or its epoch's end."""
        if not cursor.entered:
            with self._presenting(epoch=cursor.epoch):
                for cb in self.callbacks:
                    cb.on_epoch_start(self)
            self.pipeline.set_hyperparameters(
                [[_hyperparameters(g) for g in o.param_groups] for o in self.blockwise.optimizers]
            )
            if cursor.order is None:
                n = len(self.splits.y_train)
                cursor.order = torch.randperm(n, generator=self.shuffle, device="cpu")
            cursor.entered = True
        if cursor.step < self.steps_per_epoch:
            self._inflight.append(self._submit_chunk(cursor))
            return
        self._inflight.append(self._submit_epoch_end(cursor.epoch))
        cursor.epoch, cursor.step, cursor.order, cursor.entered = cursor.epoch + 1, 0, None, False

    def _submit_chunk(self, cursor: Cursor) -> ChunkItem:
        """The next steps of the epoch, prepared and submitted: 1, 2, 4, ... up to ``chunk``
        steps, and halving again over the run's last steps (small chunks first and last, so
        that the pipeline fills and drains fast)."""
        assert cursor.order is not None
        order = cursor.order.to(self.splits.y_train.device)
        in_epoch = self.steps_per_epoch - cursor.step
        in_run = (self.epochs - 1 - cursor.epoch) * self.steps_per_epoch + in_epoch
        size = min(self.chunk, 2**cursor.chunks, in_epoch, max(in_run // 2, 1))
        cursor.chunks += 1
        steps = []
        for _ in range(size):
            idx = order[cursor.step * self.batch_size :][: self.batch_size]
            x, y = self.splits.x_train[idx], self.splits.y_train[idx]
            signature = self.rule.step_signature(x, y)
            meter = fresh(self._driver_meters["prepare"])
            with meter.measure(tagged("prepare", signature)):
                if self.augment is not None:
                    x = self.augment(x)
                block_step = self.blockwise.prepare_step(x, y)
            cursor.step += 1
            cursor.global_step += 1
            every = self.checkpoint_every
            checkpoint = bool(every) and cursor.global_step % every == 0
            cut = checkpoint and cursor.step < self.steps_per_epoch  # mid-epoch, as the writer
            point = Cut(None, self._streams()) if cut else None
            steps.append(Step(block_step, meter.costs, signature, point))
        refs = self.pipeline.train(
            [s.block_step for s in steps],
            [s.cut is not None for s in steps],
            [s.signature for s in steps],
        )
        return ChunkItem(cursor.epoch, cursor.order, steps, refs)

    def _steps_in_flight(self) -> int:
        return sum(len(i.steps) for i in self._inflight if isinstance(i, ChunkItem))

    def _submit_epoch_end(self, epoch: int) -> EpochEndItem:
        """The epoch's evaluations (if due), each block's snapshot after them."""
        due = self._due_evaluations(epoch)
        evaluations = [
            self._submit_evaluation(key, split, subset, snapshot=i == len(due) - 1)
            for i, (key, split, subset) in enumerate(due)
        ]
        last = evaluations[-1].batches[-1][2] if evaluations and evaluations[-1].batches else None
        # each block's state after the evaluations: carried by the last pass's reports, or
        # asked for (queued behind the evaluations in each actor)
        snapshots = [r.reports[0] for r in last] if last else self.pipeline.state_refs()
        return EpochEndItem(epoch, evaluations, Cut(snapshots, self._streams()))

    def _submit_evaluation(
        self, key: str, split: str, subset: Tensor | None, snapshot: bool = False
    ) -> Evaluation:
        """One split's prediction passes, submitted (with ``snapshot``, the last pass's reports
        carry each block's state after it)."""
        x, y = self.splits.get(split)
        if subset is not None:
            x, y = x[subset.to(x.device)], y[subset.to(y.device)]
        evaluation = Evaluation(key, len(y))
        meter = fresh(self._driver_meters["input"])
        for i in range(0, len(y), EVAL_BATCH):
            xb, yb = x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]
            signature = shape_signature("input", xb)
            with meter.measure(signature), evaluating(self.model), torch.no_grad():
                inputs = self.blockwise.prediction_input(xb)
            last = snapshot and i + EVAL_BATCH >= len(y)
            evaluation.batches.append((xb, yb, self.pipeline.forward(inputs, snapshot=last)))
        evaluation.driver = meter.costs
        return evaluation

    def _due_evaluations(self, epoch: int) -> list[tuple[str, str, Tensor | None]]:
        """What :meth:`Engine.evaluate_epoch` measures after epoch ``epoch`` (from 0)."""
        plan, ending = self.eval_plan, epoch + 1
        if ending % plan.every and ending != self.epochs:
            return []
        due: list[tuple[str, str, Tensor | None]] = [("val_accuracy", "val", self.val_subset)]
        if plan.test_curve:
            due.append(("test_accuracy", "test", None))
        if plan.train_samples:
            due.append(("train_accuracy", "train", self.train_subset))
        return due

    # ------------------------------------------------------------------ completion
    def _complete(self, item: ChunkItem | EpochEndItem) -> None:
        if isinstance(item, ChunkItem):
            self._complete_chunk(item)
        else:
            self._complete_epoch(item)

    def _complete_chunk(self, item: ChunkItem) -> None:
        """Every step of a chunk, in order, as a sequential run ends its steps."""
        refs, n = item.refs, len(item.refs)
        wanted = [(i, r.reports) for i, r in enumerate(refs)]
        if self._outputs_needed:
            wanted += [(i, r.out) for i, r in enumerate(refs)]
        with_neutral = item.steps[0].block_step.neutral is not None
        if with_neutral:
            wanted += [(i, r.neutral) for i, r in enumerate(refs)]
        values = self._fetch(wanted)
        reports: list[list[list[Report]]] = values[:n]  # block → task → step
        outputs = values[n : 2 * n] if self._outputs_needed else []
        neutral = values[-n:] if with_neutral else []
        for j, step in enumerate(item.steps):
            step_reports = [[task[j] for task in block] for block in reports]
            losses = [torch.tensor(r[0].loss, dtype=torch.float64) for r in step_reports]
            meter = fresh(self._driver_meters["finish"])
            with meter.measure(tagged("finish", step.signature)):  # the losses summed as
                # a sequential step sums them
                total = losses[0]
                for loss in losses[1:]:
                    total = total + loss
                self.blockwise.finish_step(
                    step.block_step,
                    [from_wire(o[j]) for o in outputs],
                    [from_wire(o[j]) for o in neutral] if with_neutral else None,
                )
            self._add_costs("training", step_reports, step.driver + meter.costs)
            if self.progress is None:
                self.progress = {"order": item.order, "step": 0, "losses": []}
            self.progress["losses"].append(float(total) / n)
            self.progress["step"] += 1
            self.global_step += 1
            if step.cut is not None:
                self._reach([r[-1].snapshot for r in step_reports], step.cut.streams)
                self._restart_point = self._restart_state()
            for cb in self.callbacks:
                cb.on_step_end(self)

    def _complete_epoch(self, item: EpochEndItem) -> None:
        scores = {e.key: self._accuracy(e) for e in item.evaluations}
        progress = self.progress
        assert progress is not None and progress["losses"], "an epoch ended without its steps"
        loss = sum(progress["losses"]) / len(progress["losses"])
        self.progress = None
        assert item.cut.reports is not None
        snapshots = self.pipeline.get_all(list(enumerate(item.cut.reports)))
        self._reach([r.snapshot for r in snapshots], item.cut.streams)
        self.epoch += 1
        record = self._record(loss, scores)
        elapsed = self.timeline.elapsed_s + time.perf_counter() - self._pipeline_started
        record.update(pipeline_busy_s=list(self.timeline.busy_s), pipeline_elapsed_s=elapsed)
        self.history.append(record)
        self._select(record)
        self._restart_point = self._restart_state()
        for cb in self.callbacks:
            cb.on_epoch_end(self, record)

    def _accuracy(self, evaluation: Evaluation) -> float | None:
        """The split's accuracy from its passes, counted as evaluation (as
        :func:`phyll.engine.accuracy`)."""
        n = len(self.model.blocks)
        wanted = [(i, r.out) for _, _, refs in evaluation.batches for i, r in enumerate(refs)]
        wanted += [(i, r.reports) for _, _, refs in evaluation.batches for i, r in enumerate(refs)]
        values = self._fetch(wanted)
        half = len(values) // 2
        outputs = [[from_wire(v) for v in values[k : k + n]] for k in range(0, half, n)]
        meter, correct = fresh(self._driver_meters["predict"]), None
        if evaluation.n:
            y0 = evaluation.batches[0][1]
            correct = torch.zeros((), dtype=torch.long, device=y0.device)
        for (xb, yb, _), outs in zip(evaluation.batches, outputs, strict=True):
            assert correct is not None
            signature = shape_signature("predict", xb)
            with meter.measure(signature), evaluating(self.model), torch.no_grad():
                correct += (self.blockwise.predict_from_outputs(xb, outs) == yb).sum()
        self._add_costs("evaluation", values[half:], evaluation.driver + meter.costs)
        return None if correct is None else int(correct) / evaluation.n

    def _fetch(self, wanted: list[tuple[int, Any]]) -> list[Any]:
        """Values of ``(block, reference or list of references)`` pairs, fetched at once."""
        flat = [(i, r) for i, refs in wanted for r in (refs if isinstance(refs, list) else [refs])]
        values = iter(self.pipeline.get_all(flat))
        return [
            [next(values) for _ in refs] if isinstance(refs, list) else next(values)
            for _, refs in wanted
        ]

    def _add_costs(self, phase: str, reports: list[list[Report]], driver: Costs) -> None:
        """Add the driver's costs and every task's (``reports[k]``: block ``k mod blocks``'s
        tasks) to ``phase``, one task after the other in the sequential order of the calls
        (so that sums of floats, device time and energy, round as sequentially); the busy
        times."""
        meter, n = self.meters[phase], len(self.model.blocks)
        meter.costs += driver
        parts = [[c for r in block_reports for c in r.all_costs()] for block_reports in reports]
        for k, block_reports in enumerate(reports):
            seconds = sum(c.wall_time_s for c in parts[k])
            self.timeline.add_task(k % n, seconds, tasks=len(block_reports))
        for position in range(max(map(len, parts), default=0)):  # every block's 1st, 2nd...
            for block_parts in parts:
                if position < len(block_parts):
                    meter.costs += block_parts[position]
        self.timeline.driver_busy_s += driver.wall_time_s

    def _reach(self, snapshots: list[WorkerState], streams: dict[str, Any]) -> None:
        """A consistent point is processed: the driver's copy takes the workers' snapshots,
        and its state is that point's until the work beyond it is processed."""
        self._load_states(snapshots)
        self._cut_streams = streams

    # ------------------------------------------------------------------ evaluation on demand
    def evaluate(self, split: str, subset: Tensor | None = None) -> float | None:
        """Accuracy of the driver's weights on a split (or subset), through the actors."""
        if self._inflight:
            raise RuntimeError(
                "engine.evaluate while pipelined steps are in flight: a callback cannot "
                "evaluate in the middle of a pipelined epoch"
            )
        self.pipeline.load([WorkerState(block=b.state_dict()) for b in self.model.blocks])
        evaluation = self._submit_evaluation("accuracy", split, subset)
        accuracy = self._accuracy(evaluation)
        self._settle()
        return accuracy

    def summary(self) -> dict[str, Any]:
        mode = "sync" if self.pipeline.serial else "async"
        return {**super().summary(), "pipeline_timeline": self.timeline.summary(mode)}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The engine's state at the last consistent point processed (see module docstring)."""
        state = super().state_dict()
        if self._cut_streams is not None:
            streams = self._cut_streams
            state["shuffle"], state["torch_rng"] = streams["shuffle"], streams["torch_rng"]
            state["augment"] = streams["augment"]
            state["rule"] = {**state["rule"], "generator": streams["generator"]}
        state["pipeline"] = self.timeline.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "pipeline" in state:
            self.timeline.load_state_dict(state["pipeline"])

    def _restart_state(self) -> dict[str, Any]:
        """A copy of :meth:`state_dict` to restart from if an actor dies (taken at every
        consistent point). The history's records are only appended to, so they are copied one
        level deep: a deep copy of the whole history at every epoch would cost time quadratic
        in the epochs."""
        state = self.state_dict()
        history = state.pop("history")
        point = _copied(state)
        point["history"] = [dict(record) for record in history]
        return point

    def _worker_states(self) -> list[WorkerState]:
        """The driver's copy of every block's state, to give the workers."""
        return [
            WorkerState(block.state_dict(), optimizer.state_dict(), block.system.state_dict())
            for block, optimizer in zip(self.model.blocks, self.blockwise.optimizers, strict=True)
        ]

    def _load_states(self, states: list[WorkerState]) -> None:
        """The driver's copy takes the workers' states."""
        for block, optimizer, state in zip(
            self.model.blocks, self.blockwise.optimizers, states, strict=True
        ):
            block.load_state_dict(state.block)
            optimizer.load_state_dict(state.optimizer)
            block.system.load_state_dict(state.system)

    def _streams(self) -> dict[str, Any]:
        """The driver's random streams now (at a point being submitted)."""
        return {
            "shuffle": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "augment": self.augment.state_dict() if self.augment is not None else None,
            "generator": self.rule.generator.get_state(),
        }

    @contextlib.contextmanager
    def _presenting(self, epoch: int) -> Iterator[None]:
        """Show ``epoch`` as the engine's epoch (for ``on_epoch_start`` at submission)."""
        completed = self.epoch
        self.epoch = epoch
        try:
            yield
        finally:
            self.epoch = completed


def _references(item: ChunkItem | EpochEndItem) -> list[Any]:
    """Every object reference an item in flight holds."""
    if isinstance(item, ChunkItem):
        blocks, cut = item.refs, []
    else:
        blocks = [r for e in item.evaluations for _, _, refs in e.batches for r in refs]
        cut = item.cut.reports or []
    return [ref for r in blocks for ref in (r.out, r.neutral, *r.reports)] + cut


def _copied(state: Any) -> Any:
    """A copy of a state tree: its tensors cloned, its dicts, lists and tuples rebuilt, its
    other leaves (numbers, strings, None) shared. On the benchmark's driver state (about a
    hundred small tensors) it takes a fifth of the time of :func:`copy.deepcopy` (0.65 ms
    against 2.95 ms per epoch), CPU that the actors on the same cores would otherwise get."""
    return map_leaves(state, Tensor, lambda t: t.detach().clone())


def _hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    """An optimizer group's settings without its parameters."""
    return {k: v for k, v in group.items() if k != "params"}

"""The training engine: the one loop every experiment rides (``Engine.fit``).

An :class:`Engine` trains a :class:`~phyll.network.Model` with a
:class:`~phyll.learning.base.LearningRule` on :class:`Splits` of a dataset, for a number of
epochs, and owns what every experiment needs from a loop:

* **phases and costs**: three :class:`~phyll.accounting.Meter`\\ s, *setup* (the systems'
  calibration drives and the rule's one-time :meth:`~phyll.learning.base.LearningRule.setup`,
  e.g. PAT's twin), *training* (every ``train_step``) and *evaluation* (every prediction);
* **evaluation plan** (:class:`EvalPlan`): by default the validation split after every epoch,
  and the test split once, at the end, with the selected weights;
* **selection**: the weights of the epoch with the best validation accuracy (ties go to the
  later epoch; without a validation split, the last epoch) are the result;
* **state**: everything needed to continue exactly (:meth:`Engine.state_dict`: weights,
  optimizers, RNGs, the systems' state, costs, the position inside the epoch, and the state of
  every callback that has a ``key``).

What differs between experiments are :class:`Callback`\\ s, called at fixed points (see
docs/architecture.md, "Callback points"): the run folder (checkpoints, metrics, summary) lives
in :mod:`phyll.experiments.run_callbacks`; signals and the progress bar here; a perturbation
schedule in :mod:`phyll.experiments.robustness`. A stop requested by a callback (Ctrl-C) takes
effect at the next step boundary: callbacks get :meth:`Callback.on_interrupt` (the run folder
checkpoints), then :class:`TrainingInterrupted` is raised.
"""

from __future__ import annotations

import copy
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from phyll.accounting import Costs, Meter, report_queries
from phyll.errors import ConfigError, UserError
from phyll.learning.base import LearningRule
from phyll.network import BlockMeasurementError, Model
from phyll.systems.base import PhysicalSystem, PhysicalSystemError

PHASES = ("setup", "training", "evaluation")


class TrainingError(UserError, RuntimeError):
    """Training stopped because a physical system failed; the message says where."""


class TrainingInterrupted(KeyboardInterrupt):
    """Stopped on request (Ctrl-C/SIGTERM) at a step boundary, after the callbacks' interrupt."""


@dataclass
class Splits:
    """Training, validation and test data, on the model's device."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    def get(self, name: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of the split ``"train"``, ``"val"`` or ``"test"``."""
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


@dataclass(frozen=True)
class EvalPlan:
    """What is measured during training (every evaluation costs physical queries).

    Attributes:
        every: evaluate the validation split every this many epochs (and after the last).
        samples: evaluate at most this many validation samples (a fixed random subset).
        test_curve: also measure the test split at every evaluation (for figures; the
            result never depends on it).
        train_samples: also measure the accuracy on this many training samples (0: never).
    """

    every: int = 1
    samples: int | None = None
    test_curve: bool = False
    train_samples: int = 0

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"eval_every must be >= 1, got {self.every}")
        if self.samples is not None and self.samples < 1:
            raise ConfigError(f"eval_samples must be >= 1, got {self.samples}")
        if self.train_samples < 0:
            raise ConfigError(f"train_eval_samples must be >= 0, got {self.train_samples}")


class Augmentation(Protocol):
    """A training-batch transform with checkpointable state (e.g.
    :class:`phyll.data.augment.RandomShift`)."""

    def __call__(self, x: Tensor) -> Tensor: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Callback:
    """Hooks the engine calls; override the ones you need. Each gets the engine.

    A callback with a :attr:`key` has its :meth:`state_dict` saved in the engine's state (and
    restored before :meth:`on_fit_start` on resume), so what it does resumes exactly.
    """

    key: str | None = None

    def on_fit_start(self, engine: Engine) -> None:
        """Before the first remaining epoch (also when resuming)."""

    def on_epoch_start(self, engine: Engine) -> None:
        """Before the training pass of epoch ``engine.epoch + 1`` (also a resumed one)."""

    def on_step_end(self, engine: Engine) -> None:
        """After every training step (``engine.global_step`` has advanced)."""

    def on_epoch_end(self, engine: Engine, record: dict[str, Any]) -> None:
        """After the epoch's evaluation; ``record`` is its metrics line."""

    def on_interrupt(self, engine: Engine) -> None:
        """A stop was requested: the engine is at a step boundary and about to raise."""

    def on_fit_end(self, engine: Engine, summary: dict[str, Any]) -> None:
        """After the selected weights are restored and the test split measured."""

    def on_fit_exit(self, engine: Engine) -> None:
        """Always, last (normal end, interruption or failure): release what was taken."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


def accuracy(rule: LearningRule, x: Tensor, y: Tensor, batch: int = 512) -> float | None:
    """Fraction of correct predictions (None for an empty split)."""
    if len(y) == 0:
        return None
    correct = torch.zeros((), dtype=torch.long, device=y.device)  # one host read, at the end
    for i in range(0, len(y), batch):
        correct += (rule.predict(x[i : i + batch]) == y[i : i + batch]).sum()
    return int(correct) / len(y)


def calibration_report(model: Model, rule: LearningRule) -> None:
    """Report to the meters the calibration drives made by every physical device the run
    drives (blocks that measure, with a rule that queries the hardware), once per device
    (one served device may serve every block)."""
    if not rule.drives_physics:
        return
    seen = set()
    for system in (b.system for b in model.network.blocks if b.use_physics):
        n = system.calibration_queries
        if n and system.device_key not in seen:
            seen.add(system.device_key)
            offloaded = n * (system.emulation_flops_per_query or 0)
            report_queries(n, system.power_w, system.device_time(n, 0.0), offloaded)


class Engine:
    """The training loop (see module docstring).

    Args:
        model: what is trained and selected (network and head).
        rule: how the model's weights are updated and how it predicts.
        splits: the data.
        epochs: total epochs (a resumed engine trains the remaining ones).
        batch_size: samples per training step.
        seed: seeds the sample order and the fixed evaluation subsets.
        eval_plan: what is measured during training.
        callbacks: called in order at each point.
        augment: transforms every training batch's inputs before the step (None: as they are).
        started: when this session's work began (:func:`time.perf_counter`; the process's
            start for the command line): the time until :meth:`fit` starts is ``startup_s``.
    """

    def __init__(
        self,
        model: Model,
        rule: LearningRule,
        splits: Splits,
        *,
        epochs: int,
        batch_size: int,
        seed: int = 0,
        eval_plan: EvalPlan | None = None,
        callbacks: Sequence[Callback] = (),
        augment: Augmentation | None = None,
        started: float | None = None,
    ) -> None:
        self.model, self.rule, self.splits = model, rule, splits
        self.started = started
        self.augment = augment
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.eval_plan = eval_plan or EvalPlan()
        self.callbacks = list(callbacks)
        keys = [cb.key for cb in self.callbacks if cb.key]
        if len(keys) != len(set(keys)):
            raise ValueError(f"callback keys must be unique, got {keys}")
        self.meters = {phase: Meter() for phase in PHASES}
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.global_step = 0
        self.progress: dict[str, Any] | None = None  # the epoch in progress: order, step, losses
        self.best: dict[str, Any] = {"epoch": 0, "val_accuracy": -1.0, "record": None}
        self.best_weights: dict[str, Tensor] | None = None
        self.setup_done = False
        #: wall time outside the phases, summed over sessions (a resumed run adds its own)
        self.clock = {"startup_s": 0.0, "bookkeeping_s": 0.0}
        self._session: tuple[float, float, float] | None = None
        self.final: dict[str, float | None] | None = None
        #: the state before the final test (what :meth:`extend` trains on from)
        self.continuation: dict[str, Any] | None = None
        #: every time the run was trained longer than planned (:meth:`extend`)
        self.extensions: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        # the sample order and the subsets are drawn on the host (once per epoch, the same on
        # every device) and moved to the data's device
        self.shuffle = torch.Generator().manual_seed(seed + 17)
        subsets = torch.Generator().manual_seed(seed + 23)
        plan = self.eval_plan
        self.train_subset = torch.randperm(len(splits.y_train), generator=subsets, device="cpu")[
            : plan.train_samples
        ]
        self.val_subset = (
            torch.randperm(len(splits.y_val), generator=subsets, device="cpu")[: plan.samples]
            if plan.samples is not None
            else None
        )

    @property
    def systems(self) -> list[PhysicalSystem]:
        return self.model.systems

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.splits.y_train) / self.batch_size)

    def request_stop(self, reason: str) -> None:
        """Stop at the next step boundary (the callbacks' ``on_interrupt`` runs first)."""
        self.stop_reason = reason

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Train the remaining epochs; return the summary of the selected weights."""
        self.stop_reason = None
        self._start_session()
        try:
            for cb in self.callbacks:
                cb.on_fit_start(self)
            for system in self.systems:  # counted (once, cached) before any meter runs
                _ = system.emulation_flops_per_query
            if not self.setup_done:
                with self.meters["setup"].measure():
                    calibration_report(self.model, self.rule)
                    self._physics(self.rule.setup, "during setup")
                self.setup_done = True
            while self.epoch < self.epochs:
                for cb in self.callbacks:
                    cb.on_epoch_start(self)
                where = f"in epoch {self.epoch + 1}"
                loss = self._physics(self.train_epoch, where)
                scores = self._physics(self.evaluate_epoch, f"evaluating {where}")
                self.epoch += 1
                record = self._record(loss, scores)
                self.history.append(record)
                self._select(record)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, record)
                self._stop_if_requested()
            summary = self._physics(self.finish, "testing the selected weights")
            for cb in self.callbacks:
                cb.on_fit_end(self, summary)
            return summary
        finally:
            for cb in self.callbacks:
                cb.on_fit_exit(self)

    def train_epoch(self) -> float:
        """One pass over the training split (or the rest of an interrupted one): mean loss."""
        if self.progress is None:
            order = torch.randperm(len(self.splits.y_train), generator=self.shuffle, device="cpu")
            self.progress = {"order": order, "step": 0, "losses": []}
        progress = self.progress
        order = progress["order"].to(self.splits.y_train.device)
        meter = self.meters["training"]
        while progress["step"] < self.steps_per_epoch:
            idx = order[progress["step"] * self.batch_size :][: self.batch_size]
            x, y = self.splits.x_train[idx], self.splits.y_train[idx]
            with meter.measure(self.rule.step_signature(x, y)):
                if self.augment is not None:
                    x = self.augment(x)
                loss = self.rule.train_step(x, y)
            progress["losses"].append(loss)
            progress["step"] += 1
            self.global_step += 1
            for cb in self.callbacks:
                cb.on_step_end(self)
            self._stop_if_requested()
        self.progress = None
        return sum(progress["losses"]) / len(progress["losses"])

    def evaluate(self, split: str, subset: Tensor | None = None) -> float | None:
        """Accuracy on a split (or a fixed subset of it), counted as evaluation."""
        x, y = self.splits.get(split)
        if subset is not None:
            x, y = x[subset.to(x.device)], y[subset.to(y.device)]
        with self.meters["evaluation"].measure(("accuracy", tuple(x.shape), x.dtype)):
            return accuracy(self.rule, x, y)

    def evaluate_epoch(self) -> dict[str, float | None]:
        """What the plan measures after the epoch now ending (nothing when it is not due)."""
        plan, ending = self.eval_plan, self.epoch + 1
        if ending % plan.every and ending != self.epochs:
            return {}
        scores = {"val_accuracy": self.evaluate("val", self.val_subset)}
        if plan.test_curve:
            scores["test_accuracy"] = self.evaluate("test")
        if plan.train_samples:
            scores["train_accuracy"] = self.evaluate("train", self.train_subset)
        return scores

    def finish(self) -> dict[str, Any]:
        """Restore the selected weights, measure the test split once, return the summary."""
        if self.final is None:
            # the last epoch's state (copied: the test loads other weights), to train on from
            self.continuation = copy.deepcopy(self.state_dict())
            if self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
            before = self.meters["evaluation"].snapshot()
            self.final = {"test_accuracy": self.evaluate("test")}
            tested = self.meters["evaluation"].snapshot() - before
            self.final.update(per_inference(tested, len(self.splits.y_test)))
        elif self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        return self.summary()

    def extend(self, epochs: int) -> None:
        """Train to ``epochs`` in total instead of the planned number (no fewer than trained).

        A finished run goes back to the state it had before its final test (the test is
        taken again at the new end; the discarded test's queries are recorded in the
        summary's ``extensions``), so that a run extended from ``M`` to ``N`` epochs trains
        exactly as one planned for ``N`` (a learning-rate schedule aside, see
        :class:`~phyll.experiments.build.LearningRateSchedule`).
        """
        if epochs < self.epoch:
            raise ConfigError(
                f"the run has trained {self.epoch} epochs: --epochs {epochs} cannot undo them"
            )
        if epochs == self.epochs:
            return
        record: dict[str, Any] = {"from_epochs": self.epochs, "to_epochs": epochs}
        if self.final is not None and self.continuation is not None:
            queries = self.meters["evaluation"].costs.physical_queries
            record["discarded_test_accuracy"] = self.final.get("test_accuracy")
            extensions = self.extensions
            self.load_state_dict(self.continuation)
            self.extensions = extensions
            untested = self.meters["evaluation"].costs.physical_queries
            record["discarded_test_physical_queries"] = queries - untested
        self.extensions.append(record)
        self.epochs = epochs

    # ------------------------------------------------------------------ clocks
    def _phase_wall(self) -> float:
        return sum(meter.snapshot().wall_time_s for meter in self.meters.values())

    def _start_session(self) -> None:
        """Count this session's start-up (imports, data, build: until now) and start the
        bookkeeping clock (checkpoints, metrics, figures: whatever the phases do not hold)."""
        now = time.perf_counter()
        self.clock["startup_s"] += max(now - (self.started or now), 0.0)
        self._session = (now, self._phase_wall(), self.clock["bookkeeping_s"])

    def clocks(self) -> dict[str, float]:
        """``startup_s`` and ``bookkeeping_s`` so far (this session's included)."""
        if self._session is None:
            return dict(self.clock)
        start, phases_then, before = self._session
        session = time.perf_counter() - start - (self._phase_wall() - phases_then)
        return {**self.clock, "bookkeeping_s": before + max(session, 0.0)}

    def refresh_clocks(self, summary: dict[str, Any]) -> None:
        """Bring ``summary``'s costs up to now: a callback that writes files at the end
        (checkpoint, figures) calls it before writing the summary, so their time counts."""
        summary.update(whole_run_costs(self.phase_costs(), self.clocks()))

    # ------------------------------------------------------------------ records
    def phase_costs(self) -> dict[str, Costs]:
        """Cumulative costs per phase, the running step included."""
        return {phase: meter.snapshot() for phase, meter in self.meters.items()}

    def _record(self, loss: float, scores: dict[str, float | None]) -> dict[str, Any]:
        """The metrics line of the epoch just ended: scores, cumulative and per-epoch costs."""
        costs = self.phase_costs()
        record: dict[str, Any] = {"epoch": self.epoch, "loss": loss, **scores, "time": time.time()}
        record.update(costs_dict(costs))
        previous = self.history[-1] if self.history else None
        training = costs["training"].as_dict()
        for key in ("physical_queries", "digital_flops", "wall_time_s"):
            before = previous[f"{key}_training"] if previous else 0
            record[f"epoch_{key}"] = training[key] - before
        return record

    def _select(self, record: dict[str, Any]) -> None:
        """Keep the weights of the best validation epoch so far (ties: the later one)."""
        if "val_accuracy" not in record:
            return
        selection = record["val_accuracy"] if record["val_accuracy"] is not None else 0.0
        if selection >= self.best["val_accuracy"]:
            self.best = {"epoch": self.epoch, "val_accuracy": selection, "record": record}
            self.best_weights = {k: v.clone() for k, v in self.model.state_dict().items()}

    def summary(self) -> dict[str, Any]:
        """Accuracies of the selected weights and the costs of every phase."""
        best = self.best["record"] or {}
        final = self.final or {}
        return {
            "test_accuracy": final.get("test_accuracy"),
            "digital_flops_per_inference": final.get("digital_flops_per_inference"),
            "physical_queries_per_inference": final.get("physical_queries_per_inference"),
            "digital_parameters": sum(p.numel() for p in self.model.parameters()),
            "val_accuracy": best.get("val_accuracy"),
            "train_accuracy": best.get("train_accuracy"),
            "best_epoch": self.best["epoch"],
            "last_test_accuracy": self.history[-1].get("test_accuracy") if self.history else None,
            "epochs": self.epoch,
            **whole_run_costs(self.phase_costs(), self.clocks()),
            "queries_per_system": [s.queries for s in self.systems],
            "extensions": self.extensions,
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue exactly (plain tensors, lists, dicts)."""
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "epoch_progress": self.progress,
            "model": self.model.state_dict(),
            "rule": self.rule.state_dict(),
            "systems": [s.state_dict() for s in self.systems],
            "best": self.best,
            "best_weights": self.best_weights,
            "history": self.history,
            "setup_done": self.setup_done,
            "final": self.final,
            "continuation": self.continuation,
            "extensions": self.extensions,
            "shuffle": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "costs": {phase: asdict(m.costs) for phase, m in self.meters.items()},
            "clock": self.clocks(),
            "callbacks": {cb.key: cb.state_dict() for cb in self.callbacks if cb.key},
            "augment": self.augment.state_dict() if self.augment is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.global_step = state["global_step"]
        self.progress = state["epoch_progress"]
        self.model.load_state_dict(state["model"])
        self.rule.load_state_dict(state["rule"])
        for system, s in zip(self.systems, state["systems"], strict=True):
            system.load_state_dict(s)
        self.best = state["best"]
        self.best_weights = state["best_weights"]
        self.history = state["history"]
        self.setup_done = state["setup_done"]
        self.final = state["final"]
        self.continuation = state.get("continuation")  # older checkpoints have none
        self.extensions = list(state.get("extensions", []))
        self.shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        for phase, costs in state["costs"].items():
            self.meters[phase].costs = Costs(**costs)
        self.clock = dict(state.get("clock", self.clock))  # older checkpoints have none
        if self.augment is not None:
            self.augment.load_state_dict(state["augment"])
        for cb in self.callbacks:
            if cb.key and cb.key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][cb.key])

    # ------------------------------------------------------------------ internals
    def _stop_if_requested(self) -> None:
        if self.stop_reason is None:
            return
        for cb in self.callbacks:
            cb.on_interrupt(self)
        raise TrainingInterrupted(
            f"training interrupted ({self.stop_reason}) in epoch {self.epoch + 1}, "
            f"step {self.global_step}"
        )

    def _physics(self, work: Any, where: str) -> Any:
        """Run ``work()``; a failing physical system becomes a :class:`TrainingError` saying
        ``where`` it failed."""
        try:
            return work()
        except PhysicalSystemError as exc:
            raise TrainingError(self._failure(exc, where)) from exc

    @staticmethod
    def _failure(exc: PhysicalSystemError, where: str) -> str:
        if isinstance(exc, BlockMeasurementError):
            return (
                f"training stopped {where}: the physical system of block {exc.block_index} "
                f"returned invalid measurements ({exc})"
            )
        return f"training stopped {where}: {exc}"


def costs_dict(costs: dict[str, Costs], totals: bool = False) -> dict[str, Any]:
    """``{quantity}_{phase}`` for every phase (and, with ``totals``, ``{quantity}`` summed)."""
    out: dict[str, Any] = {}
    for phase, c in costs.items():
        out.update({f"{k}_{phase}": v for k, v in c.as_dict().items()})
    if totals:
        total = Costs()
        for c in costs.values():
            total = total + c
        out.update(total.as_dict())
    return out


def per_inference(test: Costs, n_samples: int) -> dict[str, float | None]:
    """What predicting one sample costs, from the final test's costs over ``n_samples``
    (the prediction included: e.g. every candidate label's pass for a goodness prediction):
    the figures a cost-accuracy frontier compares."""
    if n_samples == 0:
        return {"digital_flops_per_inference": None, "physical_queries_per_inference": None}
    return {
        "digital_flops_per_inference": round(test.digital_flops / n_samples),
        "physical_queries_per_inference": test.physical_queries / n_samples,
    }


def whole_run_costs(costs: dict[str, Costs], clocks: dict[str, float]) -> dict[str, Any]:
    """The summary's costs: every phase's and their totals, with the wall time of the whole
    run: ``wall_time_s = startup_s + wall_time_s_setup + _training + _evaluation +
    bookkeeping_s``, and the digital and projected times that follow from it (start-up and
    bookkeeping are digital work on this machine, and a run with the hardware pays them too)."""
    out = costs_dict(costs, totals=True)
    outside = clocks["startup_s"] + clocks["bookkeeping_s"]
    out.update(clocks)
    out["wall_time_s"] += outside
    out["digital_time_s"] += outside
    out["projected_time_s"] += outside
    return out


# ---------------------------------------------------------------------- built-in callbacks
class SignalGuard(Callback):
    """SIGINT/SIGTERM: stop at the next step boundary (with the callbacks' interrupt, e.g. a
    checkpoint); a second signal aborts at once. Only in the main thread."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, engine: Engine) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            del frame
            if engine.stop_reason is not None:
                raise KeyboardInterrupt
            engine.request_stop(signal.Signals(signum).name)
            print(
                f"phyll: {engine.stop_reason}: stopping after this step with a checkpoint "
                "(send it again to abort now)",
                file=sys.stderr,
                flush=True,
            )

        self._previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_fit_exit(self, engine: Engine) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}


class ProgressBar(Callback):
    """A tqdm bar over epochs with the last loss and validation accuracy."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        self.description, self.enabled = description, enabled
        self._bar: Any = None

    def on_fit_start(self, engine: Engine) -> None:
        self._bar = tqdm(
            total=engine.epochs,
            initial=engine.epoch,
            desc=self.description,
            disable=not self.enabled,
            unit="epoch",
        )

    def on_epoch_end(self, engine: Engine, record: dict[str, Any]) -> None:
        val = record.get("val_accuracy")
        self._bar.set_postfix(
            loss=f"{record['loss']:.3f}", val="-" if val is None else f"{val:.3f}"
        )
        self._bar.update(1)

    def on_fit_exit(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

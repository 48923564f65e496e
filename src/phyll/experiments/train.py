"""One training run: build data, systems, network and rule from a config; train; measure; save.

Every epoch: one pass over the training split with the rule (counted as *train* costs), then
accuracy on the validation split, the test split and a fixed subset of the training split
(counted as *eval* costs). The weights of the epoch with the best validation accuracy are the
run's result (the local rules overfit late). Costs come from :mod:`phyll.accounting`.

Nothing is lost: the full training state (weights, optimizers, the rule's and the shuffling
RNGs, the systems' noise RNGs and counters, the costs, the position inside the epoch) is
checkpointed atomically every ``checkpoint_every`` steps, at every epoch end and, at the next
step boundary, on Ctrl-C/SIGTERM (a second signal aborts at once; the last checkpoint stays).
:func:`resume` continues from it and reaches the same final weights as an uninterrupted run,
without repeating the physical queries already made. A physical system that fails (NaN/inf,
an unreachable remote device) stops training with a :class:`TrainingError` naming the last
checkpoint to resume from. ``metrics.jsonl`` is only ever appended to.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from phyll.accounting import Costs, Meter
from phyll.data import Dataset, load_dataset, stratified_split
from phyll.experiments.config import TrainConfig
from phyll.experiments.run_folder import RunFolder
from phyll.learning import LearningRule, make_rule, rule_class
from phyll.network import BlockMeasurementError, PhysicalNetwork, build_network
from phyll.plotting import plot_learning_curve
from phyll.systems import PhysicalSystem, PhysicalSystemError, make_system
from phyll.systems.recording import SystemRecorder, record_systems


class TrainingError(RuntimeError):
    """Training stopped; the message names where and what was kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Stopped on Ctrl-C/SIGTERM after checkpointing at a step boundary."""


@dataclass
class Experiment:
    """The built pieces of a run."""

    config: TrainConfig
    dataset: Dataset
    network: PhysicalNetwork
    rule: LearningRule
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def systems(self) -> list[PhysicalSystem]:
        return self.network.systems


SystemFactory = Callable[[int, int, int], PhysicalSystem]


def build_experiment(
    config: TrainConfig, system_factory: SystemFactory | None = None
) -> Experiment:
    """Data, one physical system per block, the network and the rule, all seeded.

    ``system_factory(block_index, n_inputs, n_outputs)`` replaces the registry (to plug in a
    user's own system); by default ``make_system(config.system, ...)`` is used.
    """
    torch.manual_seed(config.seed)
    dataset = load_dataset(config.dataset, seed=config.seed, data_path=config.data_path)
    device = torch.device(config.device)
    if system_factory is None:

        def system_factory(i: int, n_in: int, n_out: int) -> PhysicalSystem:
            return make_system(
                config.system,
                n_in,
                n_out,
                seed=1000 * config.seed + i,
                device=device,
                **config.system_params,
            )

    n_labels = dataset.n_classes if rule_class(config.rule).embeds_labels else 0
    n_in = dataset.n_features + n_labels
    systems = []
    for i in range(config.blocks):
        systems.append(system_factory(i, n_in, config.measurements))
        n_in = config.width
    network = build_network(
        systems,
        dataset.n_features,
        n_labels,
        config.width,
        skip=config.skip,
        use_physics=config.use_physics,
        conditioning=config.conditioning,  # type: ignore[arg-type]
        activation=config.activation,  # type: ignore[arg-type]
    ).to(device)
    rule = make_rule(
        config.rule,
        network,
        seed=config.seed,
        n_classes=dataset.n_classes,
        lr=config.lr,
        **config.rule_params,
    )

    x, y = dataset.x_train, dataset.y_train
    if config.val_fraction > 0:
        train_idx, val_idx = stratified_split(y.numpy(), config.val_fraction, config.seed)
    else:
        train_idx, val_idx = torch.arange(len(y)).numpy(), torch.arange(0).numpy()
    return Experiment(
        config,
        dataset,
        network,
        rule,
        x[train_idx].to(device),
        y[train_idx].to(device),
        x[val_idx].to(device),
        y[val_idx].to(device),
    )


def accuracy(
    rule: LearningRule, x: torch.Tensor, y: torch.Tensor, batch: int = 512
) -> float | None:
    """Fraction of correct predictions (None for an empty split)."""
    if len(y) == 0:
        return None
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((rule.predict(x[i : i + batch]) == y[i : i + batch]).sum())
    return correct / len(y)


class Trainer:
    """Runs the epochs of an :class:`Experiment`, writing a :class:`RunFolder` if given."""

    def __init__(self, experiment: Experiment, folder: RunFolder | None = None) -> None:
        self.exp = experiment
        self.folder = folder
        self.train_meter = Meter()
        self.eval_meter = Meter()
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.global_step = 0
        self.best: dict[str, Any] = {"epoch": 0, "val_accuracy": -1.0, "record": None}
        self.shuffle = torch.Generator().manual_seed(experiment.config.seed + 17)
        n_sub = min(experiment.config.train_eval_samples, len(experiment.y_train))
        self.train_subset = torch.randperm(len(experiment.y_train), generator=self.shuffle)[:n_sub]
        # the epoch in progress: its sample order, steps done and their losses
        self._progress: dict[str, Any] | None = None
        self._stop_signal: str | None = None
        self._last_checkpoint: tuple[int, int] | None = None
        self.recorders: list[SystemRecorder] = []
        if experiment.config.record:
            if folder is None:
                raise ValueError("recording (record=True) needs a run folder")
            self.recorders = record_systems(experiment.systems, folder.records_dir)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.exp.config.to_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "epoch_progress": self._progress,
            "network": self.exp.network.state_dict(),
            "rule": self.exp.rule.state_dict(),
            "systems": [s.state_dict() for s in self.exp.systems],
            "best": self.best,
            "history": self.history,
            "shuffle": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "costs": {"train": self.train_meter.costs, "eval": self.eval_meter.costs},
            "records": [r.recorded for r in self.recorders],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.global_step = state.get("global_step", 0)
        self._progress = state.get("epoch_progress")
        self.exp.network.load_state_dict(state["network"])
        self.exp.rule.load_state_dict(state["rule"])
        for system, s in zip(self.exp.systems, state["systems"], strict=True):
            system.load_state_dict(s)
        self.best = state["best"]
        self.history = state["history"]
        self.shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        self.train_meter.costs = state["costs"]["train"]
        self.eval_meter.costs = state["costs"]["eval"]
        for recorder, n in zip(self.recorders, state.get("records") or [], strict=False):
            recorder.truncate(n)  # pairs recorded after the checkpoint will be measured again

    def checkpoint(self) -> None:
        """Write the training state atomically (records first, so they cover it)."""
        if self.folder is not None:
            for recorder in self.recorders:
                recorder.flush()
            self.folder.save(self.folder.checkpoint_file, self.state_dict())
            self._last_checkpoint = (self.epoch, self.global_step)

    # ------------------------------------------------------------------ loop
    def train_epoch(self) -> float:
        """One pass over the training split (or the rest of an interrupted one): mean loss.

        Checkpoints every ``checkpoint_every`` steps; on a signal, checkpoints at the next step
        boundary and raises :class:`TrainingInterrupted`.
        """
        exp, cfg = self.exp, self.exp.config
        if self._progress is None:
            order = torch.randperm(len(exp.y_train), generator=self.shuffle)
            self._progress = {"order": order, "step": 0, "losses": []}
        progress = self._progress
        order = progress["order"].to(exp.y_train.device)
        n_steps = math.ceil(len(order) / cfg.batch_size)
        while progress["step"] < n_steps:
            with self.train_meter.measure():  # checkpoint writing is not training cost
                while progress["step"] < n_steps:
                    idx = order[progress["step"] * cfg.batch_size :][: cfg.batch_size]
                    progress["losses"].append(
                        exp.rule.train_step(exp.x_train[idx], exp.y_train[idx])
                    )
                    progress["step"] += 1
                    self.global_step += 1
                    every = cfg.checkpoint_every
                    if self._stop_signal or (every and self.global_step % every == 0):
                        break
            if self._stop_signal:
                self.checkpoint()
                raise TrainingInterrupted(self._interrupted_message())
            if progress["step"] < n_steps:
                self.checkpoint()
        self._progress = None
        return sum(progress["losses"]) / len(progress["losses"])

    def evaluate(self) -> dict[str, float | None]:
        exp = self.exp
        with self.eval_meter.measure():
            return {
                "train_accuracy": accuracy(
                    exp.rule, exp.x_train[self.train_subset], exp.y_train[self.train_subset]
                ),
                "val_accuracy": accuracy(exp.rule, exp.x_val, exp.y_val),
                "test_accuracy": accuracy(
                    exp.rule,
                    exp.dataset.x_test.to(exp.x_train.device),
                    exp.dataset.y_test.to(exp.x_train.device),
                ),
            }

    def run(self, progress: bool = True) -> dict[str, Any]:
        """Train the remaining epochs; return the summary (also written to the folder)."""
        cfg = self.exp.config
        self._stop_signal = None
        if self.epoch == 0 and self.global_step == 0 and self.folder is not None:
            self.folder.write_json(self.folder.config_file, self._config_record())
            self.checkpoint()
        bar = tqdm(
            range(self.epoch, cfg.epochs),
            initial=self.epoch,
            total=cfg.epochs,
            desc=f"{cfg.rule} on {cfg.dataset}/{cfg.system}",
            disable=not progress,
            unit="epoch",
        )
        with self._signals_caught():
            for epoch in bar:
                try:
                    loss = self.train_epoch()
                    scores = self.evaluate()
                except PhysicalSystemError as exc:
                    raise TrainingError(self._failure_message(epoch, exc)) from exc
                self.epoch = epoch + 1
                record = self._record(loss, scores)
                self.history.append(record)
                # ties go to the later (longer trained) epoch; without validation, the last epoch
                selection = scores["val_accuracy"] if scores["val_accuracy"] is not None else 0.0
                if selection >= self.best["val_accuracy"]:
                    self.best = {
                        "epoch": self.epoch,
                        "val_accuracy": selection,
                        "record": record,
                        "network": {k: v.clone() for k, v in self.exp.network.state_dict().items()},
                    }
                self.checkpoint()  # before the metrics line: a resume appends what is missing
                if self.folder is not None:
                    self.folder.append_metrics(record)
                bar.set_postfix(
                    loss=f"{loss:.3f}",
                    val=_fmt(scores["val_accuracy"]),
                    test=_fmt(scores["test_accuracy"]),
                )
                if self._stop_signal:
                    raise TrainingInterrupted(self._interrupted_message())
        bar.close()
        return self.finish()

    def sync_metrics(self) -> None:
        """Append the epochs the checkpoint holds but ``metrics.jsonl`` lacks (a crash between
        the two writes); never rewrites a line."""
        if self.folder is None:
            return
        self.folder.cut_torn_metrics_line()
        done = {m.get("epoch") for m in self.folder.read_metrics()}
        for record in self.history:
            if record["epoch"] not in done:
                self.folder.append_metrics(record)

    @contextlib.contextmanager
    def _signals_caught(self) -> Iterator[None]:
        """SIGINT/SIGTERM: stop at the next step boundary with a checkpoint; twice: at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            del frame
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            print(
                f"phyll: {self._stop_signal}: stopping after this step with a checkpoint "
                "(send it again to abort now)",
                file=sys.stderr,
                flush=True,
            )

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _interrupted_message(self) -> str:
        where = f"epoch {self.epoch + 1}, step {self.global_step}"
        if self.folder is None:
            return f"training interrupted ({self._stop_signal}) in {where}"
        return (
            f"training interrupted ({self._stop_signal}) in {where}; checkpoint kept: "
            f"continue with `phyll train --resume {self.folder.path}`"
        )

    def _failure_message(self, epoch: int, exc: PhysicalSystemError) -> str:
        if self.folder is None:
            kept = ""
        elif self._last_checkpoint is None:
            kept = "; no checkpoint was written"
        else:
            e, step = self._last_checkpoint
            kept = (
                f"; last good checkpoint: {self.folder.checkpoint_file} (epoch {e}, step {step}): "
                f"continue with `phyll train --resume {self.folder.path}`"
            )
        if isinstance(exc, BlockMeasurementError):
            return (
                f"training stopped in epoch {epoch + 1}: the physical system of block "
                f"{exc.block_index} returned invalid measurements ({exc}){kept}"
            )
        return f"training stopped in epoch {epoch + 1}: {exc}{kept}"

    def finish(self) -> dict[str, Any]:
        """Restore the selected weights; write summary, model and figure."""
        for recorder in self.recorders:
            recorder.flush()
        self.exp.network.load_state_dict(self.best["network"])
        summary = self.summary()
        if self.folder is not None:
            self.folder.write_json(self.folder.summary_file, summary)
            self.folder.save(
                self.folder.model_file,
                {
                    "config": self.exp.config.to_dict(),
                    "network": self.best["network"],
                    "summary": summary,
                },
            )
            plot_learning_curve(
                self.history,
                self.folder.curve_file,
                f"{self.exp.config.rule} · {self.exp.config.dataset} · {self.exp.config.system}",
            )
        return summary

    # ------------------------------------------------------------------ records
    def _config_record(self) -> dict[str, Any]:
        exp = self.exp
        return {
            **exp.config.to_dict(),
            "resolved": {
                "dataset": exp.dataset.describe(),
                "systems": [s.describe() for s in exp.systems],
                "rule": exp.rule.describe(),
                "n_train": len(exp.y_train),
                "n_val": len(exp.y_val),
            },
        }

    def _record(self, loss: float, scores: dict[str, float | None]) -> dict[str, Any]:
        train, evals = self.train_meter.costs, self.eval_meter.costs
        previous = self.history[-1] if self.history else None
        record: dict[str, Any] = {"epoch": self.epoch, "loss": loss, **scores, "time": time.time()}
        record.update(train.as_dict("train_"))
        record.update(evals.as_dict("eval_"))
        if previous is not None:  # per-epoch training costs
            record["epoch_physical_queries"] = (
                train.physical_queries - previous["train_physical_queries"]
            )
            record["epoch_digital_flops"] = train.digital_flops - previous["train_digital_flops"]
            record["epoch_wall_time_s"] = train.wall_time_s - previous["train_wall_time_s"]
        else:
            record["epoch_physical_queries"] = train.physical_queries
            record["epoch_digital_flops"] = train.digital_flops
            record["epoch_wall_time_s"] = train.wall_time_s
        return record

    def summary(self) -> dict[str, Any]:
        cfg, exp = self.exp.config, self.exp
        best = self.best["record"] or {}
        train, evals = self.train_meter.costs, self.eval_meter.costs
        total: Costs = train + evals
        return {
            "test_accuracy": best.get("test_accuracy"),
            "train_accuracy": best.get("train_accuracy"),
            "val_accuracy": best.get("val_accuracy"),
            "best_epoch": self.best["epoch"],
            "final_test_accuracy": self.history[-1]["test_accuracy"] if self.history else None,
            "chance_accuracy": 1.0 / exp.dataset.n_classes,
            **total.as_dict(),
            **train.as_dict("train_"),
            "queries_per_system": [s.queries for s in exp.systems],
            "epochs": self.epoch,
            "dataset": cfg.dataset,
            "system": cfg.system,
            "rule": cfg.rule,
            "seed": cfg.seed,
            "blocks": cfg.blocks,
            "width": cfg.width,
            "use_physics": cfg.use_physics,
            "prediction": getattr(exp.rule, "prediction", None),
            "model_free": exp.rule.model_free,
            "rule_details": exp.rule.describe(),  # after training (e.g. PAT's twin fit error)
        }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    system_factory: SystemFactory | None = None,
) -> dict[str, Any]:
    """Train one run from ``config``; write the run folder ``out`` if given; return the summary."""
    folder = RunFolder(out) if out is not None else None
    if folder is not None:
        folder.create(overwrite=overwrite)
    experiment = build_experiment(config, system_factory)
    return Trainer(experiment, folder).run(progress=progress)


def resume(
    out: str | Path, *, progress: bool = True, system_factory: SystemFactory | None = None
) -> dict[str, Any]:
    """Continue the run in ``out`` from its last checkpoint (same config, same seed).

    ``system_factory`` rebuilds user-supplied systems, as given to :func:`train`.
    """
    folder = RunFolder(out)
    state = folder.load(folder.checkpoint_file)
    config = TrainConfig.from_dict(state["config"])
    trainer = Trainer(build_experiment(config, system_factory), folder)
    trainer.load_state_dict(state)
    trainer.sync_metrics()
    return trainer.run(progress=progress)

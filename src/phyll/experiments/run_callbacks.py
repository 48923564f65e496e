"""The run folder as engine callbacks: configuration, checkpoints, metrics, summary, model, figure.

:class:`RunFolderWriter` keeps a :class:`~phyll.experiments.run_folder.RunFolder` in step with
the engine:

* ``config.json`` when the run starts;
* ``checkpoint.pt`` (the engine's full state, atomically) after setup, every
  ``checkpoint_every`` training steps, at every epoch end — *before* that epoch's metrics line,
  so a crash between the two is repaired on resume by appending what is missing — and when a
  stop is requested (Ctrl-C/SIGTERM);
* one ``metrics.jsonl`` line per epoch (only ever appended);
* ``summary.json``, ``model.pt`` (the selected weights) and ``learning_curve.png`` at the end.

With ``--overwrite`` the run is written in a staging folder until its first checkpoint, which
swaps it in for the old run (:meth:`~phyll.experiments.run_folder.RunFolder.commit`).

Recorded drive/measurement pairs (``--record``) are flushed before every checkpoint, so the
records always cover it; on resume, pairs recorded after the checkpoint are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from phyll.engine import Callback, Engine
from phyll.experiments.run_folder import RunFolder
from phyll.plotting import plot_learning_curve
from phyll.systems.recording import SystemRecorder


class SummaryInfo(Callback):
    """Adds descriptive keys (dataset, rule, seed, ...) to the summary, asked at the end."""

    def __init__(self, info: Callable[[], dict[str, Any]]) -> None:
        self.info = info

    def on_fit_end(self, engine: Engine, summary: dict[str, Any]) -> None:
        summary.update(self.info())


class RunFolderWriter(Callback):
    """Writes the run folder as the engine trains (see module docstring).

    Args:
        folder: the run folder (created).
        config: the run's configuration (``TrainConfig.to_dict()``), in every checkpoint.
        config_record: what ``config.json`` holds (the configuration and what it resolved to).
        checkpoint_every: checkpoint every this many training steps (0: epoch ends only).
        recorders: the systems' drive/measurement recorders, if any.
        title: the learning curve's title.
    """

    key = "run_folder"

    def __init__(
        self,
        folder: RunFolder,
        config: dict[str, Any],
        config_record: dict[str, Any],
        checkpoint_every: int,
        recorders: list[SystemRecorder] | None = None,
        title: str = "",
    ) -> None:
        self.folder, self.config, self.config_record = folder, config, config_record
        self.checkpoint_every = checkpoint_every
        self.recorders = recorders or []
        self.title = title
        #: (epoch, global step) of the last checkpoint written, None before the first
        self.last_checkpoint: tuple[int, int] | None = None

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, engine: Engine) -> None:
        if engine.epoch == 0 and engine.global_step == 0:
            self.folder.write_json(self.folder.config_file, self.config_record)
        else:
            self.sync_metrics(engine)

    def on_epoch_start(self, engine: Engine) -> None:
        if engine.epoch == 0 and engine.global_step == 0 and engine.progress is None:
            self.checkpoint(engine)  # after setup: a resume never repeats it

    def on_step_end(self, engine: Engine) -> None:
        every = self.checkpoint_every
        mid_epoch = engine.progress is not None and engine.progress["step"] < engine.steps_per_epoch
        if every and engine.global_step % every == 0 and mid_epoch:
            self.checkpoint(engine)

    def on_epoch_end(self, engine: Engine, record: dict[str, Any]) -> None:
        self.checkpoint(engine)
        self.folder.append_metrics(record)

    def on_interrupt(self, engine: Engine) -> None:
        self.checkpoint(engine)

    def on_fit_end(self, engine: Engine, summary: dict[str, Any]) -> None:
        self.checkpoint(engine)
        plot_learning_curve(
            engine.history,
            self.folder.curve_file,
            self.title,
            chance=summary.get("chance_accuracy"),
            best_epoch=summary.get("best_epoch"),
        )
        engine.refresh_clocks(summary)  # the checkpoint and the figure are part of the run
        self.folder.save(
            self.folder.model_file,
            {"config": self.config, "model": engine.model.state_dict(), "summary": summary},
        )
        self.folder.write_json(self.folder.summary_file, summary)

    def state_dict(self) -> dict[str, Any]:
        return {"records": [r.recorded for r in self.recorders]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for recorder, n in zip(self.recorders, state["records"], strict=False):
            recorder.truncate(n)  # pairs recorded after the checkpoint will be measured again

    # ------------------------------------------------------------------ work
    def checkpoint(self, engine: Engine) -> None:
        """Write the engine's state atomically (records first, so they cover it)."""
        for recorder in self.recorders:
            recorder.flush()
        self.folder.save(
            self.folder.checkpoint_file, {"config": self.config, **engine.state_dict()}
        )
        self.last_checkpoint = (engine.epoch, engine.global_step)
        if self.folder.staging is not None:  # --overwrite: the new run now replaces the old
            self.folder.commit()
            for recorder in self.recorders:
                recorder.folder = self.folder.records_dir / recorder.folder.name

    def sync_metrics(self, engine: Engine) -> None:
        """Append the epochs the checkpoint holds but ``metrics.jsonl`` lacks (a crash between
        the two writes); never rewrites a complete line."""
        self.folder.cut_torn_metrics_line()
        done = {m.get("epoch") for m in self.folder.read_metrics()}
        for record in engine.history:
            if record["epoch"] not in done:
                self.folder.append_metrics(record)

"""Experiment tracking (``--track mlflow``): a run's configuration, per-epoch metrics and files
logged to an MLflow tracking server or store, as an engine callback beside the run folder.

:class:`MlflowTracker` opens one MLflow run per phyll run when training starts, logs the
configuration as parameters (nested keys flattened: ``rule_params.lr``), every epoch's numeric
metrics at step = epoch, the summary's numbers as ``summary.KEY``, and the run folder's
``config.json``, ``metrics.jsonl``, ``summary.json`` and ``learning_curve.png`` as artifacts. Its
MLflow run id is part of the checkpoint, so a resumed phyll run continues the same MLflow run.
MLflow is the optional extra ``.[mlflow]`` (``mlflow-skinny``), imported only when tracking.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from phyll.engine import Callback, Engine
from phyll.experiments.extras import require

#: what ``--track`` accepts
TRACKERS = ("mlflow",)
#: the run-folder files logged as artifacts (those that exist)
ARTIFACTS = ("config.json", "metrics.jsonl", "summary.json", "learning_curve.png")
#: per-epoch record keys that are not metrics
NOT_METRICS = {"epoch", "time"}


@dataclass(frozen=True)
class Tracking:
    """Where runs are tracked: ``kind`` (``"mlflow"``), the tracking ``uri`` and the MLflow
    ``experiment`` name. :meth:`resolved` fixes the default and relative paths, so a process
    started elsewhere (a sweep's trial) logs to the same place."""

    kind: str = "mlflow"
    uri: str | None = None
    experiment: str = "phyll"

    def resolved(self) -> Tracking:
        """The tracking URI made absolute: ``--track-uri``, else ``$MLFLOW_TRACKING_URI``,
        else the file store ``./mlruns``."""
        uri = self.uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
        if not urlparse(uri).scheme:
            uri = Path(uri).absolute().as_uri()
        return Tracking(self.kind, uri, self.experiment)

    def callbacks(self, folder: Path | None, config: dict[str, Any]) -> list[Callback]:
        """The engine callback that tracks one run writing ``folder``."""
        return [MlflowTracker(self.resolved(), folder, config)]


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"rule_params": {"lr": 0.01}}`` → ``{"rule_params.lr": "0.01"}`` (lists as JSON)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return flat


def numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers (not booleans) among ``values``, as MLflow metrics."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        and k not in NOT_METRICS
    }  # fmt: skip


class MlflowTracker(Callback):
    """Logs one phyll run to MLflow (see module docstring)."""

    key = "mlflow"

    def __init__(self, tracking: Tracking, folder: Path | None, config: dict[str, Any]) -> None:
        if tracking.uri and urlparse(tracking.uri).scheme == "file":
            # MLflow 3 keeps its file store in maintenance mode behind this opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client_module = require("mlflow.tracking", "mlflow", "--track mlflow")
        self.entities = require("mlflow.entities", "mlflow", "--track mlflow")
        self.client = client_module.MlflowClient(tracking.uri)
        self.tracking, self.folder, self.config = tracking, folder, config
        self.run_id: str | None = None
        self.logged_epoch = 0
        #: the MLflow status the run ends with: FAILED unless interrupted or finished
        self.outcome = "FAILED"

    def on_fit_start(self, engine: Engine) -> None:
        if self.run_id is None:
            found = self.client.get_experiment_by_name(self.tracking.experiment)
            experiment = found.experiment_id if found else self.client.create_experiment(
                self.tracking.experiment
            )  # fmt: skip
            tags = {"phyll.run_dir": str(self.folder.absolute())} if self.folder else {}
            name = self.folder.name if self.folder else None
            run = self.client.create_run(experiment, run_name=name, tags=tags)
            self.run_id = run.info.run_id
            params = [self.entities.Param(k, v) for k, v in flatten(self.config).items()]
            self.client.log_batch(self.run_id, params=params)
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        for record in engine.history:  # epochs the checkpoint holds but MLflow may lack
            if record["epoch"] > self.logged_epoch:
                self._log_epoch(record)

    def on_epoch_end(self, engine: Engine, record: dict[str, Any]) -> None:
        self._log_epoch(record)

    def on_interrupt(self, engine: Engine) -> None:
        self.outcome = "KILLED"

    def on_fit_end(self, engine: Engine, summary: dict[str, Any]) -> None:
        self._log(numbers(summary, "summary."), step=engine.epoch)
        for name in ARTIFACTS if self.folder else ():
            path = self.folder / name
            if path.exists():
                self.client.log_artifact(self.run_id, str(path))
        self.outcome = "FINISHED"

    def on_fit_exit(self, engine: Engine) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, self.outcome)

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "logged_epoch": self.logged_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id, self.logged_epoch = state["run_id"], state["logged_epoch"]

    def _log_epoch(self, record: dict[str, Any]) -> None:
        self._log(numbers(record), step=record["epoch"])
        self.logged_epoch = record["epoch"]

    def _log(self, metrics: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        batch = [self.entities.Metric(k, v, stamp, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

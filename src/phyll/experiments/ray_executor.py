"""Ray as an executor of the runner (:mod:`phyll.experiments.runner`): every planned run is a
Ray Tune trial, on local cores or a Ray cluster (``address``).

Each trial is :func:`~phyll.experiments.runner.run_one`, the same "train, keep or resume one
run folder" as the local executor; Ray only decides where and when it runs. The run folders
stay the source of truth (the runner reads them afterwards), Ray's own records go to
``OUT/ray``. A searcher (Optuna) may propose trials of its own: ``make_spec`` turns a trial's
parameters into its :class:`~phyll.experiments.protocol.RunSpec`. Ray is the optional extra
``.[ray]``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from phyll.errors import UserError
from phyll.experiments.extras import require
from phyll.experiments.protocol import ExperimentKind, RunResult, RunSpec
from phyll.experiments.runner import result_of, run_one
from phyll.experiments.tracking import Tracking

#: the object store of a local Ray instance: trials pass only small results through it
OBJECT_STORE_BYTES = 100 * 2**20
#: Ray Tune's console reporting and per-trial result loggers (the run folders hold it all)
QUIET_TUNE = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
#: summary keys a trial reports to Ray Tune (a searcher learns from ``val_accuracy``)
SCORES = ("test_accuracy", "val_accuracy", "best_epoch", "epochs", "chance_accuracy")
#: a searcher's trial → its run: (job, trial name, the trial's Tune config) → RunSpec
MakeSpec = Callable[[dict[str, Any], str, dict[str, Any]], RunSpec]


class RayError(UserError):
    """The runs cannot be placed on Ray (e.g. no Ray cluster at ``--address``)."""


@dataclass(frozen=True)
class Resources:
    """Where and how trials run: the Ray ``address`` (None: a local instance), CPUs and GPUs
    per trial, and at most ``max_concurrent`` trials at once (None: as many as fit)."""

    address: str | None = None
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None


def start_ray(ray: Any, address: str | None) -> None:
    """A local Ray instance (``address`` None), or a connection to the cluster at ``address``."""
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        ray.init(object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, **quiet)
    else:
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as exc:
            reason = " ".join(str(exc).split())[:300]
            raise RayError(f"cannot connect to the Ray cluster at {address}: {reason}") from None


def check_resources(available: dict[str, float], resources: Resources) -> None:
    """Refuse a trial that cannot fit on the cluster (Tune would wait for it forever)."""
    for key, wanted in (("CPU", resources.cpus_per_trial), ("GPU", resources.gpus_per_trial)):
        if wanted > available.get(key, 0):
            raise RayError(
                f"each trial asks for {wanted:g} {key}s but the Ray cluster has "
                f"{available.get(key, 0):g}: lower --{key.lower()}s-per-trial"
            )


def trial_of(spec: RunSpec) -> str:
    """A run's trial name: its folder's name (unique within an experiment)."""
    return Path(spec.folder).name


def ray_trial(config: dict[str, Any], job: dict[str, Any]) -> None:
    """The Ray Tune trainable: run one planned run (``config["trial"]``) or one a searcher
    proposed (named by Tune), and report its scores. A :class:`UserError` (a system that
    fails, a bad value) is reported as the trial's error; anything else is a bug and fails
    the trial with its traceback."""
    tune = require("ray.tune", "ray", "Ray trials")
    torch.set_num_threads(job["cpus_per_trial"])
    if Path(job["cwd"]).is_dir():  # relative data paths mean what they meant to the driver
        os.chdir(job["cwd"])
    trial = config.get("trial") or tune.get_context().get_trial_name()
    spec = job["specs"].get(trial) or job["make_spec"](job, trial, config)
    out = Path(job["out"])
    tracking = Tracking(**job["tracking"]) if job["tracking"] else None
    chain = tracking.callbacks(out / spec.folder, spec.config.to_dict()) if tracking else []
    try:
        summary = run_one(spec, out, overwrite=job["overwrite"], callbacks=chain)
    except UserError as exc:
        message = " ".join(str(exc).split())
        tune.report({"trial": trial, "status": "error", "error": message, "val_accuracy": math.nan})
        return
    scores = {k: summary.get(k) for k in SCORES}
    if scores["val_accuracy"] is None:
        scores["val_accuracy"] = math.nan  # a searcher needs a number
    tune.report({"trial": trial, "status": "done", **scores})


class RayExecutor:
    """The runner's executor on Ray Tune: starts a local Ray instance unless Ray is already
    initialised or ``resources.address`` names a cluster (whose nodes must all see OUT)."""

    def __init__(
        self,
        resources: Resources = Resources(),
        tracking: Tracking | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.resources, self.tracking, self.extra = resources, tracking, extra or {}

    def run(
        self, kind: ExperimentKind, config: Any, specs: list[RunSpec], out: Path, *,
        progress: bool, overwrite: bool,
    ) -> list[RunResult]:  # fmt: skip
        """Every run of ``specs`` not finished yet (all with ``overwrite``), as Tune trials;
        then :meth:`more` (nothing here: a searcher's executor proposes its trials there)."""
        out = out.absolute()  # the trials' processes (and a cluster's nodes) may start elsewhere
        ray = require("ray", "ray", f"phyll {kind.name} on Ray")
        tune = require("ray.tune", "ray", f"phyll {kind.name} on Ray")
        own_ray = not ray.is_initialized()
        if own_ray:
            start_ray(ray, self.resources.address)
        try:
            check_resources(ray.cluster_resources(), self.resources)
            todo = [s for s in specs if overwrite or not (out / s.folder / "summary.json").exists()]
            errors: dict[str, str] = {}
            if todo:
                space = {"trial": tune.grid_search([trial_of(s) for s in todo])}
                errors.update(self.fit(tune, specs, out, space, overwrite=overwrite)[0])
            added, more_errors = self.more(tune, config, specs, out)
            errors.update(more_errors)
        finally:
            if own_ray:
                ray.shutdown()
        return [result_of(s, out, errors.get(trial_of(s))) for s in [*specs, *added]]

    def more(
        self, tune: Any, config: Any, specs: list[RunSpec], out: Path
    ) -> tuple[list[RunSpec], dict[str, str]]:
        """Runs beyond the plan and their errors: none (a searcher's executor adds some)."""
        return [], {}

    def fit(
        self,
        tune: Any,
        specs: list[RunSpec],
        out: Path,
        param_space: dict[str, Any],
        *,
        overwrite: bool = False,
        search_alg: Any = None,
        num_samples: int = 1,
        make_spec: MakeSpec | None = None,
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """One ``Tuner.fit``: the errors of the trials that failed, by trial name, and the Tune
        configs of the trials a searcher proposed (``trial-NNNN``, numbered after the
        planned ones), by trial name."""
        for key, value in QUIET_TUNE.items():
            os.environ.setdefault(key, value)
        names: dict[str, str] = {}  # Tune asks for a trial's name and its folder's: one name
        numbers = itertools.count(len(specs))

        def name(trial: Any) -> str:
            if trial.trial_id not in names:
                names[trial.trial_id] = trial.config.get("trial") or f"trial-{next(numbers):04d}"
            return names[trial.trial_id]

        job = {
            "specs": {trial_of(s): s for s in specs},
            "make_spec": make_spec,
            "extra": self.extra,
            "out": str(out),
            "cwd": os.getcwd(),
            "cpus_per_trial": self.resources.cpus_per_trial,
            "tracking": asdict(self.tracking) if self.tracking else None,
            "overwrite": overwrite,
        }
        trainable = tune.with_resources(
            tune.with_parameters(ray_trial, job=job),
            {"cpu": self.resources.cpus_per_trial, "gpu": self.resources.gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=search_alg,
                metric="val_accuracy" if search_alg else None,
                mode="max" if search_alg else None,
                num_samples=num_samples,
                max_concurrent_trials=self.resources.max_concurrent,
                reuse_actors=True,  # a trial process imports torch and phyll once, not per trial
                trial_name_creator=name,
                trial_dirname_creator=name,
            ),
            run_config=tune.RunConfig(
                storage_path=str(out / "ray"), name=time.strftime("fit-%Y%m%d-%H%M%S"), verbose=0
            ),
        )
        errors, proposed = {}, {}
        known = set(job["specs"])
        for result in tuner.fit():
            metrics = result.metrics or {}
            trial = metrics.get("trial") or Path(result.path).name
            if trial not in known:
                proposed[trial] = dict(result.config)
            if metrics.get("status") == "error":
                errors[trial] = metrics["error"]
            elif result.error is not None:
                lines = str(result.error).strip().splitlines()
                errors[trial] = lines[-1] if lines else type(result.error).__name__
        return errors, proposed

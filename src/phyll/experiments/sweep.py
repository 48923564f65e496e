"""``phyll sweep``: a hyperparameter sweep of ordinary phyll runs, scheduled by Ray Tune.

Every trial is one run of :func:`phyll.experiments.train.train` (or ``resume``) written to its
own run folder ``OUT/trials/trial-NNNN``; Ray Tune only decides where and when each trial runs
(local cores by default, or a Ray cluster with ``--address``) and, with ``--searcher optuna``,
which parameters the next trial tries. The run folders are the source of truth: ``sweep.json``,
``sweep_table.md`` and ``sweep.png`` (:mod:`phyll.experiments.sweep_outputs`) are rebuilt from
their summaries, and Ray's own records stay in ``OUT/ray``.

Searchers: ``grid`` (every combination of the ``--param`` grids), ``random`` (the grids times
``--samples`` draws of the distributions, drawn up front with Ray Tune's samplers and a fixed
seed) and ``optuna`` (Ray Tune's ``OptunaSearch`` proposes ``--samples`` trials; grids become
categorical choices). Grid and random trials are planned before any runs, so ``--resume OUT``
reruns exactly the unfinished ones; Optuna trials are recorded as they finish, and a resumed
Optuna sweep first resumes its interrupted trials, then warm-starts the study with the finished
ones and proposes the rest. Ray and Optuna are the optional extra ``.[ray]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phyll.errors import ConfigError, UserError
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    add_seeds_arguments,
    add_track_arguments,
    add_trust_argument,
    config_from_args,
    named_choice,
    positive_int,
    seeds_of,
    tracking_of,
    trust_of,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.extras import require
from phyll.experiments.ownership import SWEEP, claim
from phyll.experiments.pipeline import sequential_if_needed
from phyll.experiments.run_folder import RunFolder, RunFolderError, output_folder
from phyll.experiments.sweep_outputs import (
    SCORES,
    plot_sweep,
    sweep_record,
    trial_entry,
    write_json,
    write_table,
)
from phyll.experiments.sweep_space import Axis, SpaceError, apply, grid_points, parse_space
from phyll.experiments.sweep_space import values_of as recorded_values
from phyll.experiments.tracking import Tracking
from phyll.experiments.train import check_configs, train_or_resume
from phyll.registry import RULES, check_recorded_names, needs_trust
from phyll.usercode import Trust

CONFIG_FILE = SWEEP.marker
SEARCHERS = ("grid", "random", "optuna")
#: the object store of a local Ray instance: trials pass only small results through it
OBJECT_STORE_BYTES = 100 * 2**20
#: Ray Tune's console reporting and per-trial result loggers (the run folders hold it all)
QUIET_TUNE = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


class SweepError(UserError):
    """The sweep cannot run (e.g. no Ray cluster at ``--address``)."""


@dataclass
class Sweep:
    """What a sweep is (recorded in ``OUT/sweep_config.json``, so ``--resume`` needs nothing).

    ``params`` are the ``--param`` texts (seeds and rules included as ``seed=...``,
    ``rule=...``); ``plan`` lists every trial known so far as ``{"id", "params"}``: all of them
    up front for grid and random search, those Optuna proposed so far for ``optuna``.
    """

    base: TrainConfig
    params: list[str]
    searcher: str
    samples: int
    tracking: Tracking | None = None
    plan: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def axes(self) -> list[Axis]:
        return parse_space(self.params, self.base)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_config": self.base.to_dict(),
            "params": self.params,
            "searcher": self.searcher,
            "samples": self.samples,
            "tracking": dataclasses.asdict(self.tracking) if self.tracking else None,
            "plan": self.plan,
            "wall_time_s": self.wall_time_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sweep:
        tracking = Tracking(**data["tracking"]) if data.get("tracking") else None
        return cls(
            TrainConfig.from_dict(data["base_config"]),
            list(data["params"]),
            data["searcher"],
            int(data["samples"]),
            tracking,
            list(data["plan"]),
            float(data["wall_time_s"]),
        )


@dataclass(frozen=True)
class Resources:
    """Where and how trials run: the Ray ``address`` (None: a local instance), CPUs and GPUs
    per trial, and at most ``max_concurrent`` trials at once (None: as many as fit)."""

    address: str | None = None
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def check_sweep(sweep: Sweep) -> list[Axis]:
    """Parse the space and build the first trial's configuration, before anything is written."""
    if sweep.searcher not in SEARCHERS:
        raise ConfigError(f"unknown searcher {sweep.searcher!r}; choose from {SEARCHERS}")
    axes = sweep.axes
    if sweep.searcher == "grid" and any(a.distribution for a in axes):
        raise SpaceError("--searcher grid takes grids only (NAME=v1,v2,...): use random or optuna")
    if sweep.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {sweep.samples}")
    first = {a.name: a.grid[0] if a.grid else a.distribution[1] for a in axes}  # type: ignore[index]
    check_configs([apply(sweep.base, axes, first)])
    return axes


def plan_trials(axes: Sequence[Axis], samples: int, seed: int) -> list[dict[str, Any]]:
    """Grid and random search: every grid point, ``samples`` times, each with its own draws of
    the distributions (Ray Tune's samplers, seeded: the plan is reproducible)."""
    tune = require("ray.tune", "ray", "phyll sweep")
    rng = np.random.default_rng(seed)
    domains = {a.name: _domain(tune, a) for a in axes if a.distribution}
    plan = []
    for _ in range(samples):
        for point in grid_points(axes):
            drawn = {n: _plain(d.sample(random_state=rng)) for n, d in domains.items()}
            values = {a.name: a.value({**point, **drawn}[a.name]) for a in axes}
            plan.append({"id": trial_name(len(plan)), "params": values})
    return plan


def _domain(tune: Any, axis: Axis) -> Any:
    """The axis as a Ray Tune search domain (a grid becomes a categorical choice)."""
    if axis.grid is not None:
        return tune.choice(list(axis.grid))
    kind, low, high = axis.distribution  # type: ignore[misc]
    return {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint}[kind](
        low, high
    )


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python number JSON writes."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------- one trial
def run_trial(
    base: TrainConfig,
    axes: Sequence[Axis],
    params: dict[str, Any],
    folder: Path,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    """One trial as an ordinary phyll run in ``folder``: its summary if finished, else resumed
    from its checkpoint, else trained from the start."""
    config = sequential_if_needed(apply(base, axes, params))  # PAT with --pipeline ray
    chain = tracking.callbacks(folder, config.to_dict()) if tracking else []
    return train_or_resume(config, folder, progress=False, callbacks=chain)


def sweep_trial(config: dict[str, Any], job: dict[str, Any]) -> None:
    """The Ray Tune trainable: run one trial in its run folder, report its summary.

    ``config`` is ``{"trial": ID}`` for a planned trial, else the parameters Optuna proposed
    (the trial is then named by Tune's ``trial_name_creator``). A :class:`UserError` (a system
    that fails, a bad value) is reported as the trial's error; anything else is a bug and
    fails the trial with its traceback.
    """
    tune = require("ray.tune", "ray", "phyll sweep")
    torch.set_num_threads(job["cpus_per_trial"])
    if Path(job["cwd"]).is_dir():  # relative data paths mean what they meant to the sweep
        os.chdir(job["cwd"])
    base = TrainConfig.from_dict(job["base"])
    axes = parse_space(job["params"], base)
    trial = config.get("trial") or tune.get_context().get_trial_name()
    params = job["plan"].get(trial) or {a.name: a.value(config[a.name]) for a in axes}
    tracking = Tracking(**job["tracking"]) if job["tracking"] else None
    folder = Path(job["out"]) / "trials" / trial
    try:
        summary = run_trial(base, axes, params, folder, tracking)
    except UserError as exc:
        message = " ".join(str(exc).split())
        tune.report({"trial": trial, "status": "error", "error": message, "val_accuracy": math.nan})
        return
    scores = {k: summary.get(k) for k in SCORES}
    if scores["val_accuracy"] is None:
        scores["val_accuracy"] = math.nan  # Optuna needs a number
    tune.report({"trial": trial, "status": "done", **scores})


# ---------------------------------------------------------------------- the sweep
def run_sweep(
    sweep: Sweep,
    out: str | Path,
    resources: Resources = Resources(),
    *,
    overwrite: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Run (or, with ``reuse``, continue) ``sweep`` in ``out``; write and return ``sweep.json``.

    Finished trials are kept, interrupted ones resume from their checkpoints. Starts a local
    Ray instance unless Ray is already initialised or ``resources.address`` names a cluster
    (whose nodes must all see ``out``, e.g. on a shared filesystem).
    """
    axes = check_sweep(sweep)
    out = Path(out).absolute()
    claim(out, SWEEP)  # nothing of the user's is written over, --overwrite included
    if (out / CONFIG_FILE).exists() and not (overwrite or reuse):
        raise RunFolderError(f"{out} already holds a sweep: pass --overwrite or --resume")
    with output_folder(out):  # removed again if it was made here and the sweep cannot start
        ray = require("ray", "ray", "phyll sweep")
        tune = require("ray.tune", "ray", "phyll sweep")
        if sweep.searcher == "optuna":
            require("optuna", "ray", "phyll sweep --searcher optuna")
        if overwrite and (out / CONFIG_FILE).exists():
            for old in ("trials", "ray"):
                if (out / old).is_symlink():
                    (out / old).unlink()
                shutil.rmtree(out / old, ignore_errors=True)
        if not sweep.plan and sweep.searcher != "optuna":
            sweep.plan = plan_trials(axes, sweep.samples, sweep.base.seed)
        write_json(out / CONFIG_FILE, sweep.to_dict())  # the marker first: the folder is ours
        (out / "trials").mkdir(exist_ok=True)
        sweep.plan += _discovered(out, sweep, axes)
        write_json(out / CONFIG_FILE, sweep.to_dict())
        started = time.perf_counter()
        errors: dict[str, str] = {}
        own_ray = not ray.is_initialized()
        if own_ray:
            _start_ray(ray, resources.address)
        try:
            _check_resources(ray.cluster_resources(), resources)
            todo = [t["id"] for t in sweep.plan if not _finished(out, t["id"])]
            if todo:
                errors.update(_fit(tune, sweep, out, resources, {"trial": tune.grid_search(todo)}))
            if sweep.searcher == "optuna":
                errors.update(_fit_optuna(tune, sweep, axes, out, resources))
        finally:
            if own_ray:
                ray.shutdown()
            sweep.wall_time_s += time.perf_counter() - started
            write_json(out / CONFIG_FILE, sweep.to_dict())
        return write_outputs(sweep, axes, out, errors)


def _start_ray(ray: Any, address: str | None) -> None:
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        ray.init(object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, **quiet)
    else:
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as exc:
            reason = " ".join(str(exc).split())[:300]
            raise SweepError(f"cannot connect to the Ray cluster at {address}: {reason}") from None


def _check_resources(available: dict[str, float], resources: Resources) -> None:
    """Refuse a trial that cannot fit on the cluster (Tune would wait for it forever)."""
    for key, wanted in (("CPU", resources.cpus_per_trial), ("GPU", resources.gpus_per_trial)):
        if wanted > available.get(key, 0):
            raise SweepError(
                f"each trial asks for {wanted:g} {key}s but the Ray cluster has "
                f"{available.get(key, 0):g}: lower --{key.lower()}s-per-trial"
            )


def _finished(out: Path, trial: str) -> bool:
    return (out / "trials" / trial / "summary.json").exists()


def _discovered(out: Path, sweep: Sweep, axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """Trials on disk that the plan lacks (Optuna trials of a sweep stopped before it recorded
    them), with the parameters their ``config.json`` holds."""
    known = {t["id"] for t in sweep.plan}
    found = []
    for folder in sorted((out / "trials").glob("trial-*")):
        if folder.name not in known and (folder / "config.json").exists():
            config = RunFolder(folder).read_json(folder / "config.json")
            found.append({"id": folder.name, "params": recorded_values(config, axes)})
    return found


def _job(sweep: Sweep, out: Path, resources: Resources) -> dict[str, Any]:
    """What every trial needs, passed to the trainable by ``tune.with_parameters``."""
    return {
        "base": sweep.base.to_dict(),
        "params": sweep.params,
        "plan": {t["id"]: t["params"] for t in sweep.plan},
        "out": str(out),
        "cwd": os.getcwd(),
        "cpus_per_trial": resources.cpus_per_trial,
        "tracking": dataclasses.asdict(sweep.tracking) if sweep.tracking else None,
    }


def _fit(
    tune: Any,
    sweep: Sweep,
    out: Path,
    resources: Resources,
    param_space: dict[str, Any],
    search_alg: Any = None,
    num_samples: int = 1,
) -> dict[str, str]:
    """One ``Tuner.fit`` of the trainable; the errors of trials that failed, by trial id."""
    for key, value in QUIET_TUNE.items():
        os.environ.setdefault(key, value)
    numbers = itertools.count(len(sweep.plan))
    names: dict[str, str] = {}  # Tune asks for a trial's name and its folder's: one number

    def name(trial: Any) -> str:
        if trial.trial_id not in names:
            names[trial.trial_id] = trial.config.get("trial") or trial_name(next(numbers))
        return names[trial.trial_id]

    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, job=_job(sweep, out, resources)),
        {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            metric="val_accuracy" if search_alg else None,
            mode="max" if search_alg else None,
            num_samples=num_samples,
            max_concurrent_trials=resources.max_concurrent,
            reuse_actors=True,  # a trial process imports torch and phyll once, not per trial
            trial_name_creator=name,
            trial_dirname_creator=name,
        ),
        run_config=tune.RunConfig(
            storage_path=str(out / "ray"), name=time.strftime("fit-%Y%m%d-%H%M%S"), verbose=0
        ),
    )
    errors = {}
    known = {t["id"] for t in sweep.plan}
    for result in tuner.fit():
        metrics = result.metrics or {}
        trial = metrics.get("trial") or Path(result.path).name
        if trial not in known and search_alg is not None:
            axes = sweep.axes
            values = {a.name: a.value(result.config[a.name]) for a in axes}
            sweep.plan.append({"id": trial, "params": values})
        if metrics.get("status") == "error":
            errors[trial] = metrics["error"]
        elif result.error is not None:
            lines = str(result.error).strip().splitlines()
            errors[trial] = lines[-1] if lines else type(result.error).__name__
    return errors


def _fit_optuna(
    tune: Any, sweep: Sweep, axes: Sequence[Axis], out: Path, resources: Resources
) -> dict[str, str]:
    """Let Optuna propose the trials still missing, warm-started with the finished ones."""
    searchers = require("ray.tune.search.optuna", "ray", "phyll sweep --searcher optuna")
    done = [t for t in sweep.plan if _finished(out, t["id"])]
    missing = sweep.samples - len(sweep.plan)
    if missing <= 0:
        return {}
    rewards = [_summary(out, t["id"]).get("val_accuracy") for t in done]
    warm = [(t["params"], r) for t, r in zip(done, rewards, strict=True) if r is not None]
    search = searchers.OptunaSearch(
        metric="val_accuracy",
        mode="max",
        seed=sweep.base.seed,
        points_to_evaluate=[p for p, _ in warm] or None,
        evaluated_rewards=[r for _, r in warm] or None,
    )
    space = {a.name: _domain(tune, a) for a in axes}
    return _fit(tune, sweep, out, resources, space, search, num_samples=missing)


def _summary(out: Path, trial: str) -> dict[str, Any]:
    folder = RunFolder(out / "trials" / trial)
    return folder.read_json(folder.summary_file) if folder.summary_file.exists() else {}


def write_outputs(
    sweep: Sweep, axes: Sequence[Axis], out: Path, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    """``sweep.json``, ``sweep_table.md`` and ``sweep.png`` from the trials' run folders."""
    errors = errors or {}
    trials = [
        trial_entry(t["id"], t["params"], _summary(out, t["id"]) or None, errors.get(t["id"]))
        for t in sorted(sweep.plan, key=lambda t: t["id"])
    ]
    space = {a.name: a.spec() for a in axes}
    record = sweep_record(
        sweep.searcher, space, sweep.base.to_dict(), round(sweep.wall_time_s, 3), trials
    )
    write_json(out / "sweep.json", record)
    write_table(record, out / "sweep_table.md")
    chances = [t["chance_accuracy"] for t in record["trials"] if t.get("chance_accuracy")]
    plot_sweep(record, out / "sweep.png", chances[0] if chances else None)
    return record


# ---------------------------------------------------------------------- the command
def sweep_of(args: argparse.Namespace) -> Sweep:
    """The :class:`Sweep` the command line describes."""
    params = list(args.param)
    names = [p.partition("=")[0].strip() for p in params]
    seeds = seeds_of(args)
    if len(seeds) > 1:
        if "seed" in names:
            raise SpaceError("give the seeds either as --seeds or as --param seed=..., not both")
        params.append("seed=" + ",".join(map(str, seeds)))
    if args.rules:
        if "rule" in names:
            raise SpaceError("give the rules either as --rules or as --param rule=..., not both")
        params.append("rule=" + ",".join(args.rules))
    rule = args.rules[0] if args.rules else (args.rule or TrainConfig().rule)
    base = config_from_args(args, seed=seeds[0], rule=rule)
    distributions = any(":" in p.partition("=")[2] for p in params)
    searcher = args.searcher or ("random" if distributions else "grid")
    samples = args.samples or (8 if searcher == "optuna" else 1)
    return Sweep(base, params, searcher, samples, tracking_of(args))


def check_recorded_sweep(data: dict[str, Any], trust: Trust, where: str) -> None:
    """Refuse a recorded sweep whose base or ``system=`` / ``rule=`` axes name code the user
    has not trusted, before anything is imported (:func:`check_recorded_names`)."""
    base = data["base_config"]
    systems, rules = [base.get("system")], [base.get("rule")]
    for text in data.get("params", []):
        key, _, values = str(text).partition("=")
        axis = {"system": systems, "rule": rules}.get(key.strip())
        if axis is not None:
            axis += [v.strip() for v in values.split(",") if v.strip()]
    for system in systems:
        for rule in rules:
            check_recorded_names(system, rule, trust, where)


def command_sweep(args: argparse.Namespace) -> int:
    resources = Resources(
        args.address, args.cpus_per_trial, args.gpus_per_trial, args.max_concurrent
    )
    if args.resume:
        out = Path(args.resume)
        if not (out / CONFIG_FILE).exists():
            raise RunFolderError(f"{out} holds no sweep ({CONFIG_FILE} missing)")
        data = RunFolder(out).read_json(out / CONFIG_FILE)
        check_recorded_sweep(data, trust_of(args), str(out / CONFIG_FILE))
        sweep = Sweep.from_dict(data)
    else:
        sweep = sweep_of(args)
        out = Path(args.out) if args.out else Path("runs") / (
            f"sweep-{sweep.base.dataset}-{sweep.base.rule}"
        )  # fmt: skip
    record = run_sweep(sweep, out, resources, overwrite=args.overwrite, reuse=bool(args.resume))
    for t in record["trials"]:
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        if t["status"] == "done":
            score = f"test {t['test_accuracy']:.3f}, val {t['val_accuracy']:.3f}"
        else:
            score = t["status"] + (f": {t['error']}" if t["error"] else "")
        print(f"{t['id']} ({params}): {score}")
    pending = sum(t["status"] == "pending" for t in record["trials"])
    trust = " --trust-code" if needs_trust(sweep.base.system, sweep.base.rule) else ""
    print(
        f"sweep folder: {out} (sweep.json, sweep_table.md, sweep.png; "
        f"{record['wall_time_s']:.1f} s)"
        + (f"; {pending} trials unfinished: phyll sweep --resume {out}{trust}" if pending else "")
    )
    return 130 if pending else 0  # stopped (Ctrl-C): what is done is written, the rest resumes


def register(sub: Any) -> None:
    """Add ``phyll sweep``: every training option as the base, ``--param`` axes on top."""
    p = sub.add_parser(
        "sweep",
        help="hyperparameter sweep on Ray Tune (optional extra .[ray]): one run folder a trial",
        description="Sweep training options and rule/system parameters with Ray Tune: each "
        "trial is an ordinary `phyll train` run in OUT/trials/trial-NNNN; every `phyll train` "
        'option sets the base configuration. Needs pip install -e ".[ray]".',
    )
    add_experiment_arguments(p, seed=False, address=False)  # --address below places the trials
    g = p.add_argument_group("sweep")
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a swept quantity, repeatable: NAME=v1,v2,... (a grid) or NAME=loguniform:A:B, "
        "uniform:A:B, randint:A:B (A <= n < B); NAME is a training option (width, epochs, ...), "
        "rule.NAME / system.NAME, or a bare parameter name such as lr",
    )
    g.add_argument(
        "--rules",
        action=ListAction,
        type=named_choice(lambda: RULES, "rule"),
        default=None,
        metavar="NAME",
        help="sweep these rules, comma-separated (instead of --rule)",
    )
    add_seeds_arguments(g, default=1)
    g.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="random search: N draws per grid point (default 1); optuna: N trials (default 8)",
    )
    g.add_argument(
        "--searcher",
        choices=SEARCHERS,
        default=None,
        help="grid, random or optuna (default: grid, or random when a distribution is given)",
    )
    g = p.add_argument_group("Ray")
    g.add_argument(
        "--address",
        default=None,
        help="a running Ray cluster: auto, or ray://HOST:PORT (default: start a local instance); "
        "every node must see --out",
    )
    g.add_argument(
        "--cpus-per-trial",
        type=positive_int,
        default=1,
        metavar="N",
        help="CPUs (and torch threads) of each trial (default: %(default)s)",
    )
    g.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.0,
        metavar="N",
        help="GPUs of each trial, fractions allowed; use with --device cuda (default: 0)",
    )
    g.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=None,
        metavar="N",
        help="at most N trials at once (default: as many as the resources allow)",
    )
    add_run_arguments(p, "sweep (default: runs/sweep-DATASET-RULE)")
    add_track_arguments(p)
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the sweep in DIR with its recorded options: finished trials are kept, "
        "interrupted ones resume from their checkpoints",
    )
    add_trust_argument(p, "sweep folder")
    p.set_defaults(func=command_sweep)

"""``phyll sweep``: a hyperparameter sweep of ordinary phyll runs, scheduled by Ray Tune.

Every trial is one run folder ``OUT/trials/trial-NNNN``, trained, kept or resumed by the runner
(:mod:`phyll.experiments.runner`) on its Ray executor (:mod:`phyll.experiments.ray_executor`):
Ray Tune only decides where and when each trial runs (local cores by default, or a Ray cluster
with ``--address``) and, with ``--searcher optuna``, which parameters the next trial tries. The
run folders are the source of truth: ``sweep.json``, ``sweep_table.md`` and ``sweep.png``
(:mod:`phyll.experiments.sweep_outputs`) are rebuilt from their summaries, and Ray's own
records stay in ``OUT/ray``.

Searchers: ``grid`` (every combination of the ``--param`` grids), ``random`` (the grids times
``--samples`` draws of the distributions, drawn up front with Ray Tune's samplers and a fixed
seed) and ``optuna`` (Ray Tune's ``OptunaSearch`` proposes ``--samples`` trials; grids become
categorical choices). Grid and random trials are planned before any runs, so ``--resume OUT``
reruns exactly the unfinished ones; Optuna trials are recorded as they finish, and a resumed
Optuna sweep first resumes its interrupted trials, then warm-starts the study with the finished
ones and proposes the rest. A trial whose configuration fails is recorded with its error (the
sweep explores: only its first configuration is checked up front). Ray and Optuna are the
optional extra ``.[ray]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phyll.errors import ConfigError
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    add_seeds_arguments,
    add_track_arguments,
    config_from_args,
    named_choice,
    positive_int,
    seeds_of,
    tracking_of,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.extras import require
from phyll.experiments.ownership import SWEEP
from phyll.experiments.pipeline import sequential_if_needed
from phyll.experiments.protocol import ExperimentKind, RunResult, RunSpec
from phyll.experiments.ray_executor import RayExecutor, Resources
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.runner import run_experiment
from phyll.experiments.sweep_outputs import plot_sweep, sweep_record, trial_entry, write_table
from phyll.experiments.sweep_space import Axis, SpaceError, apply, grid_points, parse_space
from phyll.experiments.sweep_space import values_of as recorded_values
from phyll.experiments.tracking import Tracking
from phyll.experiments.train import check_configs
from phyll.registry import RULES

SEARCHERS = ("grid", "random", "optuna")


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


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def check_sweep(sweep: Sweep) -> list[Axis]:
    """The searcher, the space and the sample count, before anything is written."""
    if sweep.searcher not in SEARCHERS:
        raise ConfigError(f"unknown searcher {sweep.searcher!r}; choose from {SEARCHERS}")
    axes = sweep.axes
    if sweep.searcher == "grid" and any(a.distribution for a in axes):
        raise SpaceError("--searcher grid takes grids only (NAME=v1,v2,...): use random or optuna")
    if sweep.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {sweep.samples}")
    return axes


def trial_spec(base: TrainConfig, axes: Sequence[Axis], trial: str, params: dict) -> RunSpec:
    """One trial's run: the base with the trial's parameters (sequential where a rule cannot
    pipeline, e.g. PAT with ``--pipeline ray``)."""
    config = sequential_if_needed(apply(base, axes, params))
    label = f"{trial} ({', '.join(f'{k}={v}' for k, v in params.items())})"
    return RunSpec(f"trials/{trial}", config, label, {"id": trial, "params": params})


def plan(sweep: Sweep) -> list[RunSpec]:
    """The trials known so far: every one for grid and random search (drawn now, recorded in
    the marker), those already proposed for Optuna (whose first configuration is checked)."""
    axes = check_sweep(sweep)
    require("ray", "ray", "phyll sweep")
    require("ray.tune", "ray", "phyll sweep")
    if sweep.searcher == "optuna":
        require("optuna", "ray", "phyll sweep --searcher optuna")
        first = {a.name: a.grid[0] if a.grid else a.distribution[1] for a in axes}  # type: ignore[index]
        check_configs([apply(sweep.base, axes, first)])
    elif not sweep.plan:
        sweep.plan = plan_trials(axes, sweep.samples, sweep.base.seed)
    return [trial_spec(sweep.base, axes, t["id"], t["params"]) for t in sweep.plan]


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


# ---------------------------------------------------------------------- running
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


def optuna_spec(job: dict[str, Any], trial: str, tune_config: dict[str, Any]) -> RunSpec:
    """The run of a trial Optuna proposed (in the Ray worker): the base with its parameters."""
    base = TrainConfig.from_dict(job["extra"]["base"])
    axes = parse_space(job["extra"]["params"], base)
    return trial_spec(base, axes, trial, {a.name: a.value(tune_config[a.name]) for a in axes})


class SweepExecutor(RayExecutor):
    """The Ray executor of a sweep: the trials planned or found on disk, then Optuna's; the
    sweep's wall time adds up over its resumptions."""

    def run(
        self, kind: ExperimentKind, config: Any, specs: list[RunSpec], out: Path, *,
        progress: bool, overwrite: bool,
    ) -> list[RunResult]:  # fmt: skip
        found = _discovered(out, config, config.axes)
        config.plan += found
        specs = [
            *specs,
            *(trial_spec(config.base, config.axes, t["id"], t["params"]) for t in found),
        ]
        started = time.perf_counter()
        try:
            return super().run(kind, config, specs, out, progress=progress, overwrite=overwrite)
        finally:
            config.wall_time_s += time.perf_counter() - started

    def more(
        self, tune: Any, config: Any, specs: list[RunSpec], out: Path
    ) -> tuple[list[RunSpec], dict[str, str]]:
        """Optuna proposes the trials still missing, warm-started with the finished ones."""
        sweep: Sweep = config
        missing = sweep.samples - len(sweep.plan)
        if sweep.searcher != "optuna" or missing <= 0:
            return [], {}
        searchers = require("ray.tune.search.optuna", "ray", "phyll sweep --searcher optuna")
        done = [t for t in sweep.plan if _summary(out, t["id"])]
        warm = [(t["params"], _summary(out, t["id"]).get("val_accuracy")) for t in done]
        warm = [(p, r) for p, r in warm if r is not None]
        search = searchers.OptunaSearch(
            metric="val_accuracy",
            mode="max",
            seed=sweep.base.seed,
            points_to_evaluate=[p for p, _ in warm] or None,
            evaluated_rewards=[r for _, r in warm] or None,
        )
        axes = sweep.axes
        space = {a.name: _domain(tune, a) for a in axes}
        errors, proposed = self.fit(
            tune, specs, out, space, search_alg=search, num_samples=missing, make_spec=optuna_spec
        )
        added = []
        for trial, tune_config in sorted(proposed.items()):
            params = {a.name: a.value(tune_config[a.name]) for a in axes}
            sweep.plan.append({"id": trial, "params": params})
            added.append(trial_spec(sweep.base, axes, trial, params))
        return added, errors


def _summary(out: Path, trial: str) -> dict[str, Any]:
    folder = RunFolder(out / "trials" / trial)
    return folder.read_json(folder.summary_file) if folder.summary_file.exists() else {}


def summarize(sweep: Sweep, runs: list[RunResult]) -> dict[str, Any]:
    """``sweep.json``: one entry per trial (:mod:`phyll.experiments.sweep_outputs`)."""
    trials = [
        trial_entry(r.spec.tags["id"], r.spec.tags["params"], r.summary, r.error)
        for r in sorted(runs, key=lambda r: r.spec.tags["id"])
    ]
    space = {a.name: a.spec() for a in sweep.axes}
    return sweep_record(
        sweep.searcher, space, sweep.base.to_dict(), round(sweep.wall_time_s, 3), trials
    )


def figures(record: dict[str, Any], out: Path) -> None:
    """``sweep_table.md`` and ``sweep.png``."""
    write_table(record, out / "sweep_table.md")
    chances = [t["chance_accuracy"] for t in record["trials"] if t.get("chance_accuracy")]
    plot_sweep(record, out / "sweep.png", chances[0] if chances else None)


def page(record: dict[str, Any]) -> str:
    """One line per trial: its parameters and scores, or its status."""
    lines = []
    for t in record["trials"]:
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        if t["status"] == "done":
            score = f"test {t['test_accuracy']:.3f}, val {t['val_accuracy']:.3f}"
        else:
            score = t["status"] + (f": {t['error']}" if t["error"] else "")
        lines.append(f"{t['id']} ({params}): {score}")
    lines.append(f"{len(record['trials'])} trials, {record['wall_time_s']:.1f} s")
    return "\n".join(lines)


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    resources: Resources | None = None,
    *,
    overwrite: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Run (or, with ``reuse``, continue) ``sweep`` in ``out``; write and return ``sweep.json``.
    Finished trials are kept, interrupted ones resume from their checkpoints."""
    executor = executor_of(sweep, resources or Resources())
    return run_experiment(
        KIND, sweep, Path(out).absolute(), overwrite=overwrite, resume=reuse, executor=executor
    )


def executor_of(sweep: Sweep, resources: Resources) -> SweepExecutor:
    extra = {"base": sweep.base.to_dict(), "params": sweep.params}
    return SweepExecutor(resources, sweep.tracking, extra)


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


def recorded_names(data: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """Every system and rule a recorded sweep names: its base and its ``system=`` /
    ``rule=`` axes (imported only when trusted)."""
    base = data["base_config"]
    systems, rules = [base.get("system")], [base.get("rule")]
    for text in data.get("params", []):
        key, _, values = str(text).partition("=")
        axis = {"system": systems, "rule": rules}.get(key.strip())
        if axis is not None:
            axis += [v.strip() for v in values.split(",") if v.strip()]
    return [(system, rule) for system in systems for rule in rules]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every training option as the base, ``--param`` axes on top, then Ray's options."""
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


KIND = ExperimentKind(
    name="sweep",
    help="hyperparameter sweep on Ray Tune (optional extra .[ray]): one run folder a trial",
    description="Sweep training options and rule/system parameters with Ray Tune: each "
    "trial is an ordinary `phyll train` run in OUT/trials/trial-NNNN; every `phyll train` "
    'option sets the base configuration. Needs pip install -e ".[ray]".',
    folder=SWEEP,
    add_arguments=add_arguments,
    from_args=sweep_of,
    from_record=lambda data, args: Sweep.from_dict(data),
    recorded_names=recorded_names,
    default_out=lambda s: Path("runs") / f"sweep-{s.base.dataset}-{s.base.rule}",
    plan=plan,
    summarize=summarize,
    figures=figures,
    page=page,
    explores=True,
    replaced_on_overwrite=("trials", "ray"),
    recorded_progress=("plan", "wall_time_s"),
    executor_of=lambda sweep, args: executor_of(
        sweep,
        Resources(args.address, args.cpus_per_trial, args.gpus_per_trial, args.max_concurrent),
    ),
)

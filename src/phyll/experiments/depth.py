"""``phyll depth``: accuracy against the number of physical blocks (1 to 10 and beyond).

Each depth (and seed) is one ordinary run with the same configuration but ``blocks``, in its
own run folder ``OUT/blocks-NN-seedS`` (:mod:`phyll.experiments.runner` trains, keeps or
resumes it). ``OUT/depth.json`` holds the configuration and, per run, every number the figure
plots plus costs, final loss and whether it stayed finite; ``OUT/depth.png`` shows test and
validation accuracy of the selected epoch against depth, mean over seeds with min–max bars,
and chance. A depth whose training fails (e.g. non-finite measurements) is recorded with its
error and the sweep goes on, so instability is visible instead of fatal.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

from phyll.engine import TrainingError
from phyll.errors import ConfigError
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    add_seeds_arguments,
    config_from_args,
    positive_int,
    seeds_of,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.ownership import DEPTH
from phyll.experiments.protocol import ExperimentKind, RunResult, RunSpec, base_names
from phyll.experiments.runner import run_experiment
from phyll.plotting import Target, accuracy_axis, epoch_axis, pyplot, save

PLOTTED = ("test_accuracy", "val_accuracy")
COSTS = (
    "physical_queries_training",
    "digital_flops_training",
    "wall_time_s_training",
    "wall_time_s",
)


@dataclasses.dataclass
class DepthConfig:
    """What ``phyll depth`` runs: ``base`` at every number of blocks in ``depths``, per seed."""

    base: TrainConfig
    depths: list[int]
    seeds: list[int]

    def __post_init__(self) -> None:
        if not self.depths or min(self.depths) < 1:
            raise ConfigError(f"depths must be positive block counts, got {self.depths}")

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.base.to_dict(), "depths": self.depths, "seeds": self.seeds}


def plan(config: DepthConfig) -> list[RunSpec]:
    """One run per depth and seed."""
    return [
        RunSpec(
            f"blocks-{blocks:02d}-seed{seed}",
            dataclasses.replace(config.base, blocks=blocks, seed=seed),
            f"{blocks} blocks · seed {seed}",
        )
        for blocks in config.depths
        for seed in config.seeds
    ]


def run_record(run: RunResult) -> dict[str, Any]:
    """One run of ``depth.json``: what the figure plots, costs, final loss, finiteness."""
    config = run.spec.config
    record: dict[str, Any] = {"blocks": config.blocks, "seed": config.seed, "run": str(run.path)}
    if run.summary is None:
        return {**record, "error": run.error, "finite": False}
    losses = [m["loss"] for m in run.history]
    keys = (*PLOTTED, "last_test_accuracy", "best_epoch", "epochs", "chance_accuracy")
    return {
        **record,
        **{k: run.summary.get(k) for k in (*keys, *COSTS)},
        "final_loss": losses[-1] if losses else None,
        "finite": all(math.isfinite(v) for v in losses),
        "error": None,
    }


def summarize(config: DepthConfig, runs: list[RunResult]) -> dict[str, Any]:
    """``depth.json``: the configuration (``blocks``: the depths) and every run."""
    return {
        "config": {**config.base.to_dict(), "blocks": config.depths},
        "depths": config.depths,
        "seeds": config.seeds,
        "runs": [run_record(r) for r in runs],
    }


def run_depth_sweep(
    config: TrainConfig,
    depths: list[int],
    out: str | Path,
    seeds: list[int] | None = None,
    *,
    progress: bool = False,
    overwrite: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Train ``config`` at every depth (and seed); write ``depth.json`` and ``depth.png``.
    ``reuse`` keeps finished runs already in ``out`` and resumes interrupted ones."""
    depth = DepthConfig(config, list(depths), seeds or [config.seed])
    return run_experiment(KIND, depth, out, progress=progress, overwrite=overwrite, resume=reuse)


def plot_depth(result: dict[str, Any], target: Target) -> None:
    """Accuracy against the number of blocks (mean over seeds, min–max bars), with chance."""
    plt = pyplot()
    depths = result["depths"]
    fig, ax = plt.subplots(figsize=(6, 4))
    plotted: list[float] = []
    for key, label in zip(PLOTTED, ("test (selected epoch)", "validation"), strict=True):
        mean, low, high = [], [], []
        for d in depths:
            values = [r[key] for r in result["runs"] if r["blocks"] == d and r.get(key) is not None]
            mean.append(sum(values) / len(values) if values else math.nan)
            low.append(min(values) if values else math.nan)
            high.append(max(values) if values else math.nan)
        err = [
            [m - lo for m, lo in zip(mean, low, strict=True)],
            [h - m for m, h in zip(mean, high, strict=True)],
        ]
        bars = " (min–max over seeds)" if len(result["seeds"]) > 1 else ""
        ax.errorbar(depths, mean, yerr=err, marker="o", capsize=3, label=label + bars)
        plotted += low + high
    chance = next((r["chance_accuracy"] for r in result["runs"] if r.get("chance_accuracy")), None)
    accuracy_axis(ax, plotted, chance)
    epoch_axis(ax, "number of physical blocks")
    if max(depths) >= 16 * min(depths):  # 1, 2, 4 … 100: a log axis keeps every tick legible
        ax.set_xscale("log")
        ax.minorticks_off()
    cfg = result["config"]
    ax.set(title=f"{cfg['rule']} · {cfg['dataset']} · {cfg['system']}")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    save(fig, target)


def page(result: dict[str, Any]) -> str:
    """One line per run: its test accuracy, or why it failed."""
    lines = []
    for run in result["runs"]:
        score = "failed: " + run["error"] if run["error"] else f"test {run['test_accuracy']:.3f}"
        lines.append(f"{run['blocks']:>2} blocks, seed {run['seed']}: {score}")
    return "\n".join(lines)


def from_args(args: argparse.Namespace) -> DepthConfig:
    depths, seeds = args.blocks, seeds_of(args)
    return DepthConfig(config_from_args(args, blocks=depths[0], seed=seeds[0]), depths, seeds)


def from_record(data: dict[str, Any], args: argparse.Namespace) -> DepthConfig:
    return DepthConfig(TrainConfig.from_dict(data["config"]), data["depths"], data["seeds"])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every training option, with ``--blocks`` taking a list."""
    add_experiment_arguments(p, seed=False, blocks=False)
    p.add_argument(
        "--blocks",
        action=ListAction,
        type=positive_int,
        default=list(range(1, 11)),
        metavar="N",
        help="numbers of blocks to train, comma-separated (default: 1 to 10)",
    )
    add_seeds_arguments(p, default=1)
    add_run_arguments(p, "sweep (default: runs/depth-DATASET-RULE)")


KIND = ExperimentKind(
    name="depth",
    help="sweep the number of physical blocks; plot accuracy against depth",
    description="Train the same configuration with 1, 2, ... blocks (one run folder each) "
    "and plot accuracy against the number of blocks; every `phyll train` option applies.",
    folder=DEPTH,
    add_arguments=add_arguments,
    from_args=from_args,
    from_record=from_record,
    recorded_names=base_names,
    default_out=lambda c: Path("runs") / f"depth-{c.base.dataset}-{c.base.rule}",
    plan=plan,
    summarize=summarize,
    figures=lambda result, out: plot_depth(result, out / "depth.png"),
    page=page,
    recorded_errors=(TrainingError,),
)

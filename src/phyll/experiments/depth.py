"""``phyll depth``: accuracy against the number of physical blocks (1 to 10 and beyond).

Each depth (and seed) is one ordinary run of :func:`phyll.experiments.train.train` with the
same configuration but ``blocks``, written to its own run folder ``OUT/blocks-NN-seedS``. The
sweep writes ``OUT/depth.json`` (the configuration and, per run, every number the figure plots
plus costs, final loss and whether it stayed finite) and ``OUT/depth.png`` (test and
validation accuracy of the selected epoch against depth, mean over seeds with min–max bars,
and chance). A depth whose training fails (e.g. non-finite measurements) is recorded with its
error and the sweep goes on, so instability is visible instead of fatal. ``--resume OUT`` keeps
finished runs and resumes interrupted ones, with the options recorded in ``OUT``.
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
    add_trust_argument,
    config_from_args,
    positive_int,
    seeds_of,
    trust_of,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.ownership import DEPTH, claim
from phyll.experiments.run_folder import RunFolder, RunFolderError, output_folder
from phyll.experiments.train import check_configs, train, train_or_resume
from phyll.plotting import Target, accuracy_axis, epoch_axis, pyplot, save
from phyll.registry import check_recorded_names

PLOTTED = ("test_accuracy", "val_accuracy")
CONFIG_FILE = DEPTH.marker


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

    ``reuse`` keeps finished runs already in ``out`` and resumes interrupted ones.
    """
    if not depths or min(depths) < 1:
        raise ConfigError(f"depths must be positive block counts, got {depths}")
    seeds = seeds if seeds else [config.seed]
    check_configs([dataclasses.replace(config, blocks=depths[0], seed=seeds[0])])
    out = Path(out)
    claim(out, DEPTH)  # nothing of the user's is written over, --overwrite included
    json_file = out / "depth.json"
    if (json_file.exists() or (out / CONFIG_FILE).exists()) and not (overwrite or reuse):
        raise RunFolderError(f"{out} already holds a depth sweep: pass --overwrite or --resume")
    with output_folder(out):
        RunFolder(out).write_json(
            out / CONFIG_FILE, {"config": config.to_dict(), "depths": depths, "seeds": seeds}
        )
        runs = []
        for blocks in depths:
            for seed in seeds:
                run_config = dataclasses.replace(config, blocks=blocks, seed=seed)
                folder = RunFolder(out / f"blocks-{blocks:02d}-seed{seed}")
                runs.append(_one_run(run_config, folder, progress, overwrite, reuse))
        result = {
            "config": {**config.to_dict(), "blocks": depths},
            "depths": depths,
            "seeds": seeds,
            "runs": runs,
        }
        RunFolder(out).write_json(json_file, result)
        plot_depth(result, out / "depth.png")
        return result


def _one_run(
    config: TrainConfig, folder: RunFolder, progress: bool, overwrite: bool, reuse: bool
) -> dict[str, Any]:
    record: dict[str, Any] = {"blocks": config.blocks, "seed": config.seed, "run": str(folder.path)}
    try:
        if reuse:
            summary = train_or_resume(config, folder.path, progress=progress)
        else:
            summary = train(config, folder.path, progress=progress, overwrite=overwrite)
    except TrainingError as exc:
        return {**record, "error": str(exc), "finite": False}
    losses = [m["loss"] for m in folder.read_metrics()]
    keys = (*PLOTTED, "last_test_accuracy", "best_epoch", "epochs", "chance_accuracy")
    costs = (
        "physical_queries_training",
        "digital_flops_training",
        "wall_time_s_training",
        "wall_time_s",
    )
    return {
        **record,
        **{k: summary.get(k) for k in (*keys, *costs)},
        "final_loss": losses[-1] if losses else None,
        "finite": all(math.isfinite(v) for v in losses),
        "error": None,
    }


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


def command_depth(args: argparse.Namespace) -> int:
    if args.resume:
        out = Path(args.resume)
        if not (out / CONFIG_FILE).exists():
            raise RunFolderError(f"{out} holds no depth sweep ({CONFIG_FILE} missing)")
        recorded = RunFolder(out).read_json(out / CONFIG_FILE)
        names = [recorded["config"].get(k) for k in ("system", "rule")]
        check_recorded_names(*names, trust_of(args), str(out / CONFIG_FILE))
        config = TrainConfig.from_dict(recorded["config"])
        depths, seeds = recorded["depths"], recorded["seeds"]
    else:
        depths, seeds = args.blocks, seeds_of(args)
        config = config_from_args(args, blocks=depths[0], seed=seeds[0])
        out = Path(args.out) if args.out else Path("runs") / f"depth-{args.dataset}-{config.rule}"
    result = run_depth_sweep(
        config,
        depths,
        out,
        seeds,
        progress=not args.quiet,
        overwrite=args.overwrite,
        reuse=bool(args.resume),
    )
    for run in result["runs"]:
        score = "failed: " + run["error"] if run["error"] else f"test {run['test_accuracy']:.3f}"
        print(f"{run['blocks']:>2} blocks, seed {run['seed']}: {score}")
    print(f"sweep folder: {out} (depth.json, depth.png)")
    return 0


def register(sub: Any) -> None:
    """Add ``phyll depth``: every training option, with ``--blocks`` taking a list."""
    p = sub.add_parser(
        "depth",
        help="sweep the number of physical blocks; plot accuracy against depth",
        description="Train the same configuration with 1, 2, ... blocks (one run folder each) "
        "and plot accuracy against the number of blocks; every `phyll train` option applies.",
    )
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
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the sweep in DIR with its recorded options: finished runs are kept, "
        "interrupted ones resume from their checkpoints",
    )
    add_trust_argument(p, "sweep folder")
    p.set_defaults(func=command_depth)

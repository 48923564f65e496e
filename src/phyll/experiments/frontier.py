"""``phyll frontier``: accuracy against cost, physical networks next to digital models.

A physical layer earns its place by doing work that digital hardware would otherwise pay for,
so the question is not "is the PNN accurate?" but "is there a digital model as accurate for no
more digital work?". The frontier trains, on one task and split, each family at several sizes:

* ``pnn``: PhyLL on the physical system, around the task's default network: fewer or more
  measurements, narrower digital layers, one block more or less, (camera images) pooled
  pixels, digital layers that read the measurements only (no skip), and one readout pass
  in place of a goodness pass per label;
* ``random-features``: the same networks with a digital random map of the same size in place
  of the physics (its map is digital work);
* ``mlp``: digital MLPs (in-silico backprop, physics removed) of widths 8 … 1,024;
* ``linear``: logistic regression on the inputs (its own epoch budget, as in ``compare``).

Every point is one or more ordinary run folders (``DIR/runs/POINT-seedS``), trained, kept when
finished or resumed when interrupted (:func:`~phyll.experiments.runner.run_one`), so running
the same command again, or ``phyll frontier --resume DIR``, completes an interrupted frontier.
``DIR/frontier.json`` (marker ``phyll-frontier/1``) holds, per point, the test accuracy (mean
over seeds) and what it cost from each run's instrumentation: digital FLOPs per inference (one
test sample, prediction included), digital training FLOPs (setup and training), physical
queries and digital parameters. A point is **Pareto-optimal** when no other point is at least
as accurate for no more digital FLOPs per inference (one of the two strictly). A PNN point's
**physics advantage** is its accuracy minus the best digital accuracy (random features, MLPs,
linear) at no more digital FLOPs per inference; None when no digital point is that cheap.
Figures: ``frontier_inference.png``, ``frontier_training.png`` and ``frontier_queries.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phyll.errors import ConfigError
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    add_seeds_arguments,
    config_from_args,
    seeds_of,
)
from phyll.experiments.compare import LINEAR_MIN_EPOCHS
from phyll.experiments.config import TrainConfig, dataset_kind
from phyll.experiments.matched import mlp_config
from phyll.experiments.ownership import FRONTIER
from phyll.experiments.protocol import ExperimentKind, RunResult, RunSpec, base_names
from phyll.experiments.runner import run_experiment
from phyll.plotting import Target, accuracy_axis, pyplot, save

FAMILIES = ("pnn", "random-features", "mlp", "linear")
DIGITAL = ("random-features", "mlp", "linear")
MLP_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
#: the PNN's measurement counts, as fractions of the default
MEASUREMENT_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1)
#: the PNN's digital widths, as fractions of the default
WIDTH_FRACTIONS = (1 / 4, 1 / 2, 1)
#: pooled camera pixels, (window, stride), for systems whose measurements are an image
POOLINGS = ((2, 2), (3, 2))
MARKERS = {"pnn": "o", "random-features": "s", "mlp": "^", "linear": "D"}
COLORS = {"pnn": "C3", "random-features": "C0", "mlp": "C2", "linear": "C7"}
#: what each figure puts on its x axis: (file, key, label)
FIGURES = (
    ("frontier_inference.png", "digital_flops_per_inference", "digital FLOPs per inference"),
    ("frontier_training.png", "digital_flops_training", "digital training FLOPs"),
    ("frontier_queries.png", "physical_queries", "physical queries (training and testing)"),
)


@dataclass(frozen=True)
class Point:
    """One model of the frontier: its family, a folder-safe name and its configuration."""

    family: str
    name: str
    config: TrainConfig = field(compare=False)


def plan(base: TrainConfig, families: list[str]) -> list[Point]:
    """The frontier's points around ``base`` (see the module docstring), each named once."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ConfigError(f"unknown frontier families {unknown}; choose from {', '.join(FAMILIES)}")
    base = dataclasses.replace(base, rule="phyll")
    networks = _pnn_networks(base)
    points: list[Point] = []
    if "pnn" in families:
        points += [Point("pnn", "pnn-" + _label(c), c) for c in networks]
    if "random-features" in families:
        control = {"system": "random-features", "system_params": {}}
        points += [
            Point("random-features", "rf-" + _label(c), dataclasses.replace(c, **control))
            for c in networks
            if c.blocks == base.blocks and c.width == base.width
        ]
    if "mlp" in families:
        points += [Point("mlp", f"mlp-w{w}", mlp_config(base, w)) for w in MLP_WIDTHS]
    if "linear" in families:
        epochs = max(base.epochs or 0, LINEAR_MIN_EPOCHS)
        linear = dataclasses.replace(base, rule="linear", use_physics=False, epochs=epochs)
        points.append(Point("linear", "linear", linear))
    return points


def _pnn_networks(base: TrainConfig) -> list[TrainConfig]:
    """The base network, fewer measurements, narrower layers, a block more or less, pooling."""
    m0, w0 = base.measurements or 1, base.width or 1
    variants = [{"measurements": max(8, round(m0 * f))} for f in MEASUREMENT_FRACTIONS]
    variants += [{"width": max(4, round(w0 * f))} for f in WIDTH_FRACTIONS]
    variants += [{"blocks": b} for b in {max(1, (base.blocks or 1) - 1), (base.blocks or 1) + 1}]
    # the digital layers read the measurements only (no skip of the block's input), and one
    # readout pass predicts instead of a goodness pass per label: the two levers on the
    # digital work of an inference that do not shrink the physics
    variants += [{"skip": False}, {"rule_params": {**base.rule_params, "prediction": "readout"}}]
    if base.system == "optical" and dataset_kind(base.dataset) == "image":
        variants += [{"pool": window, "pool_stride": stride} for window, stride in POOLINGS]
    configs: list[TrainConfig] = []
    for change in variants:
        config = dataclasses.replace(base, **change)
        if all(_label(config) != _label(c) for c in configs):
            configs.append(config)
    return configs


def _label(config: TrainConfig) -> str:
    pool = f"-p{config.pool}s{config.pool_stride or config.pool}" if config.pool > 1 else ""
    skip = "" if config.skip else "-noskip"
    readout = "-readout" if config.rule_params.get("prediction") == "readout" else ""
    return f"m{config.measurements}-w{config.width}-b{config.blocks}{pool}{skip}{readout}"


# ---------------------------------------------------------------------- running
@dataclass
class FrontierConfig:
    """What ``phyll frontier`` runs: the points of ``families`` around ``base``, per seed."""

    base: TrainConfig
    families: list[str]
    seeds: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.base.to_dict(), "families": self.families, "seeds": self.seeds}


def plan_runs(config: FrontierConfig) -> list[RunSpec]:
    """One run per point and seed."""
    return [
        RunSpec(
            f"runs/{point.name}-seed{seed}",
            dataclasses.replace(point.config, seed=seed),
            f"{point.name} · seed {seed}",
            {"point": point},
        )
        for point in plan(config.base, config.families)
        for seed in config.seeds
    ]


def summarize(config: FrontierConfig, runs: list[RunResult]) -> dict[str, Any]:
    """``frontier.json``: every point's accuracy and costs, the front, the physics advantage."""
    points: dict[Point, list[RunResult]] = {}
    for run in runs:
        points.setdefault(run.spec.tags["point"], []).append(run)
    rows = [
        point_row(
            point,
            [r.summary for r in point_runs if r.summary is not None],
            [str(point_runs[0].path.parent / point.name)],
        )
        for point, point_runs in points.items()
    ]
    result = {**_plain(config.to_dict()), "points": mark_frontier(rows)}
    result["physics_advantage"] = best_advantage(result["points"])
    return result


def run_frontier(
    base: TrainConfig,
    families: list[str],
    seeds: list[int],
    out: str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or keep, or resume) every point and seed; write and return ``frontier.json``.

    ``overwrite`` replaces another frontier already in ``out`` (never a folder without the
    frontier's marker)."""
    config = FrontierConfig(base, list(families), list(seeds))
    return run_experiment(KIND, config, out, progress=progress, overwrite=overwrite)


def point_row(point: Point, summaries: list[dict[str, Any]], runs: list[str]) -> dict[str, Any]:
    """A point's accuracy (mean ± std over seeds) and costs (mean), from its runs' summaries."""
    accuracies = [s["test_accuracy"] for s in summaries]

    def mean(key: str) -> float | None:
        values = [s.get(key) for s in summaries]
        return statistics.fmean(values) if all(v is not None for v in values) else None

    config = point.config
    return {
        "name": point.name,
        "family": point.family,
        "rule": config.rule,
        "system": config.system,
        "measurements": config.measurements if config.use_physics else None,
        "width": config.width,
        "blocks": config.blocks,
        "pool": config.pooling,
        "epochs": config.epochs,
        "test_accuracy": statistics.fmean(accuracies),
        "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "test_accuracy_per_seed": accuracies,
        "digital_flops_per_inference": mean("digital_flops_per_inference"),
        "digital_flops_training": _sum_mean(
            summaries, ("digital_flops_setup", "digital_flops_training")
        ),
        "physical_queries": mean("physical_queries"),
        "physical_queries_per_inference": mean("physical_queries_per_inference"),
        "digital_parameters": mean("digital_parameters"),
        "chance_accuracy": summaries[0].get("chance_accuracy"),
        "runs": runs,
    }


def _sum_mean(summaries: list[dict[str, Any]], keys: tuple[str, ...]) -> float:
    return statistics.fmean(sum(s[k] for k in keys) for s in summaries)


def mark_frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the Pareto-optimal points and give every PNN point its physics advantage."""
    cost = "digital_flops_per_inference"
    for row in rows:
        others = [r for r in rows if r is not row]
        row["pareto"] = not any(_dominates(o, row, cost) for o in others)
        if row["family"] == "pnn":
            cheaper = [
                r["test_accuracy"]
                for r in others
                if r["family"] in DIGITAL and r[cost] is not None and r[cost] <= row[cost]
            ]
            row["best_digital_at_cost"] = max(cheaper) if cheaper else None
            row["physics_advantage"] = row["test_accuracy"] - max(cheaper) if cheaper else None
    return rows


def _dominates(a: dict[str, Any], b: dict[str, Any], cost: str) -> bool:
    """Whether ``a`` is at least as accurate as ``b`` for no more cost, one strictly."""
    if a[cost] is None or b[cost] is None:
        return False
    no_worse = a["test_accuracy"] >= b["test_accuracy"] and a[cost] <= b[cost]
    return no_worse and (a["test_accuracy"] > b["test_accuracy"] or a[cost] < b[cost])


def best_advantage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The PNN point with the largest physics advantage, and whether any PNN is on the front."""
    measured = [r for r in rows if r["family"] == "pnn" and r.get("physics_advantage") is not None]
    best = max(measured, key=lambda r: r["physics_advantage"], default=None)
    return {
        "pnn_on_front": [r["name"] for r in rows if r["family"] == "pnn" and r["pareto"]],
        "best_point": best["name"] if best else None,
        "best_advantage": best["physics_advantage"] if best else None,
    }


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists)."""
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------- figures
def plot_frontier(result: dict[str, Any], key: str, label: str, target: Target) -> None:
    """Test accuracy against one cost (log axis), one marker per family, the Pareto front
    (over digital FLOPs per inference) drawn as a line through its points and their markers
    outlined; a cost that is zero for a family (digital models make no physical query) leaves
    it out, its best accuracy drawn as a line instead."""
    plt = pyplot()
    rows = result["points"]
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    plotted: list[float] = []
    for family in FAMILIES:
        group = [r for r in rows if r["family"] == family]
        shown = [r for r in group if r.get(key)]
        if shown:
            ax.scatter(
                [r[key] for r in shown], [r["test_accuracy"] for r in shown],
                marker=MARKERS[family], color=COLORS[family], label=family, zorder=3,
                edgecolors=["k" if r["pareto"] else "none" for r in shown], linewidths=1.2,
            )  # fmt: skip
            plotted += [r["test_accuracy"] for r in shown]
        elif group:
            best = max(r["test_accuracy"] for r in group)
            ax.axhline(best, color=COLORS[family], ls="--", lw=1, label=f"best {family} ({key} 0)")
            plotted.append(best)
    front = sorted(
        (r for r in rows if r["pareto"] and r.get(key)), key=lambda r: (r[key], r["test_accuracy"])
    )
    if key == "digital_flops_per_inference" and front:
        ax.step([r[key] for r in front], [r["test_accuracy"] for r in front], where="post",
                color="k", lw=0.8, alpha=0.6, label="Pareto front (outlined)")  # fmt: skip
    chance = next((r.get("chance_accuracy") for r in rows if r.get("chance_accuracy")), None)
    accuracy_axis(ax, plotted, chance, "test accuracy")
    if any(r.get(key) for r in rows):  # every point at zero cost (digital families only,
        ax.set_xscale("log")  # physical queries): their best accuracies are the lines drawn
    ax.set_xlabel(label)
    config = result["config"]
    seeds = len(result["seeds"])
    ax.set_title(
        f"{config['dataset']} · {config['system']} · mean of {seeds} seed{'s' * (seeds > 1)}"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save(fig, target)


# ---------------------------------------------------------------------- command line
def format_table(result: dict[str, Any]) -> str:
    """The points as a plain-text table, best accuracy first."""
    lines = [
        f"{'point':<24} {'test acc':>9} {'FLOPs/inference':>16} {'training FLOPs':>15} "
        f"{'queries':>12} {'front':>6} {'physics adv.':>13}"
    ]
    for r in sorted(result["points"], key=lambda r: -r["test_accuracy"]):
        advantage = r.get("physics_advantage")
        lines.append(
            f"{r['name']:<24} {100 * r['test_accuracy']:>8.1f}% "
            f"{_num(r['digital_flops_per_inference']):>16} {_num(r['digital_flops_training']):>15} "
            f"{_num(r['physical_queries']):>12} {'yes' if r['pareto'] else '':>6} "
            f"{'' if advantage is None else f'{100 * advantage:+.1f} pts':>13}"
        )
    best = result["physics_advantage"]
    on_front = ", ".join(best["pnn_on_front"]) or "none"
    lines.append(
        f"PNN points on the Pareto front (accuracy vs digital FLOPs/inference): {on_front}"
    )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3g}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--families",
        action=ListAction,
        default=list(FAMILIES),
        metavar="FAMILY",
        help=f"families of models, comma-separated (default: {','.join(FAMILIES)})",
    )
    add_seeds_arguments(p, default=1)
    add_experiment_arguments(p, rule=False, seed=False)
    add_run_arguments(p, "frontier (default: runs/frontier-DATASET-SYSTEM)")


def figures(result: dict[str, Any], out: Path) -> None:
    for name, key, label in FIGURES:
        plot_frontier(result, key, label, out / name)


KIND = ExperimentKind(
    name="frontier",
    help="accuracy against digital cost: PNNs of several sizes next to digital models",
    description="Train PhyLL networks of several sizes and digital models (random "
    "features, MLPs, logistic regression) on one task; write frontier.json and figures of "
    "test accuracy against digital FLOPs per inference, digital training FLOPs and "
    "physical queries, with the Pareto front and the physics advantage. Running the same "
    "command again keeps finished runs and resumes interrupted ones.",
    folder=FRONTIER,
    add_arguments=add_arguments,
    from_args=lambda args: FrontierConfig(config_from_args(args), args.families, seeds_of(args)),
    from_record=lambda data, args: FrontierConfig(
        TrainConfig.from_dict(data["config"]), data["families"], data["seeds"]
    ),
    recorded_names=base_names,
    default_out=lambda c: Path("runs") / f"frontier-{c.base.dataset}-{c.base.system}",
    plan=plan_runs,
    summarize=summarize,
    figures=figures,
    page=format_table,
    finished_reruns=True,  # the same command again completes (or rebuilds) the frontier
    replaced_on_overwrite=("runs",),  # points of another plan
)

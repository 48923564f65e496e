"""``phyll compare``: several learning rules, one task, one architecture, several seeds.

Every entry trains the *same* network (``build_experiment``: same data split, blocks, widths,
physical systems and seeds) with :func:`phyll.experiments.train.train`, each run in its own
subfolder. The comparison folder then holds::

    DIR/compare_config.json      the marker, written first: what is compared (format marker)
    DIR/summary.json             {"rules": {RULE: {test_accuracy_mean, test_accuracy_std, ...}}}
    DIR/table.md                 mean ± std over seeds of every figure below
    DIR/accuracy_vs_epoch.png    test accuracy per epoch (mean ± std over seeds)
    DIR/accuracy_vs_flops.png    test accuracy against cumulative training digital FLOPs
    DIR/runs/RULE-seedS/         the run folders (config, metrics.jsonl, summary.json, ...)

Figures per rule (mean and sample standard deviation over seeds): test accuracy on the physical
system (best-validation epoch, tested once); epochs, digital FLOPs and wall time (setup
included) until the *validation* accuracy first reaches the target (``--target``; default: the
lowest final validation accuracy among the rules compared, so every rule reaches it), over the
seeds that reach it; physical queries, digital FLOPs, wall time and energy per phase (setup,
training, evaluation) and in total; digital FLOPs per training epoch; the FLOPs the physics
offloaded (what emulating every physical query digitally would have cost, see
:mod:`phyll.accounting`) and their ratio to the learner's own digital FLOPs. All come from the
runs' instrumentation.

Entries are rule names (``phyll list``) plus ``phyll-nophysics``: PhyLL on the same network with
the physical measurement removed (the honesty ablation), ``phyll-readout``: PhyLL
predicting with its one-pass linear readout instead of goodness over every label, and the
controls (``VARIANTS``): ``random-features``, ``linear`` (its own epoch budget, at least
:data:`LINEAR_MIN_EPOCHS`, best validation epoch kept), ``mlp``, ``mlp-matched`` (a digital MLP
whose digital FLOPs per inference equal PhyLL's, :mod:`phyll.experiments.matched`),
``dfa-frozen`` (DFA's readout on blocks frozen at their random initialisation), and for
unsupervised PhyLL
``phyll-unsup-nophysics`` and ``phyll-unsup-random-features``.

With ``--pipeline ray`` the entries of local rules train on one Ray actor per block; those that
cannot pipeline (PAT, backprop, the linear control) train sequentially, and their run folders
say so (``"pipeline": "none"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path
from typing import Any

from phyll.atomic import write_text
from phyll.errors import ConfigError
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    add_seeds_arguments,
    config_from_args,
    seeds_of,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.matched import matched_mlp_width, mlp_config
from phyll.experiments.ownership import COMPARE
from phyll.experiments.pipeline import sequential_if_needed
from phyll.experiments.protocol import (
    ExperimentKind,
    RunResult,
    RunSpec,
    base_names,
    check_rule_names,
)
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.runner import run_experiment
from phyll.plotting import Target, accuracy_axis, epoch_axis, mark_selected, pyplot, save

DEFAULT_RULES = ("phyll", "ff", "pat", "backprop-ideal", "backprop-transfer")
#: compare entries that are not rule names: entry → (rule, config overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "phyll-nophysics": ("phyll", {"use_physics": False}),
    # PhyLL predicting with its one-pass linear readout instead of goodness over every label
    "phyll-readout": ("phyll", {"rule_params": {"prediction": "readout"}}),
    # controls: does the physics do more than a digital model of its size?
    "random-features": ("phyll", {"system": "random-features", "system_params": {}}),
    "linear": ("linear", {"use_physics": False}),
    "mlp": ("backprop-ideal", {"use_physics": False}),
    # a digital MLP whose digital FLOPs per inference equal PhyLL's (width solved: matched.py)
    "mlp-matched": ("backprop-ideal", {"use_physics": False}),
    # DFA's readout on blocks left at their random initialisation: what DFA's training adds
    "dfa-frozen": ("dfa", {"rule_params": {"lr": 1e-12, "readout_lr": 1e-2}}),
    # the same controls for unsupervised PhyLL (its readout included)
    "phyll-unsup-nophysics": ("phyll-unsup", {"use_physics": False}),
    "phyll-unsup-random-features": (
        "phyll-unsup",
        {"system": "random-features", "system_params": {}},
    ),
}
#: what a local rule's physics gain is measured against: summary key → (rule, control entry)
GAIN_CONTROLS = {
    "vs_nophysics": ("phyll", "phyll-nophysics"),
    "vs_random_features": ("phyll", "random-features"),
    "unsup_vs_nophysics": ("phyll-unsup", "phyll-unsup-nophysics"),
    "unsup_vs_random_features": ("phyll-unsup", "phyll-unsup-random-features"),
}
QUANTITIES = (
    "physical_queries",
    "digital_flops",
    "wall_time_s",
    "simulation_time_s",
    "device_time_s",
    "projected_time_s",
    "energy_j",
    "offloaded_flops",
)
PHASE_SUFFIXES = ("", "_setup", "_training", "_evaluation")
#: what reaching the target cost (setup included)
TO_TARGET = ("digital_flops", "wall_time_s", "projected_time_s", "physical_queries")


#: the linear control trains at least this many epochs (the best validation epoch is kept):
#: logistic regression is cheap, and a PNN's short schedule must not starve it
LINEAR_MIN_EPOCHS = 100


def entry_config(
    entry: str, base: TrainConfig, seed: int, matched_width: int | None = None
) -> TrainConfig:
    """The run config of one compare entry and seed (``matched_width``: the hidden width of
    ``mlp-matched``, from :func:`~phyll.experiments.matched.matched_mlp_width`). With
    ``--pipeline``, an entry whose rule cannot pipeline (PAT, backprop, the MLP and linear
    controls) trains sequentially."""
    return sequential_if_needed(_entry_config(entry, base, seed, matched_width))


def _entry_config(
    entry: str, base: TrainConfig, seed: int, matched_width: int | None
) -> TrainConfig:
    if entry == "mlp-matched":
        if matched_width is None:
            raise ConfigError("mlp-matched needs its width: matched_mlp_width(base)")
        return mlp_config(dataclasses.replace(base, seed=seed), matched_width)
    if entry == "linear":
        epochs = max(base.epochs or 0, LINEAR_MIN_EPOCHS)
        return dataclasses.replace(base, rule="linear", seed=seed, use_physics=False, epochs=epochs)
    check_rule_names([entry], VARIANTS)
    rule, overrides = VARIANTS.get(entry, (entry, {}))
    if "rule_params" in overrides:
        overrides = {**overrides, "rule_params": {**base.rule_params, **overrides["rule_params"]}}
    return dataclasses.replace(base, rule=rule, seed=seed, **overrides)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cost_to_target(history: list[dict[str, Any]], target: float) -> dict[str, float] | None:
    """The first epoch whose *validation* accuracy reaches ``target`` and what it cost to get
    there, setup included (None if it never does)."""
    for record in history:
        if (record.get("val_accuracy") or 0.0) >= target:
            return {
                "epochs": record["epoch"],
                **{q: record[f"{q}_setup"] + record[f"{q}_training"] for q in TO_TARGET},
            }
    return None


def final_val_accuracy(history: list[dict[str, Any]]) -> float:
    """The validation accuracy of the last evaluated epoch."""
    values = [r["val_accuracy"] for r in history if r.get("val_accuracy") is not None]
    return values[-1] if values else 0.0


def common_target(histories: dict[str, list[list[dict[str, Any]]]]) -> float:
    """The lowest final validation accuracy (mean over seeds) among the entries."""
    return min(statistics.fmean(final_val_accuracy(h) for h in runs) for runs in histories.values())


def aggregate(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Mean ± std over the seeds of one entry (``runs``: summary + history per seed)."""
    out: dict[str, Any] = {"seeds": [r["summary"]["seed"] for r in runs]}
    acc = [r["summary"]["test_accuracy"] for r in runs]
    out["test_accuracy_mean"], out["test_accuracy_std"] = _mean_std(acc)
    out["test_accuracy_per_seed"] = acc
    for quantity in QUANTITIES:
        for suffix in PHASE_SUFFIXES:
            key = quantity + suffix
            out[key], out[f"{key}_std"] = _mean_std([float(r["summary"][key]) for r in runs])
    for quantity in ("digital_flops", "physical_queries", "device_time_s"):
        per_epoch = [r["summary"][f"{quantity}_training"] / r["summary"]["epochs"] for r in runs]
        key = f"{quantity}_per_epoch"
        out[key], out[f"{key}_std"] = _mean_std(per_epoch)
    ratios = [offloaded_ratio(r["summary"]) for r in runs]
    out["offloaded_per_learner_flop"], out["offloaded_per_learner_flop_std"] = _mean_std(ratios)
    reached = [c for c in (cost_to_target(r["history"], target) for r in runs) if c is not None]
    out["target_accuracy"] = target
    out["seeds_reaching_target"] = len(reached)
    for key, name in (
        ("epochs", "epochs_to_target"),
        ("digital_flops", "digital_flops_to_target"),
        ("wall_time_s", "wall_time_to_target_s"),
        ("projected_time_s", "projected_time_to_target_s"),
        ("physical_queries", "physical_queries_to_target"),
    ):
        out[name], out[f"{name}_std"] = _mean_std([c[key] for c in reached])
    out["epochs"] = runs[0]["summary"]["epochs"]
    out["model_free"] = runs[0]["summary"]["model_free"]
    first = runs[0]["summary"]
    for key in ("digital_flops_per_inference", "physical_queries_per_inference",
                "digital_parameters", "width", "blocks"):  # fmt: skip
        out[key] = first.get(key)  # the same for every seed: the architecture's
    details = runs[0]["summary"].get("rule_details") or {}
    if "twin_heldout_rel_mse" in details:
        out["twin_heldout_rel_mse"] = [
            r["summary"]["rule_details"]["twin_heldout_rel_mse"] for r in runs
        ]
    return out


def offloaded_ratio(summary: dict[str, Any]) -> float:
    """How much digital work the physics replaced per FLOP the learner spent (offloaded FLOPs
    over digital FLOPs, totals of one run; 0 for a run without digital work)."""
    learner = summary["digital_flops"]
    return summary["offloaded_flops"] / learner if learner else 0.0


def physics_gain(rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """PhyLL's (and unsupervised PhyLL's) test accuracy minus each control's, per seed and as
    mean ± std (same seeds)."""
    gains: dict[str, Any] = {}
    for key, (rule, control) in GAIN_CONTROLS.items():
        if rule not in rules or control not in rules:
            continue
        ours, theirs = rules[rule], rules[control]
        per_seed = [
            a - b
            for a, b in zip(
                ours["test_accuracy_per_seed"], theirs["test_accuracy_per_seed"], strict=True
            )
        ]
        mean, std = _mean_std(per_seed)
        gains[key] = {
            "rule": rule,
            "control": control,
            "per_seed": per_seed,
            "mean": mean,
            "std": std,
        }
    return gains


def gain_lines(gains: dict[str, Any]) -> str:
    """The physics gains as Markdown lines under the table."""
    lines = []
    for gain in gains.values():
        seeds = " / ".join(f"{100 * g:+.1f}" for g in gain["per_seed"])
        spread = f" ± {100 * gain['std']:.1f}" if len(gain["per_seed"]) > 1 else ""
        lines.append(
            f"Physics gain, {gain.get('rule', 'phyll')} − {gain['control']}: "
            f"{100 * gain['mean']:+.1f}{spread} "
            f"points (per seed: {seeds})."
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _pm(mean: float | None, std: float | None, fmt: str) -> str:
    if mean is None:
        return "—"
    return f"{mean:{fmt}}" if not std else f"{mean:{fmt}} ± {std:{fmt}}"


def markdown_table(rules: dict[str, dict[str, Any]], n_seeds: int) -> str:
    """The comparison as a Markdown table (mean ± std over seeds; costs are means).

    Cost columns per phase: *setup* (one-time: calibration, twin data and fit), *training*
    per epoch after setup, and what reaching the validation target cost, setup included
    (projected time: device time + digital time, see :mod:`phyll.accounting`); then the
    digital work the physics replaced (offloaded FLOPs, in total) and its ratio to the
    learner's digital FLOPs.
    """
    target = 100 * next(iter(rules.values()))["target_accuracy"]
    lines = [
        f"| rule | test accuracy (%) | epochs to {target:.1f} % val | digital FLOPs to target "
        "| projected time to target (s) | setup: queries · digital FLOPs "
        "| per training epoch: queries · digital FLOPs | evaluation queries | energy (J) "
        "| offloaded FLOPs | offloaded / learner FLOPs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rules.items():
        acc_mean = None if r["test_accuracy_mean"] is None else 100 * r["test_accuracy_mean"]
        acc_std = None if r["test_accuracy_std"] is None else 100 * r["test_accuracy_std"]
        reached = f" ({r['seeds_reaching_target']}/{n_seeds})"
        ratio = _pm(r["offloaded_per_learner_flop"], r["offloaded_per_learner_flop_std"], ".3g")
        lines.append(
            f"| {name} | {_pm(acc_mean, acc_std, '.1f')} "
            f"| {_pm(r['epochs_to_target'], r['epochs_to_target_std'], '.1f')}{reached} "
            f"| {_pm(r['digital_flops_to_target'], None, '.3g')} "
            f"| {_pm(r['projected_time_to_target_s'], None, '.3g')} "
            f"| {r['physical_queries_setup']:,.0f} · {r['digital_flops_setup']:.3g} "
            f"| {r['physical_queries_per_epoch']:,.0f} · {r['digital_flops_per_epoch']:.3g} "
            f"| {r['physical_queries_evaluation']:,.0f} "
            f"| {r['energy_j']:.3g} "
            f"| {r['offloaded_flops']:.3g} "
            f"| {ratio} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def _curves(histories: list[list[dict[str, Any]]], x_key: str) -> tuple[list, list, list]:
    n = min(len(h) for h in histories)
    xs = [statistics.fmean(h[i][x_key] for h in histories) for i in range(n)]
    accs = [[h[i].get("val_accuracy") or 0.0 for h in histories] for i in range(n)]
    mean = [statistics.fmean(a) for a in accs]
    std = [statistics.stdev(a) if len(a) > 1 else 0.0 for a in accs]
    return xs, mean, std


#: the comparison's figures: file name → (x record key, x label, log x)
FIGURES = {
    "accuracy_vs_epoch.png": ("epoch", "epoch", False),
    "accuracy_vs_flops.png": ("digital_flops_training", "training digital FLOPs", True),
}


def plot_comparison_figure(
    histories: dict[str, list[list[dict[str, Any]]]],
    name: str,
    target: Target,
    *,
    title: str,
    chance: float | None = None,
    best_epochs: dict[str, list[int]] | None = None,
) -> None:
    """One of :data:`FIGURES`: validation accuracy per entry, mean ± std band over seeds (no
    band for one seed), chance and each seed's selected epoch (a star on the mean curve)."""
    plt = pyplot()
    x_key, label, log = FIGURES[name]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plotted: list[float] = []
    for rule, runs in histories.items():
        xs, mean, std = _curves(runs, x_key)
        (line,) = ax.plot(xs, mean, marker=".", label=rule, **line_style(rule))
        if len(runs) > 1:
            low = [max(m - s, 0.0) for m, s in zip(mean, std, strict=True)]
            high = [min(m + s, 1.0) for m, s in zip(mean, std, strict=True)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.15)
            plotted += low + high
        plotted += mean
        for epoch in (best_epochs or {}).get(rule, []):
            if 1 <= epoch <= len(xs):
                mark_selected(ax, xs[epoch - 1], mean[epoch - 1], line.get_color(), "_")
    if best_epochs:
        ax.plot([], [], marker="*", ms=11, color="w", mec="k", ls="none", label="selected epoch")
    accuracy_axis(ax, plotted, chance, "validation accuracy")
    if log:
        ax.set(xscale="log", xlabel=label)
    else:
        epoch_axis(ax, label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, target)


def line_style(entry: str) -> dict[str, float]:
    """PhyLL's line is drawn on top of its rivals and controls, and thicker, so that it stays
    readable where the curves cross."""
    return {"zorder": 3.0, "lw": 2.2} if entry == "phyll" else {"zorder": 2.0, "lw": 1.4}


def comparison_title(dataset: str, system: str, n_seeds: int) -> str:
    """The comparison figures' title: the task, and the band's meaning for several seeds."""
    seeds = f" · mean ± std over {n_seeds} seeds" if n_seeds > 1 else " · 1 seed"
    return f"validation accuracy · {dataset} · {system}{seeds}"


@dataclasses.dataclass
class CompareConfig:
    """What ``phyll compare`` runs: every entry for every seed on ``base``. ``target`` (the
    validation accuracy of the cost-to-target columns; None: the lowest final one among the
    entries) only reads the runs, so it is not recorded: ``--resume`` takes it again."""

    base: TrainConfig
    entries: list[str]
    seeds: list[int]
    target: float | None = None

    def __post_init__(self) -> None:
        if self.target is not None and not 0.0 < self.target <= 1.0:
            raise ConfigError(f"--target must be in (0, 1], got {self.target}")

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.base.to_dict(), "entries": self.entries, "seeds": self.seeds}


def plan(config: CompareConfig) -> list[RunSpec]:
    """One run per entry and seed (the matched MLP's width solved once the names are known)."""
    check_rule_names(config.entries, VARIANTS)
    width = matched_mlp_width(config.base)[0] if "mlp-matched" in config.entries else None
    return [
        RunSpec(
            f"runs/{entry}-seed{seed}",
            entry_config(entry, config.base, seed, width),
            f"{entry} · seed {seed}",
            {"entry": entry},
        )
        for entry in config.entries
        for seed in config.seeds
    ]


def summarize(config: CompareConfig, runs: list[RunResult]) -> dict[str, Any]:
    """``summary.json``: mean ± std over seeds of every entry, the physics gains, the runs."""
    results: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        results.setdefault(run.spec.tags["entry"], []).append(
            {"summary": run.summary, "history": run.history, "dir": str(run.path)}
        )
    histories = {e: [r["history"] for r in entry_runs] for e, entry_runs in results.items()}
    goal = common_target(histories) if config.target is None else config.target
    rules = {e: aggregate(entry_runs, goal) for e, entry_runs in results.items()}
    return {
        "dataset": config.base.dataset,
        "system": config.base.system,
        "seeds": config.seeds,
        "target_accuracy": goal,
        "config": config.base.to_dict(),
        "rules": rules,
        "physics_gain": physics_gain(rules),
        "runs": {e: [r["dir"] for r in entry_runs] for e, entry_runs in results.items()},
    }


def page(summary: dict[str, Any]) -> str:
    """The table (``table.md``) and the physics gains under it."""
    table = markdown_table(summary["rules"], len(summary["seeds"]))
    gains = gain_lines(summary["physics_gain"])
    return table + ("\n" + gains if gains else "")


def figures(summary: dict[str, Any], out: Path) -> None:
    """``table.md`` and :data:`FIGURES`, from the summary and the runs' metrics."""
    write_text(out / "table.md", page(summary))
    runs = {e: [RunFolder(out / "runs" / Path(d).name) for d in dirs]
            for e, dirs in summary["runs"].items()}  # fmt: skip
    histories = {e: [r.read_metrics() for r in folders] for e, folders in runs.items()}
    finals = {e: [r.read_json(r.summary_file) for r in folders] for e, folders in runs.items()}
    title = comparison_title(summary["dataset"], summary["system"], len(summary["seeds"]))
    best = {e: [s["best_epoch"] for s in entry] for e, entry in finals.items()}
    chance = next(iter(finals.values()))[0].get("chance_accuracy")
    for name in FIGURES:
        plot_comparison_figure(
            histories, name, out / name, title=title, chance=chance, best_epochs=best
        )


def compare(
    base: TrainConfig,
    entries: list[str],
    seeds: list[int],
    out: str | Path,
    *,
    target: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every entry for every seed; write and return the comparison summary. A run
    already finished in the folder is kept and an interrupted one resumed (same
    configuration only), so an interrupted comparison picks up where it stopped;
    ``overwrite`` trains every run again."""
    config = CompareConfig(base, list(entries), list(seeds), target)
    return run_experiment(KIND, config, out, progress=progress, overwrite=overwrite)


# ---------------------------------------------------------------------- command line
def from_args(args: argparse.Namespace) -> CompareConfig:
    return CompareConfig(config_from_args(args), args.rules, seeds_of(args), args.target)


def from_record(data: dict[str, Any], args: argparse.Namespace) -> CompareConfig:
    base = TrainConfig.from_dict(data["config"])
    return CompareConfig(base, data["entries"], data["seeds"], args.target)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--rules``, seeds, ``--target``, then every training option."""
    p.add_argument(
        "--rules",
        action=ListAction,
        default=list(DEFAULT_RULES),
        metavar="RULE",
        help="rules to compare, comma-separated; also the variants phyll-nophysics (honesty "
        "ablation), phyll-readout, and the controls random-features (a digital random map "
        "|xR|² in place of every system), linear (logistic regression on the inputs), mlp "
        "(a digital MLP of the same widths), mlp-matched (a digital MLP whose digital FLOPs per "
        "inference equal PhyLL's, its width solved), linear with at least "
        f"{LINEAR_MIN_EPOCHS} epochs, dfa-frozen (DFA's readout on random blocks); "
        "phyll-unsup-nophysics and "
        "phyll-unsup-random-features for phyll-unsup "
        f"(default: {','.join(DEFAULT_RULES)})",
    )
    add_seeds_arguments(p, default=3)
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="validation accuracy for the cost-to-target columns (default: the lowest final "
        "validation accuracy among the rules compared)",
    )
    add_experiment_arguments(p, rule=False, seed=False)
    add_run_arguments(p, "comparison")


KIND = ExperimentKind(
    name="compare",
    help="compare learning rules on one task, architecture and set of seeds",
    description="Train every rule in --rules on the same data, physical systems, "
    "architecture and seeds; write a table, plots and summary.json.",
    folder=COMPARE,
    add_arguments=add_arguments,
    from_args=from_args,
    from_record=from_record,
    recorded_names=base_names,
    default_out=lambda c: Path("runs") / f"compare-{c.base.dataset}-{c.base.system}",
    plan=plan,
    summarize=summarize,
    figures=figures,
    page=page,
    result_file="summary.json",  # what the documentation and every user's script read
    legacy=lambda data: "rules" in data,  # before the format marker; a run's has none
)

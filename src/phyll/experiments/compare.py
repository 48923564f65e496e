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
import time
from pathlib import Path
from typing import Any

from phyll.atomic import atomic_write_bytes
from phyll.errors import ConfigError, did_you_mean
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    add_seeds_arguments,
    add_trust_argument,
    config_from_args,
    seeds_of,
    trust_of,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.matched import matched_mlp_width, mlp_config
from phyll.experiments.ownership import COMPARE, claim
from phyll.experiments.pipeline import sequential_if_needed
from phyll.experiments.run_folder import RunFolder, RunFolderError, output_folder
from phyll.experiments.train import check_configs, train, train_or_resume
from phyll.plotting import Target, accuracy_axis, epoch_axis, mark_selected, pyplot, save
from phyll.registry import RULES, check_recorded_names

#: the format marker of ``DIR/compare_config.json``, the comparison's marker file
FORMAT = "phyll-compare/1"
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
    if entry in VARIANTS:
        rule, overrides = VARIANTS[entry]
    elif entry in RULES:
        rule, overrides = entry, {}
    else:
        known = ", ".join([*sorted(RULES), *sorted(VARIANTS)])
        hint = did_you_mean(entry, [*RULES, *VARIANTS])
        raise ConfigError(f"unknown rule {entry!r} in --rules{hint}; choose from: {known}")
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
    folder = Path(out)
    claim(folder, COMPARE)  # nothing of the user's is written over, --overwrite included
    if (folder / "summary.json").exists() and not overwrite:
        raise RunFolderError(f"{folder} already holds a comparison: pass --overwrite")
    known = {*RULES, *VARIANTS}
    unknown = [e for e in entries if e not in known]
    if unknown:  # before the matched width is solved, which builds models
        entry_config(unknown[0], base, seeds[0])
    width = matched_mlp_width(base)[0] if "mlp-matched" in entries else None
    configs = {e: [entry_config(e, base, s, width) for s in seeds] for e in entries}
    check_configs(c[0] for c in configs.values())
    with output_folder(folder):
        marker = {"format": FORMAT, "config": base.to_dict(), "entries": entries, "seeds": seeds}
        RunFolder(folder).write_json(folder / COMPARE.marker, marker)  # first: the folder is ours
        (folder / "runs").mkdir(exist_ok=True)
        results: dict[str, list[dict[str, Any]]] = {}
        total, done = len(entries) * len(seeds), 0
        for entry, entry_configs in configs.items():
            results[entry] = []
            for config in entry_configs:
                done += 1
                run_dir = folder / "runs" / f"{entry}-seed{config.seed}"
                if progress:
                    print(f"[{done}/{total}] {entry} · seed {config.seed} → {run_dir}", flush=True)
                start = time.perf_counter()
                summary = (
                    train(config, run_dir, progress=progress, overwrite=True)
                    if overwrite
                    else train_or_resume(config, run_dir, progress=progress)
                )
                history = RunFolder(run_dir).read_metrics()
                results[entry].append({"summary": summary, "history": history, "dir": str(run_dir)})
                if progress:
                    print(
                        f"[{done}/{total}] {entry} · seed {config.seed}: test accuracy "
                        f"{summary['test_accuracy']:.3f} in {time.perf_counter() - start:.1f} s",
                        flush=True,
                    )
        histories = {e: [r["history"] for r in runs] for e, runs in results.items()}
        goal = common_target(histories) if target is None else target
        rules = {e: aggregate(runs, goal) for e, runs in results.items()}
        gains = physics_gain(rules)
        summary = {
            "dataset": base.dataset,
            "system": base.system,
            "seeds": seeds,
            "target_accuracy": goal,
            "config": base.to_dict(),
            "rules": rules,
            "physics_gain": gains,
            "runs": {e: [r["dir"] for r in runs] for e, runs in results.items()},
        }
        RunFolder(folder).write_json(folder / "summary.json", summary)
        table = markdown_table(rules, len(seeds))
        gain_text = gain_lines(gains)
        text = (table + ("\n" + gain_text if gain_text else "")).encode()
        atomic_write_bytes(folder / "table.md", lambda f: f.write(text))
        title = comparison_title(base.dataset, base.system, len(seeds))
        best = {e: [r["summary"]["best_epoch"] for r in runs] for e, runs in results.items()}
        chance = next(iter(results.values()))[0]["summary"].get("chance_accuracy")
        for name in FIGURES:
            plot_comparison_figure(
                histories, name, folder / name, title=title, chance=chance, best_epochs=best
            )
        return summary


# ---------------------------------------------------------------------- command line
def recorded_comparison(args: argparse.Namespace) -> tuple[TrainConfig, list[str], list[int]]:
    """The configuration, entries and seeds a comparison folder recorded (``--resume``), its
    system and rule imported only when built in or trusted (``--trust-code``)."""
    out = Path(args.resume)
    marker = out / COMPARE.marker
    if not marker.is_file():
        raise RunFolderError(f"{out} holds no comparison ({COMPARE.marker} missing)")
    recorded = RunFolder(out).read_json(marker)
    if not isinstance(recorded, dict) or recorded.get("format") != FORMAT:
        raise RunFolderError(f"{marker} is not a comparison record ({FORMAT})")
    names = [recorded["config"].get(k) for k in ("system", "rule")]
    check_recorded_names(*names, trust_of(args), str(marker))
    return TrainConfig.from_dict(recorded["config"]), recorded["entries"], recorded["seeds"]


def command_compare(args: argparse.Namespace) -> int:
    if args.resume:
        base, entries, seeds = recorded_comparison(args)
        out, target = Path(args.resume), args.target
    else:
        base, entries, seeds = config_from_args(args), args.rules, seeds_of(args)
        out = Path(args.out) if args.out else Path("runs") / f"compare-{base.dataset}-{base.system}"
        target = args.target
    if target is not None and not 0.0 < target <= 1.0:
        raise ConfigError(f"--target must be in (0, 1], got {target}")
    if args.resume and (out / "summary.json").exists():
        print(f"the comparison in {out} is finished")
    else:
        with output_folder(out.parent):  # missing parents made (and removed if it fails)
            compare(
                base, entries, seeds, out, target=target, overwrite=args.overwrite,
                progress=not args.quiet,
            )  # fmt: skip
    print((out / "table.md").read_text(), end="")
    print(f"comparison folder: {out}")
    return 0


def register(sub: Any) -> None:
    """Add ``phyll compare`` to the CLI."""
    p = sub.add_parser(
        "compare",
        help="compare learning rules on one task, architecture and set of seeds",
        description="Train every rule in --rules on the same data, physical systems, "
        "architecture and seeds; write a table, plots and summary.json.",
    )
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
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="finish the comparison in DIR with its recorded rules, seeds and options: "
        "finished runs are kept, interrupted ones resume from their checkpoints",
    )
    add_trust_argument(p, "comparison folder")
    p.set_defaults(func=command_compare)

"""``phyll robustness``: train while the physical systems change, for several learning rules.

For every requested rule (an unknown one is refused, as everywhere) and every scenario, the
same network (same seed, data split and initial weights) is trained for ``epochs`` epochs as
an ordinary, resumable run (``OUT/runs/RULE-SCENARIO``), with the test split measured after
every epoch (``test_curve``) for the curves:

* ``none``: the systems as built (the reference);
* ``step``: every block's system is wrapped in a
  :class:`~phyll.systems.faults.StepPerturbation` armed at the start of epoch
  ``perturb_epoch + 1``: from the next physical query on, the system is changed by ``strength``
  in its own perturbation unit (acoustic: °C of air temperature; microwave: cm of scatterer
  displacement; optical: medium decorrelation θ; default: the system's
  ``typical_perturbation``, 10 °C, 1 cm, θ = 0.3). The network trained so far is tested once
  right after the step, before any retraining (the damage), then training goes on (the
  recovery);
* ``drift``: every block's system is wrapped in a :class:`~phyll.systems.faults.Drift`: its
  perturbation parameter random-walks by ``drift_std`` per ``drift_per_queries`` queries
  (queries are the instrument's clock: setup, training and evaluation all advance it;
  default: a tenth of the typical step per 1000 queries).

The faults are part of each run's configuration (``faults``) and the step's arming is an
engine callback, so an interrupted robustness experiment resumes exactly
(``phyll robustness --resume OUT``): finished runs are kept, interrupted ones continue from
their checkpoints. A rule sees only the wrapped systems (PAT fits its twin before the
perturbation; in-silico transfer trains on ``system.nominal()`` and deploys on the changed
system). The *final* accuracy of a run is the mean test accuracy of its last ``final_window``
epochs (one epoch is noisy on small test sets). Output: ``robustness.json`` (every curve
plotted, the finals, the systems' perturbation units) and ``robustness.png`` (accuracy vs epoch
per rule, the perturbation marked).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from phyll.errors import ConfigError
from phyll.experiments.arguments import (
    ListAction,
    add_experiment_arguments,
    add_run_arguments,
    config_from_args,
)
from phyll.experiments.config import TrainConfig
from phyll.experiments.ownership import ROBUSTNESS
from phyll.experiments.protocol import ExperimentKind, RunResult, RunSpec, check_rule_names
from phyll.experiments.runner import run_experiment
from phyll.plotting import Target, accuracy_axis, epoch_axis, mark_selected, pyplot, save
from phyll.registry import system_factory

SCENARIOS = ("none", "step", "drift")
DEFAULT_RULES = ("phyll", "pat", "backprop-transfer")


@dataclasses.dataclass
class RobustnessConfig:
    """What ``phyll robustness`` runs (each run is an ordinary training run of ``train``)."""

    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    rules: tuple[str, ...] = DEFAULT_RULES
    scenarios: tuple[str, ...] = SCENARIOS
    strength: float | None = None  # default: the system's typical_perturbation
    perturb_epoch: int | None = None  # default: half the epochs
    drift_std: float | None = None  # default: typical_perturbation / 10 per 1000 queries
    drift_per_queries: int = 1000
    final_window: int = 3

    def __post_init__(self) -> None:
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown:
            raise ConfigError(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
        epochs = self.train.epochs
        if self.perturb_epoch is None:
            self.perturb_epoch = epochs // 2
        if not 1 <= self.perturb_epoch < epochs:
            raise ConfigError(
                f"perturb_epoch must be in [1, {epochs - 1}], got {self.perturb_epoch}"
            )
        typical = getattr(system_factory(self.train.system), "typical_perturbation", 1.0)
        if self.strength is None:
            self.strength = typical
        if self.drift_std is None:
            self.drift_std = 0.1 * typical
        if self.final_window < 1 or self.drift_std < 0 or self.drift_per_queries < 1:
            raise ConfigError("final_window >= 1, drift_std >= 0, drift_per_queries >= 1 required")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessConfig:
        values = {**data, "train": TrainConfig.from_dict(data["train"])}
        values["rules"], values["scenarios"] = tuple(data["rules"]), tuple(data["scenarios"])
        return cls(**values)

    def run_config(self, rule: str, scenario: str) -> TrainConfig:
        """The training run of ``rule`` under ``scenario``: faults on every block's system."""
        faults: list[dict[str, Any]] = []
        if scenario == "step":
            faults = [{"name": "step", "strength": self.strength, "at_epoch": self.perturb_epoch}]
        elif scenario == "drift":
            faults = [
                {"name": "drift", "std": self.drift_std, "per_queries": self.drift_per_queries}
            ]
        return dataclasses.replace(
            self.train, rule=rule, faults=[*self.train.faults, *faults], test_curve=True
        )


def plan(config: RobustnessConfig) -> list[RunSpec]:
    """One run per rule and scenario."""
    check_rule_names(config.rules)
    return [
        RunSpec(
            f"runs/{rule}-{scenario}",
            config.run_config(rule, scenario),
            f"{rule} · {scenario}",
            {"rule": rule, "scenario": scenario},
        )
        for rule in config.rules
        for scenario in config.scenarios
    ]


def scenario_record(run: RunResult, final_window: int) -> dict[str, Any]:
    """One run's curve (test accuracy measured every epoch) and finals."""
    summary = run.summary or {}
    curve = [
        {
            "epoch": m["epoch"],
            "loss": m["loss"],
            "val_accuracy": m.get("val_accuracy"),
            "test_accuracy": m.get("test_accuracy"),
            "displacement": m.get("displacement", []),
            "physical_queries": sum(
                m[f"physical_queries_{p}"] for p in ("setup", "training", "evaluation")
            ),
        }
        for m in run.history
    ]
    tail = [r["test_accuracy"] for r in curve[-final_window:]]
    return {
        "run": str(run.path),
        "curve": curve,
        "final_test_accuracy": sum(tail) / len(tail),
        "last_test_accuracy": curve[-1]["test_accuracy"],
        "selected_test_accuracy": summary["test_accuracy"],
        "best_epoch": summary["best_epoch"],
        "chance_accuracy": summary.get("chance_accuracy"),
        "applied_at_query": summary.get("applied_at_query"),
        "right_after_step": summary.get("right_after_step"),
    }


def summarize(config: RobustnessConfig, runs: list[RunResult]) -> dict[str, Any]:
    """``robustness.json``: the configuration, every run's curve and finals, and each run's
    gap to its rule's unperturbed run."""
    results: dict[str, dict[str, Any]] = {}
    for run in runs:
        rule, scenario = run.spec.tags["rule"], run.spec.tags["scenario"]
        results.setdefault(rule, {})[scenario] = scenario_record(run, config.final_window)
    for scenarios in results.values():
        if "none" in scenarios:
            ref = scenarios["none"]["final_test_accuracy"]
            for run_record in scenarios.values():
                run_record["gap_to_unperturbed"] = run_record["final_test_accuracy"] - ref
    unit = getattr(system_factory(config.train.system), "perturbation", "unknown")
    return {
        "config": {**config.to_dict(), "perturbation_unit": unit},
        "rules_run": list(config.rules),
        "results": results,
    }


def run_robustness(
    config: RobustnessConfig,
    out: str | Path,
    progress: bool = True,
    *,
    overwrite: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Every rule × scenario; writes ``robustness.json`` and ``.png`` into ``out``. ``reuse``
    keeps finished runs in ``out`` and resumes interrupted ones."""
    return run_experiment(KIND, config, out, progress=progress, overwrite=overwrite, resume=reuse)


def format_report(report: dict[str, Any]) -> str:
    """One line per rule and scenario: final accuracy and gap to the unperturbed run."""
    lines = [f"perturbation unit: {report['config']['perturbation_unit']}"]
    for rule, scenarios in report["results"].items():
        for scenario, run in scenarios.items():
            gap = run.get("gap_to_unperturbed")
            gap_text = "" if gap is None or scenario == "none" else f" ({100 * gap:+.1f} points)"
            after = run.get("right_after_step")
            after_text = (
                f"; right after the step {after['test_accuracy']:.3f}" if after is not None else ""
            )
            lines.append(
                f"{rule:>18} {scenario:>5}: final test accuracy "
                f"{run['final_test_accuracy']:.3f}{gap_text}{after_text}"
            )
    return "\n".join(lines)


def _plot_run(ax: Any, run: dict[str, Any], color: str, label: str, reference: bool) -> list:
    """One run's test curve (dashed: the unperturbed reference; else its selected epoch
    starred); returns the accuracies plotted."""
    epochs = [r["epoch"] for r in run["curve"]]
    accs = [r["test_accuracy"] for r in run["curve"]]
    if reference:
        ax.plot(epochs, accs, ls="--", color=color, alpha=0.6, label=label)
    else:
        ax.plot(epochs, accs, marker=".", color=color, label=label)
        if run.get("best_epoch") in epochs:
            best = run["best_epoch"]
            mark_selected(ax, best, accs[epochs.index(best)], color, "_")
    return accs


def plot_robustness(report: dict[str, Any], target: Target) -> None:
    """Test accuracy vs epoch per rule: one panel per changing scenario, reference dashed,
    chance and each run's selected epoch marked."""
    plt = pyplot()
    config = report["config"]
    panels = [s for s in config["scenarios"] if s != "none"] or ["none"]
    runs_of = list(report["results"].values())
    chance = next((r.get("chance_accuracy") for runs in runs_of for r in runs.values()), None)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, scenario in zip(axes[0], panels, strict=True):
        plotted: list[float | None] = []
        for i, (rule, runs) in enumerate(report["results"].items()):
            if "none" in runs and scenario != "none":
                plotted += _plot_run(ax, runs["none"], f"C{i}", f"{rule}, unperturbed", True)
            plotted += _plot_run(ax, runs[scenario], f"C{i}", f"{rule}, {scenario}", False)
        if scenario == "step":
            ax.axvline(config["perturb_epoch"] + 0.5, color="k", ls=":", label="perturbation")
            for i, runs in enumerate(runs_of):
                after = runs["step"]["right_after_step"]
                label = "right after the step (not retrained)" if i == 0 else None
                ax.plot([config["perturb_epoch"] + 0.5], [after["test_accuracy"]], marker="v",
                        color=f"C{i}", ls="none", label=label)  # fmt: skip
                plotted.append(after["test_accuracy"])
        ax.plot([], [], marker="*", ms=11, color="w", mec="k", ls="none", label="selected epoch")
        accuracy_axis(ax, plotted, chance, "test accuracy")
        epoch_axis(ax)
        title = {"step": "step perturbation", "drift": "continuous drift"}.get(scenario, "as built")
        ax.set_title(f"{title} · {config['train']['system']} · {config['train']['dataset']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, target)


def from_args(args: argparse.Namespace) -> RobustnessConfig:
    return RobustnessConfig(
        train=config_from_args(args), rules=tuple(args.rules),
        scenarios=tuple(args.scenarios), strength=args.strength,
        perturb_epoch=args.perturb_epoch, drift_std=args.drift_std,
        drift_per_queries=args.drift_per_queries, final_window=args.final_window,
    )  # fmt: skip


def recorded_names(data: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """The system and every rule a recorded experiment names (imported only when trusted)."""
    system = data["train"].get("system")
    return [(system, rule) for rule in [data["train"].get("rule"), *data.get("rules", [])]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    r = RobustnessConfig()
    add_experiment_arguments(p, rule=False)
    p.add_argument(
        "--rules",
        action=ListAction,
        default=list(DEFAULT_RULES),
        metavar="RULE",
        help=f"learning rules to compare, comma-separated (default: {','.join(DEFAULT_RULES)})",
    )
    p.add_argument(
        "--scenarios",
        action=ListAction,
        type=scenario_name,
        default=list(SCENARIOS),
        metavar="SCENARIO",
        help="none (reference), step (perturbation mid-training), drift (default: all)",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=None,
        help="step size in the system's perturbation unit: °C (acoustic), cm "
        "(microwave), medium decorrelation θ (optical) (default: the system's typical step: "
        "10 °C, 1 cm, θ = 0.3)",
    )
    p.add_argument(
        "--perturb-epoch",
        type=int,
        default=None,
        help="the step happens after this epoch (default: half the epochs)",
    )
    p.add_argument(
        "--drift-std",
        type=float,
        default=None,
        help="random-walk std per --drift-per-queries queries, in the system's "
        "perturbation unit (default: a tenth of the typical step)",
    )
    p.add_argument(
        "--drift-per-queries",
        type=int,
        default=r.drift_per_queries,
        help="queries over which the drift has std --drift-std (default: %(default)s)",
    )
    p.add_argument(
        "--final-window",
        type=int,
        default=r.final_window,
        help="final accuracy = mean test accuracy of the last N epochs (default: %(default)s)",
    )
    add_run_arguments(p, "robustness experiment (default: runs/robustness)")


KIND = ExperimentKind(
    name="robustness",
    help="train while the physical systems are perturbed or drift; compare rules",
    description="Train every requested rule with the systems as built (none), with a step "
    "perturbation mid-training (step) and with continuous drift (drift); plot test accuracy "
    "against epochs with the perturbation marked; write robustness.json and robustness.png.",
    folder=ROBUSTNESS,
    add_arguments=add_arguments,
    from_args=from_args,
    from_record=lambda data, args: RobustnessConfig.from_dict(data),
    recorded_names=recorded_names,
    default_out=lambda config: Path("runs/robustness"),
    plan=plan,
    summarize=summarize,
    figures=lambda report, out: plot_robustness(report, out / "robustness.png"),
    page=format_report,
)


def scenario_name(text: str) -> str:
    """argparse type: one of :data:`SCENARIOS`."""
    if text not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"invalid scenario {text!r} (choose from {', '.join(SCENARIOS)})"
        )
    return text

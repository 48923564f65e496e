"""``phyll robustness``: train while the physical systems change, for several learning rules.

For every requested rule (those in :data:`~phyll.learning.RULES`; missing ones are reported
and skipped) and every scenario, the same network (same seed, data split and initial weights)
is trained for ``epochs`` epochs and its test accuracy recorded after each epoch:

* ``none``: the systems as built (the reference);
* ``step``: every block's system is wrapped in a
  :class:`~phyll.systems.faults.StepPerturbation` armed after epoch ``perturb_epoch``: from the
  next physical query on, the system is changed by ``strength`` in its own perturbation unit
  (acoustic: °C of air temperature; microwave: cm of scatterer displacement; optical: medium
  decorrelation θ; default: the system's ``typical_perturbation``, 10 °C, 1 cm, θ = 0.3). The
  trained network is evaluated once right after the step, before any retraining (the damage),
  then training goes on (the recovery);
* ``drift``: every block's system is wrapped in a :class:`~phyll.systems.faults.Drift`: its
  perturbation parameter random-walks by ``drift_std`` per ``drift_per_queries`` queries
  (queries are the instrument's clock: training, twin data and evaluation all advance it;
  default: a tenth of the typical step per 1000 queries).

A rule sees only the wrapped systems (PAT fits its twin before the perturbation; in-silico
transfer trains on ``system.nominal()`` and deploys on the changed system). The *final*
accuracy of a run is the mean test accuracy of its last ``final_window`` epochs (one epoch is
noisy on small test sets). Output: ``robustness.json`` (every curve plotted, the finals, the
systems' perturbation units) and ``robustness.png`` (accuracy vs epoch per rule, the
perturbation marked).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

import phyll.plotting  # noqa: F401  (selects the Agg backend before pyplot is used)
from phyll.experiments.arguments import add_experiment_arguments, config_from_args
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import Trainer, build_experiment
from phyll.learning import RULES
from phyll.systems import SYSTEMS, PhysicalSystem, make_system
from phyll.systems.faults import Drift, StepPerturbation

SCENARIOS = ("none", "step", "drift")
DEFAULT_RULES = ("phyll", "pat", "backprop-transfer")


@dataclasses.dataclass
class RobustnessConfig:
    """What ``phyll robustness`` runs (the training itself is ``train``)."""

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
            raise ValueError(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
        epochs = self.train.epochs
        if self.perturb_epoch is None:
            self.perturb_epoch = epochs // 2
        if not 1 <= self.perturb_epoch < epochs:
            raise ValueError(
                f"perturb_epoch must be in [1, {epochs - 1}], got {self.perturb_epoch}"
            )
        if self.train.system not in SYSTEMS:
            raise ValueError(
                f"unknown system {self.train.system!r}; choose one of: {', '.join(sorted(SYSTEMS))}"
            )
        typical = SYSTEMS[self.train.system].typical_perturbation
        if self.strength is None:
            self.strength = typical
        if self.drift_std is None:
            self.drift_std = 0.1 * typical
        if self.final_window < 1 or self.drift_std < 0 or self.drift_per_queries < 1:
            raise ValueError("final_window >= 1, drift_std >= 0, drift_per_queries >= 1 required")


def available_rules(requested: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split the requested rule names into (available, unavailable)."""
    return [r for r in requested if r in RULES], [r for r in requested if r not in RULES]


def run_scenario(
    config: RobustnessConfig, rule: str, scenario: str, progress: bool = False
) -> dict[str, Any]:
    """Train ``rule`` under ``scenario``; return the per-epoch curve and the systems' changes."""
    cfg = dataclasses.replace(config.train, rule=rule)
    wrappers: list[StepPerturbation | Drift] = []

    def factory(i: int, n_in: int, n_out: int) -> PhysicalSystem:
        seed = 1000 * cfg.seed + i
        system = make_system(
            cfg.system, n_in, n_out, seed=seed, device=cfg.device, **cfg.system_params
        )
        if scenario == "step":
            wrappers.append(StepPerturbation(system, at_query=None, strength=config.strength))
        elif scenario == "drift":
            wrappers.append(
                Drift(system, config.drift_std, config.drift_per_queries, seed=seed + 11)
            )
        else:
            return system
        return wrappers[-1]

    trainer = Trainer(build_experiment(cfg, factory))
    curve: list[dict[str, Any]] = []
    right_after_step: dict[str, float | None] | None = None
    bar = tqdm(range(cfg.epochs), desc=f"{rule}/{scenario}", disable=not progress, unit="epoch")
    for epoch in bar:
        if scenario == "step" and epoch == config.perturb_epoch:
            for w in wrappers:
                w.schedule(w.queries)  # the next physical query meets the changed system
            right_after_step = trainer.evaluate()  # the trained network, not yet retrained
        loss = trainer.train_epoch()
        scores = trainer.evaluate()
        curve.append(
            {
                "epoch": epoch + 1,
                "loss": loss,
                **scores,
                "displacement": [w.displacement for w in wrappers],
                "physical_queries": trainer.train_meter.costs.physical_queries
                + trainer.eval_meter.costs.physical_queries,
            }
        )
        bar.set_postfix(test=f"{scores['test_accuracy']:.3f}")
    tail = [r["test_accuracy"] for r in curve[-config.final_window :]]
    return {
        "curve": curve,
        "final_test_accuracy": sum(tail) / len(tail),
        "last_test_accuracy": curve[-1]["test_accuracy"],
        "applied_at_query": [getattr(w, "applied_at", None) for w in wrappers],
        "right_after_step": right_after_step,
    }


def run_robustness(
    config: RobustnessConfig, out: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Every available rule × scenario; writes ``robustness.json`` and ``.png`` into ``out``."""
    rules, missing = available_rules(config.rules)
    for name in missing:
        print(
            f"phyll robustness: rule {name!r} is not available in this installation "
            f"(available: {', '.join(sorted(RULES))}); skipped",
            file=sys.stderr,
        )
    if not rules:
        raise ValueError(f"none of the rules {list(config.rules)} is available")
    results: dict[str, dict[str, Any]] = {}
    for rule in rules:
        results[rule] = {s: run_scenario(config, rule, s, progress) for s in config.scenarios}
        if "none" in config.scenarios:
            ref = results[rule]["none"]["final_test_accuracy"]
            for scenario in config.scenarios:
                run = results[rule][scenario]
                run["gap_to_unperturbed"] = run["final_test_accuracy"] - ref
    report = {
        "config": {
            **dataclasses.asdict(config),
            "perturbation_unit": SYSTEMS[config.train.system].perturbation,
        },
        "rules_run": rules,
        "rules_unavailable": missing,
        "results": results,
    }
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "robustness.json").write_text(json.dumps(report, indent=2))
        plot_robustness(report, folder / "robustness.png")
    return report


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


def plot_robustness(report: dict[str, Any], path: Path) -> None:
    """Test accuracy vs epoch per rule: one panel per changing scenario, reference dashed."""
    config = report["config"]
    panels = [s for s in config["scenarios"] if s != "none"] or ["none"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, scenario in zip(axes[0], panels, strict=True):
        for i, (rule, runs) in enumerate(report["results"].items()):
            color = f"C{i}"
            if "none" in runs and scenario != "none":
                ref = runs["none"]["curve"]
                ax.plot(
                    [r["epoch"] for r in ref],
                    [r["test_accuracy"] for r in ref],
                    ls="--",
                    color=color,
                    alpha=0.6,
                    label=f"{rule}, unperturbed",
                )
            run = runs[scenario]["curve"]
            ax.plot(
                [r["epoch"] for r in run],
                [r["test_accuracy"] for r in run],
                marker=".",
                color=color,
                label=f"{rule}, {scenario}",
            )
        if scenario == "step":
            ax.axvline(config["perturb_epoch"] + 0.5, color="k", ls=":", label="perturbation")
            for i, runs in enumerate(report["results"].values()):
                after = runs["step"]["right_after_step"]
                label = "right after the step (not retrained)" if i == 0 else None
                ax.plot([config["perturb_epoch"] + 0.5], [after["test_accuracy"]], marker="v",
                        color=f"C{i}", ls="none", label=label)  # fmt: skip
        title = {"step": "step perturbation", "drift": "continuous drift"}.get(scenario, "")
        ax.set(
            xlabel="epoch",
            ylabel="test accuracy",
            ylim=(0, 1.02),
            title=f"{title} · {config['train']['system']} · {config['train']['dataset']}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def command_robustness(args: argparse.Namespace) -> int:
    train_config = config_from_args(args)
    config = RobustnessConfig(
        train=train_config, rules=tuple(args.rules), scenarios=tuple(args.scenarios),
        strength=args.strength, perturb_epoch=args.perturb_epoch, drift_std=args.drift_std,
        drift_per_queries=args.drift_per_queries, final_window=args.final_window,
    )  # fmt: skip
    report = run_robustness(config, args.out, progress=not args.quiet)
    print(format_report(report))
    print(f"written: {Path(args.out) / 'robustness.json'}, {Path(args.out) / 'robustness.png'}")
    return 0


def register(sub: Any) -> None:
    """Add ``phyll robustness`` to the CLI."""
    r = RobustnessConfig()
    p = sub.add_parser(
        "robustness",
        help="train while the physical systems are perturbed or drift; compare rules",
        description="Train every requested rule with the systems as built (none), with a step "
        "perturbation mid-training (step) and with continuous drift (drift); plot test accuracy "
        "against epochs with the perturbation marked; write robustness.json and robustness.png.",
    )
    add_experiment_arguments(p, rule=False)
    p.add_argument(
        "--rules",
        nargs="+",
        default=list(DEFAULT_RULES),
        help="learning rules to compare; unavailable ones are reported and skipped "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
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
    p.add_argument(
        "--out",
        default="runs/robustness",
        help="folder for robustness.json and robustness.png (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=command_robustness)

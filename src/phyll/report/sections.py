"""What the report says about each kind of folder: headline, tables, figures, configuration.

A spread (``±``) is shown only where several seeds measured one; costs are per phase (setup,
training, evaluation) and in total, as every run's instrumentation records them.
"""

from __future__ import annotations

from typing import Any

from phyll.experiments.kinds import EXPERIMENT_KINDS
from phyll.report.figures import Figure
from phyll.report.html import (
    cards,
    config_list,
    details,
    esc,
    figures,
    note,
    num,
    pct,
    points,
    section,
    table,
    value_text,
)
from phyll.report.load import Experiment, best_trial

COSTS = (
    ("physical_queries", "physical queries"),
    ("digital_flops", "digital FLOPs"),
    ("device_time_s", "device time (s)"),
    ("projected_time_s", "projected time (s)"),
    ("wall_time_s", "wall time (s)"),
    ("energy_j", "energy (J)"),
)
PHASES = (("_setup", "setup"), ("_training", "training"), ("_evaluation", "evaluation"),
          ("", "total"))  # fmt: skip
COST_NOTE = (
    "Projected time = device time (what the hardware would take) + digital time; energy = "
    "device power × device time + digital FLOPs × 2.3 pJ. Wall time is this machine's."
)


def cost_table(entries: list[tuple[str, dict[str, Any]]]) -> str:
    """Costs per phase of each (label, summary-like mapping)."""
    rows = [
        [label if i == 0 else "", phase, *(num(costs.get(key + suffix)) for key, _ in COSTS)]
        for label, costs in entries
        for i, (suffix, phase) in enumerate(PHASES)
    ]
    return table(["", "phase", *(name for _, name in COSTS)], rows, labels=2) + note(COST_NOTE)


def figures_section(figs: list[Figure]) -> str:
    """The figures, if any."""
    return section("Figures", figures(figs)) if figs else ""


def run_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A run: headline accuracies, learning curve, costs per phase, configuration."""
    run = exp.runs["run"][0]
    s = run.summary
    headline = cards(
        [
            (pct(s.get("test_accuracy")), "test accuracy (selected epoch)"),
            (pct(s.get("chance_accuracy")), "chance"),
            (f"{s.get('best_epoch')} / {s.get('epochs')}", "selected epoch / epochs"),
            (pct(s.get("val_accuracy")), "validation accuracy"),
            (num(s.get("physical_queries")), "physical queries"),
        ]
    )
    config = {k: v for k, v in run.config.items() if k not in ("format", "resolved")}
    return f"{s.get('rule')} on {s.get('dataset')} with {s.get('system')}", [
        headline,
        figures_section(figs),
        section("Costs per phase", cost_table([("run", s)])),
        pipeline_section(s.get("pipeline_timeline")),
        section(
            "Configuration",
            config_list(config),
            details("what it resolved to", run.config.get("resolved", {})),
        ),
    ]


PIPELINE_NOTE = (
    "Busy: the seconds an actor spent in its tasks (training steps, prediction passes, its "
    "device's latency included); idle: the rest of the pipelined epochs' elapsed time "
    "(waiting for its predecessor, the driver, or the pipeline to fill and drain). The costs "
    "per phase add up every actor's work, as a sequential run would spend it."
)


def pipeline_section(timeline: dict[str, Any] | None) -> str:
    """A pipelined run's actors: busy and idle seconds per block (nothing for other runs)."""
    if not timeline:
        return ""
    rows = [
        [f"block {b['block']}", b.get("host") or "—", num(b.get("threads")), num(b["busy_s"]),
         num(b["idle_s"]), pct(b["utilisation"]), num(b["tasks"])]
        for b in timeline["blocks"]
    ]  # fmt: skip
    elapsed = timeline["elapsed_s"]
    rows.append(["driver", "—", "—", num(timeline["driver_busy_s"]),
                 num(max(elapsed - timeline["driver_busy_s"], 0.0)),
                 pct(timeline["driver_busy_s"] / elapsed if elapsed else None), "—"])  # fmt: skip
    headline = cards(
        [
            (f"{num(elapsed)} s", f"elapsed, pipelined ({timeline['mode']})"),
            (f"{num(timeline['startup_s'])} s", "starting the actors"),
            (num(timeline["restarts"]), "actor restarts"),
        ]
    )
    head = ["", "host", "torch threads", "busy (s)", "idle (s)", "busy", "tasks"]
    return section(
        "Pipeline: each block's actor", headline, table(head, rows, labels=2),
        note(PIPELINE_NOTE),
    )  # fmt: skip


def compare_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A comparison: accuracy per rule, physics gain over the controls, curves, costs."""
    data, rules = exp.data, exp.data["rules"]
    n_seeds = len(data["seeds"])
    several = n_seeds > 1
    rows = []
    for name, r in rules.items():
        accuracy = pct(r.get("test_accuracy_mean"), r.get("test_accuracy_std") if several else None)
        per_seed = [" / ".join(pct(a) for a in r.get("test_accuracy_per_seed", []))]
        reached = f"{num(r.get('epochs_to_target'))} ({r.get('seeds_reaching_target')}/{n_seeds})"
        per_epoch = [num(r.get(f"{q}_per_epoch")) for q in ("physical_queries", "digital_flops")]
        rows.append([name, accuracy, *(per_seed if several else []), reached, *per_epoch])
    head = [
        "rule",
        "test accuracy" + (" (mean ± std)" if several else ""),
        *(["per seed"] if several else []),
        f"epochs to {pct(data['target_accuracy'])} val (seeds reaching it)",
        "queries per training epoch",
        "digital FLOPs per training epoch",
    ]
    gain_rows = [
        [
            f"{g.get('rule', 'phyll')} − {g['control']}",
            points(g["mean"], g["std"] if several else None),
            " / ".join(points(v) for v in g["per_seed"]),
        ]
        for g in (data.get("physics_gain") or {}).values()
    ]
    gains = (
        table(["control", "physics gain", "per seed"], gain_rows)
        if gain_rows
        else note(
            "No controls in this comparison: add phyll-nophysics or random-features to --rules "
            "to measure the physics gain."
        )
    )
    headline = [
        (str(len(rules)), "rules"),
        (f"{n_seeds} seed{'s' if several else ''}", "seeds"),
        (pct(data["target_accuracy"]), "target validation accuracy"),
    ]
    config = {"rules": list(rules), "seeds": data["seeds"], **data.get("config", {})}
    return f"comparison on {data['dataset']} with {data['system']}", [
        cards(headline),
        section("Test accuracy", table(head, rows)),
        section("Physics gain and controls", gains),
        figures_section(figs),
        section(
            "Costs per phase" + (" (mean over seeds)" if several else ""),
            cost_table(list(rules.items())),
        ),
        section("Configuration", config_list(config)),
    ]


def robustness_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A robustness experiment: final accuracy per rule and scenario, the curves."""
    config, results = exp.data["config"], exp.data["results"]
    rows = []
    for rule, scenarios in results.items():
        for scenario, r in scenarios.items():
            after = (r.get("right_after_step") or {}).get("test_accuracy")
            gap = r.get("gap_to_unperturbed") if scenario != "none" else None
            final, selected = r.get("final_test_accuracy"), r.get("selected_test_accuracy")
            rows.append([rule, scenario, pct(final), points(gap), pct(after), pct(selected)])
    head = [
        "rule",
        "scenario",
        f"final test accuracy (last {config.get('final_window')} epochs)",
        "gap to unperturbed",
        "right after the step",
        "test accuracy, selected epoch",
    ]
    train = config.get("train", {})
    rest = {k: v for k, v in config.items() if k != "train"}
    return f"robustness on {train.get('dataset')} with {train.get('system')}", [
        note(f"Perturbation unit: {config.get('perturbation_unit')}."),
        section("Final accuracies", table(head, rows, labels=2)),
        figures_section(figs),
        section("Configuration", config_list({**rest, **train})),
    ]


def depth_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A depth experiment: accuracy, loss and costs per depth and seed, the curve."""
    data = exp.data
    head = [
        "blocks", "seed", "test (selected epoch)", "validation", "test (last epoch)",
        "selected epoch", "final loss", "losses finite", "training queries", "training FLOPs",
        "wall time (s)", "error",
    ]  # fmt: skip
    rows = [
        [
            r["blocks"],
            r["seed"],
            *(pct(r.get(k)) for k in ("test_accuracy", "val_accuracy", "last_test_accuracy")),
            f"{r.get('best_epoch')} / {r.get('epochs')}",
            num(r.get("final_loss")),
            "yes" if r.get("finite") else "no",
            *(num(r.get(k)) for k in ("physical_queries_training", "digital_flops_training")),
            num(r.get("wall_time_s")),
            r.get("error") or "",
        ]
        for r in data["runs"]
    ]
    cfg = data["config"]
    return f"depth on {cfg.get('dataset')} with {cfg.get('system')}", [
        section("Accuracy per depth", table(head, rows, labels=0)),
        figures_section(figs),
        section("Configuration", config_list({"seeds": data.get("seeds"), **cfg})),
    ]


def frontier_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A frontier: every point's accuracy and costs (best first), the Pareto front and the
    physics advantage, the figures."""
    data = exp.data
    head = [
        "point", "family", "test accuracy", "digital FLOPs / inference", "digital training FLOPs",
        "physical queries", "digital parameters", "Pareto front", "physics advantage",
    ]  # fmt: skip
    costs = (
        "digital_flops_per_inference",
        "digital_flops_training",
        "physical_queries",
        "digital_parameters",
    )

    def advantage(row: dict[str, Any]) -> str:
        value = row.get("physics_advantage")
        return "" if value is None else f"{100 * value:+.1f} pts"

    rows = [
        [
            r["name"],
            r["family"],
            pct(r["test_accuracy"]),
            *(num(r.get(k)) for k in costs),
            "yes" if r.get("pareto") else "",
            advantage(r),
        ]
        for r in sorted(data.get("points", []), key=lambda r: -r["test_accuracy"])
    ]
    best = data.get("physics_advantage") or {}
    on_front = ", ".join(best.get("pnn_on_front") or []) or "none"
    verdict = note(
        f"PNN points on the Pareto front of accuracy against digital FLOPs per inference: "
        f"{on_front}. Physics advantage: a PNN's accuracy minus the best digital model's at no "
        "more digital FLOPs per inference."
    )
    cfg = data["config"]
    return f"frontier on {cfg.get('dataset')} with {cfg.get('system')}", [
        section("Points", table(head, rows, labels=1) + verdict),
        figures_section(figs),
        section("Configuration", config_list({"seeds": data.get("seeds"), **cfg})),
    ]


TRIAL_COSTS = ("physical_queries", "digital_flops", "projected_time_s", "energy_j")


def sweep_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A sweep: search space, every trial (best first), accuracy against each parameter."""
    data, trials, best = exp.data, exp.data.get("trials", []), best_trial(exp.data)
    space = data.get("space") or {}
    metric = data.get("metric", "val_accuracy")
    sign = -1 if data.get("mode") == "min" else 1
    order = sorted(trials, key=lambda t: (t.get(metric) is None, -sign * (t.get(metric) or 0)))
    head = [
        "trial", *space, "status", "validation", "test", "selected epoch", "queries",
        "digital FLOPs", "projected time (s)", "energy (J)", "error",
    ]  # fmt: skip
    rows = [
        [
            t["id"],
            *(t.get("params", {}).get(n, "—") for n in space),
            t.get("status"),
            pct(t.get("val_accuracy")),
            pct(t.get("test_accuracy")),
            f"{t.get('best_epoch') or '—'} / {t.get('epochs') or '—'}",
            *(num((t.get("costs") or {}).get(k)) for k in TRIAL_COSTS),
            t.get("error") or "",
        ]
        for t in order
    ]
    done = sum(t.get("status") == "done" for t in trials)
    headline = [
        (f"{done} / {len(trials)}", "trials finished"),
        (pct(best.get(metric)) if best else "—", f"best {metric} ({best['id'] if best else '—'})"),
        (pct(best.get("test_accuracy")) if best else "—", "its test accuracy"),
        (num(data.get("wall_time_s")), "wall time (s)"),
    ]
    best_run = exp.runs.get("best", [])
    costs = (
        section(
            "Costs per phase of the best trial", cost_table([(best["id"], best_run[0].summary)])
        )
        if best and best_run
        else ""
    )
    config = {"metric": metric, "mode": data.get("mode"), **(data.get("base_config") or {})}
    space_rows = [[n, value_text(spec)] for n, spec in space.items()]
    trials_table = table(head, rows, labels=2 + len(space), best=0 if best else None)
    return f"sweep ({data.get('searcher')}, {data.get('engine')})", [
        cards(headline),
        section("Search space", table(["parameter", "values"], space_rows, labels=2)),
        section(f"Trials (best {metric} first)", trials_table),
        figures_section(figs),
        costs,
        section("Base configuration", config_list(config)),
    ]


def kind_page(exp: Experiment, figs: list[Figure]) -> tuple[str, list[str]]:
    """A kind without a page of its own here: the kind's text page, and its JSON."""
    text = EXPERIMENT_KINDS[exp.kind].page(exp.data)
    return f"{exp.kind} experiment", [
        section("Summary", f"<pre>{esc(text)}</pre>"),
        figures_section(figs),
        section("Data", details(f"{exp.kind}.json", exp.data)),
    ]


#: kind → its page: (title, body parts); any other kind gets :func:`kind_page`
PAGES = {
    "run": run_page,
    "compare": compare_page,
    "robustness": robustness_page,
    "depth": depth_page,
    "sweep": sweep_page,
    "frontier": frontier_page,
}

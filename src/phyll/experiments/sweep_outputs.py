"""What a sweep writes beside its trials: ``sweep.json``, ``sweep_table.md`` and ``sweep.png``.

``sweep.json`` (format ``phyll-sweep/1``) is the contract other tools read (``phyll report``):
the engine, searcher, metric, space and base configuration, the sweep's wall time and one
entry per trial with its parameters, status, accuracies, epochs and costs, and its run folder
relative to the sweep folder. Every number comes from the trial's own ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phyll.atomic import write_text
from phyll.plotting import Target, accuracy_axis, pyplot, save

#: summary keys copied into every finished trial's entry
SCORES = ("test_accuracy", "val_accuracy", "best_epoch", "epochs", "chance_accuracy")
COSTS = ("physical_queries", "digital_flops", "wall_time_s", "projected_time_s", "energy_j")


def trial_entry(
    trial: str,
    params: dict[str, Any],
    summary: dict[str, Any] | None,
    error: str | None = None,
) -> dict[str, Any]:
    """One trial of ``sweep.json``: ``done`` with a summary, ``error`` with a message, else
    ``pending``."""
    status = "done" if summary is not None else "error" if error else "pending"
    summary = summary or {}
    return {
        "id": trial,
        "params": params,
        "status": status,
        "error": None if summary else error,
        **{k: summary.get(k) for k in SCORES},
        "costs": {k: summary.get(k) for k in COSTS},
        "run_dir": f"trials/{trial}",
    }


def sweep_record(
    searcher: str,
    space: dict[str, Any],
    base_config: dict[str, Any],
    wall_time_s: float,
    trials: list[dict[str, Any]],
) -> dict[str, Any]:
    """The whole of ``sweep.json`` but its format marker (the runner's)."""
    return {
        "engine": "ray",
        "searcher": searcher,
        "metric": "val_accuracy",
        "mode": "max",
        "space": space,
        "base_config": base_config,
        "wall_time_s": wall_time_s,
        "trials": trials,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_table(record: dict[str, Any], path: Path) -> None:
    """``sweep_table.md``: one row per trial (parameters, status, accuracies, costs); the best
    finished trial by the sweep's metric is marked."""
    names = list(record["space"])
    done = [t for t in record["trials"] if t["status"] == "done" and t["val_accuracy"] is not None]
    best = max(done, key=lambda t: t["val_accuracy"])["id"] if done else None
    head = [
        "trial",
        *names,
        "status",
        "test acc.",
        "val. acc.",
        "best epoch",
        "epochs",
        "physical queries",
        "wall s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in record["trials"]:
        status = t["status"] if t["status"] != "error" else f"error: {t['error']}"
        cells = [
            f"**{t['id']}** (best)" if t["id"] == best else t["id"],
            *(_cell(t["params"].get(n)) for n in names),
            status.replace("|", "/"),
            *(_cell(t[k]) for k in SCORES),
            _cell(t["costs"]["physical_queries"]),
            _cell(t["costs"]["wall_time_s"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    title = f"# sweep: {len(record['trials'])} trials, {record['searcher']} search on Ray Tune\n\n"
    write_text(path, title + "\n".join(lines) + "\n")


def _parameter_axis(ax: Any, spec: dict[str, Any], values: list[Any]) -> list[float]:
    """x positions of a swept parameter's values: numbers as they are (log scale when drawn
    log-uniformly or spanning a decade or more), anything else as named categories."""
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        if "loguniform" in spec or (min(values) > 0 and max(values) >= 10 * min(values)):
            ax.set_xscale("log")
        return values
    labels = sorted({str(v) for v in values})
    ax.set_xticks(range(len(labels)), labels)
    return [labels.index(str(v)) for v in values]


def plot_sweep(sweep: dict[str, Any], target: Target, chance: float | None = None) -> None:
    """``sweep.png`` and the report's figure: test and validation accuracy of every finished
    trial against each swept parameter (one panel each; seeds are repetitions, not a
    parameter, so they get no panel; a log axis for log-uniform or positive values spanning
    ≥ 10×; anything else as named categories), chance drawn."""
    plt = pyplot()
    space = sweep.get("space") or {}
    names = [n for n in space if n != "seed"] or ["(none)"]
    done = [t for t in sweep.get("trials", []) if t.get("status") == "done"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        trials = [t for t in done if name in t.get("params", {})]
        xs = _parameter_axis(ax, space.get(name, {}), [t["params"][name] for t in trials])
        plotted = []
        for key, label, marker in (
            ("val_accuracy", "validation", "o"),
            ("test_accuracy", "test", "s"),
        ):
            points = [
                (x, t[key]) for x, t in zip(xs, trials, strict=True) if t.get(key) is not None
            ]
            ax.plot([x for x, _ in points], [y for _, y in points], marker, alpha=0.7, label=label)
            plotted += [y for _, y in points]
        accuracy_axis(ax, plotted, chance)
        ax.set(xlabel=name, title=f"accuracy against {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, target)

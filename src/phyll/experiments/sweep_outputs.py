"""What a sweep writes beside its trials: ``sweep.json``, ``sweep_table.md`` and ``sweep.png``.

``sweep.json`` (format ``phyll-sweep/1``) is the contract other tools read (``phyll report``):
the engine, searcher, metric, space and base configuration, the sweep's wall time and one
entry per trial with its parameters, status, accuracies, epochs and costs, and its run folder
relative to the sweep folder. Every number comes from the trial's own ``summary.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from phyll.atomic import atomic_write_bytes
from phyll.plotting import pyplot

FORMAT = "phyll-sweep/1"
#: summary keys copied into every finished trial's entry
SCORES = ("test_accuracy", "val_accuracy", "best_epoch", "epochs")
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
    """The whole of ``sweep.json``."""
    return {
        "format": FORMAT,
        "engine": "ray",
        "searcher": searcher,
        "metric": "val_accuracy",
        "mode": "max",
        "space": space,
        "base_config": base_config,
        "wall_time_s": wall_time_s,
        "trials": trials,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """A JSON file, written atomically."""
    text = json.dumps(data, indent=2).encode() + b"\n"
    atomic_write_bytes(path, lambda f: f.write(text))


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
    text = (title + "\n".join(lines) + "\n").encode()
    atomic_write_bytes(path, lambda f: f.write(text))


def plot_sweep(record: dict[str, Any], path: Path) -> None:
    """``sweep.png``: test and validation accuracy against each swept parameter (one panel
    each; a log axis for loguniform or positive grids spanning ≥ 10×; strings as categories)."""
    plt = pyplot()
    names = list(record["space"]) or ["trial"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    done = [t for t in record["trials"] if t["status"] == "done"]
    for ax, name in zip(axes[0], names, strict=True):
        xs = [t["params"].get(name, t["id"]) for t in done]
        categorical = any(not isinstance(x, int | float) or isinstance(x, bool) for x in xs)
        labels = sorted({str(x) for x in xs}) if categorical else []
        position = [labels.index(str(x)) for x in xs] if categorical else xs
        for key, label, marker in (("test_accuracy", "test", "o"), ("val_accuracy", "val.", "x")):
            ys = [math.nan if t[key] is None else t[key] for t in done]
            ax.scatter(position, ys, marker=marker, label=label, alpha=0.8)
        if categorical:
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        elif _log_axis(record["space"].get(name, {}), xs):
            ax.set_xscale("log")
        ax.set(xlabel=name, ylabel="accuracy", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(f"{len(done)} of {len(record['trials'])} trials done ({record['searcher']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_axis(spec: dict[str, Any], xs: list[Any]) -> bool:
    if "loguniform" in spec:
        return True
    positive = [x for x in xs if x > 0]
    return bool(xs) and len(positive) == len(xs) and max(positive) >= 10 * min(positive)

"""The report's figures, drawn afresh from the folder's records and embedded as base64 PNGs.

They are the figures the experiments write (``learning_curve.png``, the comparison's, robustness
and depth figures), drawn by the same functions, plus the sweep's accuracy against each swept
parameter.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phyll.experiments.compare import FIGURES, comparison_title, plot_comparison_figure
from phyll.experiments.depth import plot_depth
from phyll.experiments.frontier import FIGURES as FRONTIER_FIGURES
from phyll.experiments.frontier import plot_frontier
from phyll.experiments.robustness import plot_robustness
from phyll.plotting import Target, accuracy_axis, plot_learning_curve, pyplot, save
from phyll.report.load import Experiment, Run


@dataclass(frozen=True)
class Figure:
    """One embedded figure: its caption and its PNG bytes."""

    caption: str
    png: bytes

    @property
    def width(self) -> int:
        return int.from_bytes(self.png[16:20], "big")  # the PNG header's IHDR chunk

    @property
    def height(self) -> int:
        return int.from_bytes(self.png[20:24], "big")

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def draw(caption: str, plot: Callable[[Target], None]) -> Figure:
    """Run ``plot`` into memory."""
    buffer = io.BytesIO()
    plot(buffer)
    return Figure(caption, buffer.getvalue())


def learning_curve(run: Run, caption: str) -> Figure:
    s = run.summary
    title = f"{s.get('rule')} · {s.get('dataset')} · {s.get('system')}"
    return draw(caption, lambda t: plot_learning_curve(
        run.history, t, title, chance=s.get("chance_accuracy"), best_epoch=s.get("best_epoch")
    ))  # fmt: skip


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


def plot_sweep(sweep: dict[str, Any], target: Target, chance: float | None) -> None:
    """Test and validation accuracy of every finished trial against each swept parameter."""
    plt = pyplot()
    space = sweep.get("space") or {}
    names = list(space) or ["(none)"]
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


def compare_figures(exp: Experiment) -> list[Figure]:
    """The comparison's two figures, from its runs' records."""
    data, runs = exp.data, exp.runs
    histories = {e: [r.history for r in rs] for e, rs in runs.items()}
    best = {e: [r.summary["best_epoch"] for r in rs] for e, rs in runs.items()}
    chance = next((r.summary.get("chance_accuracy") for rs in runs.values() for r in rs), None)
    title = comparison_title(data["dataset"], data["system"], len(data["seeds"]))
    captions = {
        "accuracy_vs_epoch.png": "Validation accuracy per epoch.",
        "accuracy_vs_flops.png": "Validation accuracy against cumulative training FLOPs.",
    }

    def plotter(name: str) -> Callable[[Target], None]:
        return lambda t: plot_comparison_figure(
            histories, name, t, title=title, chance=chance, best_epochs=best
        )

    return [draw(captions[name], plotter(name)) for name in FIGURES] if histories else []


def figures(exp: Experiment) -> list[Figure]:
    """Every figure of ``exp``'s report, in page order."""
    data = exp.data
    if exp.kind == "run":
        return [learning_curve(exp.runs["run"][0], "Accuracy and training loss per epoch.")]
    if exp.kind == "compare":
        return compare_figures(exp)
    if exp.kind == "robustness":
        caption = "Test accuracy per epoch under each scenario."
        return [draw(caption, lambda t: plot_robustness(data, t))]
    if exp.kind == "frontier":
        return [
            draw(f"Test accuracy against {label}; Pareto-optimal points outlined.",
                 lambda t, key=key, label=label: plot_frontier(data, key, label, t))
            for _, key, label in FRONTIER_FIGURES
        ]  # fmt: skip
    if exp.kind == "depth":
        caption = "Accuracy against the number of physical blocks."
        return [draw(caption, lambda t: plot_depth(data, t))]
    best = exp.runs.get("best", [])
    chance = best[0].summary.get("chance_accuracy") if best else None
    caption = "Accuracy of every finished trial against each swept parameter."
    shown = [draw(caption, lambda t: plot_sweep(data, t, chance))]
    if best:
        shown.append(learning_curve(best[0], "The best trial's learning curve."))
    return shown

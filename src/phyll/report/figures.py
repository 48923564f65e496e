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

from phyll.experiments.compare import FIGURES, comparison_title, plot_comparison_figure
from phyll.experiments.depth import plot_depth
from phyll.experiments.frontier import FIGURES as FRONTIER_FIGURES
from phyll.experiments.frontier import plot_frontier
from phyll.experiments.pipeline import plot_timeline
from phyll.experiments.robustness import plot_robustness
from phyll.experiments.sweep_outputs import plot_sweep
from phyll.plotting import Target, plot_learning_curve
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
        run = exp.runs["run"][0]
        shown = [learning_curve(run, "Accuracy and training loss per epoch.")]
        timeline = run.summary.get("pipeline_timeline")
        if timeline:
            caption = "Each block actor's busy and idle time, over the run and per epoch."
            shown.append(draw(caption, lambda t: plot_timeline(timeline, run.history, t)))
        return shown
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
    if exp.kind != "sweep":
        return []  # a kind the report draws nothing for: its page shows its summary
    best = exp.runs.get("best", [])
    chance = best[0].summary.get("chance_accuracy") if best else None
    caption = "Accuracy of every finished trial against each swept parameter."
    shown = [draw(caption, lambda t: plot_sweep(data, t, chance))]
    if best:
        shown.append(learning_curve(best[0], "The best trial's learning curve."))
    return shown

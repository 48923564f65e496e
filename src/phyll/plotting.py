"""Figures of runs (matplotlib, Agg backend: no screen needed). Each plots JSON it is given.

Every figure is written as a PNG to a path or an open binary file (the HTML report embeds
them) and follows one convention: an accuracy axis is zoomed to the data, with chance (the
majority class's share of the test split) drawn where it lies near the data and named in the
legend where it lies far below (:func:`accuracy_axis`); an epoch axis has integer ticks; every
panel has a title.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: where a figure goes: a file path or an open binary file
Target = str | Path | IO[bytes]
#: the smallest accuracy range an axis shows (5 points)
MIN_RANGE = 0.05


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend, imported on first use: matplotlib costs
    about half a second to import, which a command that draws nothing should not pay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Figure, target: Target) -> None:
    """Write ``fig`` as a PNG to ``target`` and free it."""
    fig.tight_layout()
    fig.savefig(target, dpi=120, format="png")
    pyplot().close(fig)


def accuracy_axis(
    ax: Axes, values: Iterable[float | None], chance: float | None, label: str = "accuracy"
) -> None:
    """Zoom the y axis to the accuracies plotted (``values``) and show chance: as a line when
    it lies within one data span below the lowest value, else in the legend only."""
    data = [v for v in values if v is not None and math.isfinite(v)]
    low, high = (min(data), max(data)) if data else (0.0, 1.0)
    span = max(high - low, MIN_RANGE)
    if chance is not None:
        text = f"chance {100 * chance:.1f} %"
        if chance >= low - span:
            low, high = min(low, chance), max(high, chance)
            ax.axhline(chance, color="grey", ls=":", lw=1.5, label=text)
        else:
            ax.plot([], [], color="grey", ls=":", lw=1.5, label=f"{text} (below the axis)")
    if high - low < MIN_RANGE:  # never magnify noise of under 5 points to the full height
        middle = min(max((low + high) / 2, MIN_RANGE / 2), 1 - MIN_RANGE / 2)
        low, high = min(low, middle - MIN_RANGE / 2), max(high, middle + MIN_RANGE / 2)
    pad = 0.06 * (high - low)
    ax.set_ylim(low - pad, high + pad)
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.4g} %"))
    ax.set_ylabel(label)


def epoch_axis(ax: Axes, label: str = "epoch") -> None:
    """Integer ticks on the x axis (epochs, blocks)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def mark_selected(ax: Axes, epoch: int, accuracy: float | None, color: str, label: str) -> None:
    """A star at the selected (best-validation) epoch's accuracy."""
    if accuracy is not None:
        ax.plot([epoch], [accuracy], marker="*", ms=13, color=color, mec="k", mew=0.6,
                ls="none", label=label, zorder=5)  # fmt: skip


def plot_learning_curve(
    history: list[dict[str, Any]],
    target: Target,
    title: str,
    *,
    chance: float | None = None,
    best_epoch: int | None = None,
) -> None:
    """Accuracy (train subset, validation, test) and loss against epochs, chance and the
    selected epoch marked."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_acc, ax_loss) = pyplot().subplots(1, 2, figsize=(10, 4))
    plotted: list[float | None] = []
    val_color = "C0"
    for key, label in (
        ("train_accuracy", "train (subset)"),
        ("val_accuracy", "validation"),
        ("test_accuracy", "test"),
    ):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            (line,) = ax_acc.plot(epochs, values, marker=".", label=label)
            plotted += values
            val_color = line.get_color() if key == "val_accuracy" else val_color
    if best_epoch is not None:
        ax_acc.axvline(best_epoch, color="k", ls="--", lw=0.8, alpha=0.5)
        best = next((r.get("val_accuracy") for r in history if r["epoch"] == best_epoch), None)
        mark_selected(ax_acc, best_epoch, best, val_color, f"selected epoch {best_epoch}")
    accuracy_axis(ax_acc, plotted, chance)
    epoch_axis(ax_acc)
    ax_acc.set_title(title)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=9)
    ax_loss.plot(epochs, [r["loss"] for r in history], color="C3", marker=".")
    ax_loss.set(ylabel="mean local loss", yscale="log", title="training loss")
    epoch_axis(ax_loss)
    ax_loss.grid(alpha=0.3)
    save(fig, target)

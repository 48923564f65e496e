"""Figures of runs (matplotlib, Agg backend: no screen needed). Each plots JSON it is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_learning_curve(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy (train subset, validation, test) and loss against epochs."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (
        ("train_accuracy", "train (subset)"),
        ("val_accuracy", "validation"),
        ("test_accuracy", "test"),
    ):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            ax_acc.plot(epochs, values, marker=".", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=title)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    ax_loss.plot(epochs, [r["loss"] for r in history], color="C3")
    ax_loss.set(xlabel="epoch", ylabel="mean local loss", yscale="log", title="training loss")
    ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

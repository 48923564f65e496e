"""Where a pipelined run's time went: each block actor's busy and idle seconds, the driver's.

Busy time is what the workers measured around their tasks (training steps, prediction passes);
elapsed time is the driver's clock over the pipelined epochs (actor start-up excluded, counted
apart). A block is idle while it waits for its predecessor's output, for the driver, or at the
ends of the run. The record is part of the engine's checkpoint, so a resumed run adds to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from phyll.plotting import Target, epoch_axis, pyplot, save


@dataclass
class Timeline:
    """Busy seconds per block and for the driver, elapsed seconds, tasks per block, each
    block actor's host and torch threads."""

    busy_s: list[float]
    tasks: list[int]
    driver_busy_s: float = 0.0
    elapsed_s: float = 0.0
    startup_s: float = 0.0
    restarts: int = 0
    hosts: list[str] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, blocks: int) -> Timeline:
        return cls([0.0] * blocks, [0] * blocks)

    def add_task(self, block: int, seconds: float, tasks: int = 1) -> None:
        self.busy_s[block] += seconds
        self.tasks[block] += tasks

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def summary(self, mode: str) -> dict[str, Any]:
        """The summary's ``pipeline_timeline``: per block busy, idle and utilisation."""
        elapsed = self.elapsed_s
        return {
            "mode": mode,
            "elapsed_s": elapsed,
            "startup_s": self.startup_s,
            "driver_busy_s": self.driver_busy_s,
            "restarts": self.restarts,
            "blocks": [
                {
                    "block": i,
                    "busy_s": busy,
                    "idle_s": max(elapsed - busy, 0.0),
                    "utilisation": busy / elapsed if elapsed > 0 else None,
                    "tasks": n,
                    "host": self.hosts[i] if i < len(self.hosts) else "",
                    "threads": self.threads[i] if i < len(self.threads) else None,
                }
                for i, (busy, n) in enumerate(zip(self.busy_s, self.tasks, strict=True))
            ],
        }


def plot_timeline(timeline: dict[str, Any], history: list[dict[str, Any]], target: Target) -> None:
    """Busy and idle seconds of every block actor (and the driver) over the run; with
    per-epoch records, each block's utilisation per epoch."""
    blocks = timeline["blocks"]
    per_epoch = [r for r in history if "pipeline_busy_s" in r and "pipeline_elapsed_s" in r]
    fig, axes = pyplot().subplots(1, 2 if per_epoch else 1, figsize=(11 if per_epoch else 6, 3.8))
    ax = axes[0] if per_epoch else axes
    names = [f"block {b['block']}" for b in blocks] + ["driver"]
    busy = [b["busy_s"] for b in blocks] + [timeline["driver_busy_s"]]
    idle = [max(timeline["elapsed_s"] - s, 0.0) for s in busy]
    ax.barh(names, busy, color="tab:blue", label="busy")
    ax.barh(names, idle, left=busy, color="lightgrey", label="idle")
    ax.invert_yaxis()
    ax.set(
        xlabel="seconds", title=f"actors over {timeline['elapsed_s']:.1f} s ({timeline['mode']})"
    )
    ax.legend(fontsize=8, loc="lower right")
    if per_epoch:
        ax = axes[1]
        epochs = [r["epoch"] for r in per_epoch]
        previous = {"busy": [0.0] * len(blocks), "elapsed": 0.0}
        shares: list[list[float]] = [[] for _ in blocks]
        for record in per_epoch:
            span = record["pipeline_elapsed_s"] - previous["elapsed"]
            for i, busy_now in enumerate(record["pipeline_busy_s"]):
                delta = busy_now - previous["busy"][i]
                shares[i].append(100 * delta / span if span > 0 else 0.0)
            previous = {"busy": record["pipeline_busy_s"], "elapsed": record["pipeline_elapsed_s"]}
        for i, values in enumerate(shares):
            ax.plot(epochs, values, marker="o", ms=3, label=f"block {i}")
        epoch_axis(ax)
        ax.set(ylabel="busy (% of the epoch)", title="each block's utilisation per epoch")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    save(fig, target)

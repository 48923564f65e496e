"""Markdown tables of every comparison under a folder (``*/summary.json``), as in docs/results.md.

One table per comparison: each entry's test accuracy per seed and mean ± std, its digital
FLOPs and physical queries per training epoch, and the FLOPs its physical queries offloaded per
FLOP the learner spent; then the physics gains. Run::

    python benchmarks/gain_tables.py runs/physics-gain
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from phyll.experiments.compare import gain_lines


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def table(summary: dict) -> str:
    lines = [
        "| entry | test accuracy per seed (%) | mean ± std (%) | digital FLOPs / epoch "
        "| physical queries / epoch | offloaded / learner FLOPs |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in summary["rules"].items():
        seeds = " / ".join(pct(a) for a in r["test_accuracy_per_seed"])
        spread = f" ± {pct(r['test_accuracy_std'])}" if r["test_accuracy_std"] else ""
        lines.append(
            f"| `{name}` | {seeds} | {pct(r['test_accuracy_mean'])}{spread} "
            f"| {r['digital_flops_per_epoch']:.2g} | {r['physical_queries_per_epoch']:,.0f} "
            f"| {r['offloaded_per_learner_flop']:.2g} |"
        )
    return "\n".join(lines) + "\n\n" + gain_lines(summary["physics_gain"])


def main(folder: str) -> None:
    for path in sorted(Path(folder).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        epochs = summary["config"]["epochs"]
        print(f"### {path.parent.name}: {summary['dataset']}, {summary['system']}, {epochs} epochs")
        print(table(summary))


if __name__ == "__main__":
    main(sys.argv[1])

"""Wall time of a 16-trial ``phyll sweep`` on Ray against the same 16 runs one after another.

Run: ``python benchmarks/sweep_speedup.py`` (needs ``pip install -e ".[ray]"``). Not a test: it
prints the figures docs/experiments.md quotes, with the machine's load (``os.getloadavg``)
before and after, because a shared machine's figures mean little without it.

The sweep is 4 learning rates × 4 seeds of PhyLL on the embedded vowels (default network,
``--epochs``), one CPU and one torch thread per trial, on a local Ray instance that the sweep
starts and stops (its start is part of the figure). The baseline trains the same 16
configurations with :func:`phyll.experiments.train.train` in this one process, one after
another, with torch's default thread count (what ``phyll train`` uses). Both write ordinary
run folders; the script checks that the two give the same test accuracy for every trial.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from phyll.experiments.config import TrainConfig
from phyll.experiments.ray_executor import Resources
from phyll.experiments.sweep import Sweep, run_sweep
from phyll.experiments.sweep_space import apply, grid_points, parse_space
from phyll.experiments.train import train

LRS = "lr=0.001,0.003,0.01,0.03"
SEEDS = "seed=0,1,2,3"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-concurrent", type=int, default=None)
    args = parser.parse_args()
    base = TrainConfig(dataset="vowels", epochs=args.epochs)
    params = [LRS, SEEDS]
    axes = parse_space(params, base)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"load before: {load()} (cores: {os.cpu_count()})", flush=True)
        started = time.perf_counter()
        resources = Resources(max_concurrent=args.max_concurrent)
        record = run_sweep(Sweep(base, params, "grid", 1), Path(tmp) / "sweep", resources)
        ray_s = time.perf_counter() - started
        print(f"ray sweep: {ray_s:.1f} s for {len(record['trials'])} trials (load {load()})")

        started = time.perf_counter()
        sequential = []
        for i, point in enumerate(grid_points(axes)):
            out = Path(tmp) / "sequential" / f"run-{i:02d}"
            out.parent.mkdir(exist_ok=True)
            sequential.append(train(apply(base, axes, point), out, progress=False))
        seq_s = time.perf_counter() - started
        print(
            f"sequential: {seq_s:.1f} s for {len(sequential)} runs "
            f"({torch.get_num_threads()} torch threads, load {load()})"
        )
    same = [
        t["test_accuracy"] == s["test_accuracy"]
        for t, s in zip(record["trials"], sequential, strict=True)
    ]
    print(f"same test accuracy in {sum(same)} of {len(same)} trials")
    print(json.dumps({"ray_s": round(ray_s, 1), "sequential_s": round(seq_s, 1),
                      "speedup": round(seq_s / ray_s, 2), "load_after": load()}))  # fmt: skip


if __name__ == "__main__":
    main()

"""Throughput of the simulated physical systems and the wall time of one PhyLL epoch.

Run: ``python benchmarks/throughput.py`` (CPU; add ``--device cuda`` on a GPU machine).
Not a test: it prints figures that the README quotes.
"""

from __future__ import annotations

import argparse
import time

import torch

from phyll.engine import Engine
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.registry import SYSTEMS, make_system

#: the simulators (``remote`` needs a running server: benchmarks/remote_latency.py measures it)
SIMULATED = sorted(name for name in SYSTEMS if name != "remote")


def system_throughput(name: str, device: str, batch: int = 1024, repeats: int = 20) -> float:
    """Samples per second of ``name``'s forward (64 drive channels → 128 measurements)."""
    system = make_system(name, 64, 128, device=device)
    drive = torch.rand(batch, 64, device=device)
    system(drive)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        system(drive)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def phyll_epoch_seconds(
    dataset: str, device: str, system: str = "acoustic", epochs: int = 3
) -> float:
    """Median wall time of one PhyLL training epoch (default architecture, instrumentation on)."""
    config = TrainConfig(dataset=dataset, system=system, device=device)
    exp = build_experiment(config)
    engine = Engine(exp.model, exp.rule, exp.splits, epochs=epochs, batch_size=config.batch_size)
    times = []
    for _ in range(epochs):
        before = engine.meters["training"].costs.wall_time_s
        engine.train_epoch()
        times.append(engine.meters["training"].costs.wall_time_s - before)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for name in SIMULATED:
        rate = system_throughput(name, args.device)
        print(f"{name:>10} forward, batch 1024, 64→128 channels: {rate:,.0f} samples/s")
    for name in SIMULATED:
        for dataset in ("vowels", "digits"):
            seconds = phyll_epoch_seconds(dataset, args.device, name)
            print(f"PhyLL epoch on {dataset} (2 {name} blocks, default config): {seconds:.2f} s")


if __name__ == "__main__":
    main()

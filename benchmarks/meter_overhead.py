"""What the cost meter adds to a training step: metered against bare steps, side by side.

Run: ``python benchmarks/meter_overhead.py [--dataset vowels] [--system acoustic]
[--steps 200] [--rounds 7] [--threads 1]``. Not a test: it prints the machine's load and torch's
thread count with the figures, because timings on a busy machine mean little.

One process builds the default run of the dataset (``TrainConfig``'s profile: for vowels, PhyLL
on two acoustic blocks, batch 32) and times ``rule.train_step`` on the same batches, in rounds
that alternate a *bare* pass (no meter: what the step costs) and a *metered* pass (the engine's
training meter with the rule's step signature, as :class:`phyll.engine.Engine` runs it). The
overhead is the median over rounds of metered / bare time. Both arms run the same number of
steps from the same state, so the comparison holds whatever the learning does. The last line
is ``overhead=X.XX``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from phyll.accounting import Meter
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="vowels")
    parser.add_argument("--system", default="acoustic")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--steps", type=int, default=200, help="steps per arm and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig(dataset=args.dataset, system=args.system, data_path=args.data_path)
    exp = build_experiment(config)
    for system in exp.systems:  # counted once, before any meter, as the engine does
        _ = system.emulation_flops_per_query
    x, y = exp.splits.x_train, exp.splits.y_train
    batches = [
        (x[i : i + config.batch_size], y[i : i + config.batch_size])
        for i in range(0, len(y) - config.batch_size + 1, config.batch_size)
    ]
    meter = Meter()

    def bare() -> float:
        start = time.perf_counter()
        for i in range(args.steps):
            exp.rule.train_step(*batches[i % len(batches)])
        return time.perf_counter() - start

    def metered() -> float:
        start = time.perf_counter()
        for i in range(args.steps):
            xb, yb = batches[i % len(batches)]
            with meter.measure(exp.rule.step_signature(xb, yb)):
                exp.rule.train_step(xb, yb)
        return time.perf_counter() - start

    bare(), metered()  # warm-up: allocator, caches, the first counted steps
    print(f"load average before: {os.getloadavg()}, torch threads: {torch.get_num_threads()}")
    ratios, bare_ms, metered_ms = [], [], []
    for _ in range(args.rounds):
        b, m = bare(), metered()
        ratios.append(m / b)
        bare_ms.append(1e3 * b / args.steps)
        metered_ms.append(1e3 * m / args.steps)
    print(f"load average after: {os.getloadavg()}")
    print(
        f"{args.dataset}/{args.system}, batch {config.batch_size}: bare "
        f"{statistics.median(bare_ms):.3f} ms/step, metered {statistics.median(metered_ms):.3f} "
        f"ms/step; {meter.costs.digital_flops:,} FLOPs metered"
    )
    print(f"overhead={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

"""torch threads against machine load: what ``--threads auto`` is chosen from.

Run: ``python benchmarks/threads.py [--steps 40]`` on an otherwise idle machine (it makes its
own load). For each busy-core count (0 … cores, each a spinning process) and each thread count
(1 … cores), it times training steps of the default vowels network (acoustic, batch 32) and of
the mnist5k optical network (batch 64, 4,096 camera pixels) in one process, and prints ms per
step with the load average. Two torch threads on two busy cores can be many times slower than
one: that is what ``auto`` (the cores the load average leaves idle) avoids.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import torch

from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.machine import available_cores


def spin(stop: multiprocessing.synchronize.Event) -> None:
    """Keep one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x += 1


def step_time(exp, steps: int) -> float:
    """Median-free mean ms per step over ``steps`` steps after two warm-up steps."""
    x, y = exp.splits.x_train, exp.splits.y_train
    batch = exp.config.batch_size
    for i in range(2):
        exp.rule.train_step(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch])
    start = time.perf_counter()
    for i in range(steps):
        j = (i % (len(y) // batch)) * batch
        exp.rule.train_step(x[j : j + batch], y[j : j + batch])
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    cores = available_cores()
    tasks = {
        "vowels/acoustic": build_experiment(TrainConfig()),
        "mnist5k/optical": build_experiment(TrainConfig(dataset="mnist5k", system="optical")),
    }
    print(f"cores: {cores}, load average at start: {os.getloadavg()}")
    print("busy cores | threads | " + " | ".join(f"{t} ms/step" for t in tasks) + " | load")
    for busy in range(cores + 1):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(busy)]
        for p in spinners:
            p.start()
        time.sleep(1.0)
        try:
            for threads in range(1, cores + 1):
                torch.set_num_threads(threads)
                times = [step_time(exp, args.steps) for exp in tasks.values()]
                cells = " | ".join(f"{t:.1f}" for t in times)
                print(f"{busy} | {threads} | {cells} | {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            stop.set()
            for p in spinners:
                p.join()


if __name__ == "__main__":
    main()

"""Block-parallel PhyLL on Ray against sequential training, on latency-bound devices.

Trains PhyLL with 4 blocks on the 7-vowel task, every block's system behind a device that adds
5 ms of latency per call (the ``latency`` fault wrapper: a slow instrument), once sequentially
and once pipelined (``pipeline="ray"``: one Ray actor per block), same seed, and prints the
wall time of each training run (built, trained, evaluated and tested), the speed-up and the
test-accuracy difference. The last line is ``speedup=X accuracy_delta=Y``.

The actors are started once before the timed runs, by a one-epoch warm-up run (as in a long
run, their start-up is paid once per process); that start-up is printed apart. The two runs are
timed ``--repeat`` times (3 by default), alternating (sequential, pipelined, sequential, ...) so
that both meet the same machine; each keeps its fastest, the usual estimate of a run's cost on a
shared machine (other processes only ever add time: see :mod:`timeit`). Every time is printed,
and the speed-up of each pair, beside the one of the fastest runs. Options:

* ``--sync``: also time ``--pipeline-sync`` (one task at a time: the pipeline's overhead);
* ``--throughput 1,2,4,8``: training throughput (samples per second) against the number of
  blocks, sequential and pipelined (``--throughput-epochs`` epochs each), printed as a table
  before the last line;
* ``--baselines``: PAT and in-silico backprop on the same devices, sequentially (they cannot
  pipeline: each step's backward pass runs through every block).

Run it on an idle machine: ``OMP_NUM_THREADS=1 python benchmarks/pipeline_speedup.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from typing import Any

import torch

from phyll.experiments.config import TrainConfig
from phyll.experiments.pipeline.actors import connect
from phyll.experiments.train import train


def config_for(args: argparse.Namespace, **changes: Any) -> TrainConfig:
    """The benchmark's run: PhyLL on vowels, every block behind a latency-bound device."""
    latency = {"name": "latency", "per_call_s": args.latency_ms / 1000}
    base = TrainConfig(
        dataset="vowels",
        blocks=args.blocks,
        epochs=args.epochs,
        seed=args.seed,
        faults=[latency],
        checkpoint_every=0,
    )
    return dataclasses.replace(base, **changes)


def timed(config: TrainConfig) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one training run (no run folder) and its summary."""
    started = time.perf_counter()
    summary = train(config, progress=False)
    return time.perf_counter() - started, summary


def timed_pairs(
    configs: list[TrainConfig], repeat: int
) -> list[tuple[list[float], dict[str, Any]]]:
    """Each config's wall seconds over ``repeat`` rounds (the configs alternate within a round,
    so that all meet the same machine), and the summary of its fastest run."""
    times: list[list[float]] = [[] for _ in configs]
    fastest: list[tuple[float, dict[str, Any]]] = [(math.inf, {}) for _ in configs]
    for _ in range(repeat):
        for i, config in enumerate(configs):
            seconds, summary = timed(config)
            times[i].append(seconds)
            if seconds < fastest[i][0]:
                fastest[i] = (seconds, summary)
    return [(t, f[1]) for t, f in zip(times, fastest, strict=True)]


def seconds_list(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def phases(summary: dict[str, Any]) -> str:
    """Physical queries and wall time per phase of a run (a pipelined run's wall time per
    phase is its actors' busy time: the work a sequential run does)."""
    walls = ", ".join(
        f"{phase} {summary[f'wall_time_s_{phase}']:.1f} s"
        for phase in ("setup", "training", "evaluation")
    )
    return f"{summary['physical_queries']:,} queries; wall time per phase: {walls}"


def throughput_table(args: argparse.Namespace) -> list[str]:
    """Training samples per second of run (training, evaluation and test included) against the
    number of blocks, sequential and pipelined (each the fastest of ``--repeat`` runs)."""
    lines = [
        "| blocks | sequential (samples/s) | pipelined (samples/s) | speed-up | "
        "busiest actor's utilisation |",
        "|---:|---:|---:|---:|---:|",
    ]
    for blocks in args.throughput:
        config = config_for(args, blocks=blocks, epochs=args.throughput_epochs)
        timed(dataclasses.replace(config, pipeline="ray", epochs=1))  # actors for this size
        (seq_times, seq), (pipe_times, pipe) = timed_pairs(
            [config, dataclasses.replace(config, pipeline="ray")], args.repeat
        )
        seq_s, pipe_s = min(seq_times), min(pipe_times)
        samples = seq["epochs"] * len_train(seq)
        use = max(b["utilisation"] for b in pipe["pipeline_timeline"]["blocks"])
        lines.append(
            f"| {blocks} | {samples / seq_s:.0f} | {samples / pipe_s:.0f} | "
            f"{seq_s / pipe_s:.2f} | {100 * use:.0f} % |"
        )
    return lines


def len_train(summary: dict[str, Any]) -> int:
    """Training samples per epoch of a run (its training queries / (2 × blocks × epochs))."""
    blocks = len(summary["queries_per_system"])
    return summary["physical_queries_training"] // (2 * blocks * summary["epochs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="time each run this many times (alternating), keep the fastest",
    )
    parser.add_argument("--sync", action="store_true", help="also time --pipeline-sync")
    parser.add_argument("--baselines", action="store_true", help="also time PAT and backprop")
    parser.add_argument(
        "--throughput",
        type=lambda s: [int(b) for b in s.split(",")],
        default=[],
        metavar="B1,B2,...",
        help="also the throughput table for these block counts, e.g. 1,2,4,8",
    )
    parser.add_argument("--throughput-epochs", type=int, default=10)
    args = parser.parse_args()

    connect(None)  # the local Ray instance as `phyll train --pipeline ray` starts it
    print(
        f"# {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, torch threads "
        f"{torch.get_num_threads()}; PhyLL, vowels, {args.blocks} blocks, "
        f"{args.latency_ms:g} ms per device call, {args.epochs} epochs, seed {args.seed}, "
        f"fastest of {args.repeat}"
    )
    warm_s, _ = timed(config_for(args, pipeline="ray", epochs=1))
    print(f"actors started (warm-up run of 1 epoch): {warm_s:.1f} s")
    (seq_times, seq), (pipe_times, pipe) = timed_pairs(
        [config_for(args), config_for(args, pipeline="ray")], args.repeat
    )
    seq_s, pipe_s = min(seq_times), min(pipe_times)
    print(
        f"sequential: {seq_s:.2f} s (runs: {seconds_list(seq_times)}), test accuracy "
        f"{seq['test_accuracy']:.4f} ({phases(seq)})"
    )
    timeline = pipe["pipeline_timeline"]
    busy = ", ".join(f"{100 * b['utilisation']:.0f} %" for b in timeline["blocks"])
    print(
        f"pipelined:  {pipe_s:.2f} s (runs: {seconds_list(pipe_times)}), test accuracy "
        f"{pipe['test_accuracy']:.4f} (actors busy {busy} of {timeline['elapsed_s']:.2f} s)"
    )
    pairs = [s / p for s, p in zip(seq_times, pipe_times, strict=True)]
    print(f"speed-up of each pair: {seconds_list(pairs)}")
    same = all(pipe[k] == seq[k] for k in ("physical_queries", "digital_flops", "test_accuracy"))
    print(f"same queries, FLOPs and accuracy as sequential: {same}")
    if args.sync:
        sync_s, sync = timed(config_for(args, pipeline="ray", pipeline_sync=True))
        print(f"pipelined, --pipeline-sync: {sync_s:.2f} s, accuracy {sync['test_accuracy']:.4f}")
    if args.baselines:
        for rule in ("pat", "backprop-ideal", "backprop-transfer"):
            rule_s, summary = timed(config_for(args, rule=rule))
            print(
                f"{rule} (sequential, cannot pipeline): {rule_s:.2f} s, accuracy "
                f"{summary['test_accuracy']:.4f} ({phases(summary)})"
            )
    if args.throughput:
        print("\n".join(throughput_table(args)))
    delta = pipe["test_accuracy"] - seq["test_accuracy"]
    print(f"speedup={seq_s / pipe_s:.2f} accuracy_delta={delta:.4f}")


if __name__ == "__main__":
    main()

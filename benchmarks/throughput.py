"""Throughput of the simulated physical systems and the wall time of PhyLL epochs.

Run: ``python benchmarks/throughput.py`` (CPU; add ``--device cuda`` on a GPU machine, where
every timing is bracketed by ``torch.cuda.synchronize()``; without CUDA that option exits with
a one-line message). Not a test: it prints figures that docs/measurements.md quotes.

1. **Forward throughput** of every simulator (batch 1024) at 64 → 128 and 794 → 2,048 channels
   (794 = a 28×28 image plus 10 label channels), as samples/s and as the ratio of its time to
   a bare torch complex matrix product plus square law of the same size,
   ``|e @ M|²`` with ``e`` complex ``[1024, n_in]`` and ``M`` complex ``[n_in, n_out]``: the
   least any simulator of a linear scattering system with intensity detection must do. Best
   of several repeats (the machine is shared: the minimum is the least disturbed run). The
   microwave cavity solves an ``n_in × n_in`` system per sample and frequency; at 794 inputs
   it is timed on a small batch (``--microwave-batch``). Its own yardstick, the LAPACK floor
   of those solves, is benchmarks/microwave_rate.py's.
2. **PhyLL epochs**: the small default architecture on vowels and digits, and one training
   epoch of ``mnist5k`` (28×28) with 2,048 measurements per block (optical and acoustic), each
   in a fresh process so that its peak resident memory (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import torch

from phyll.engine import Engine
from phyll.errors import UserError
from phyll.experiments.build import build_experiment, check_device, resolve_device
from phyll.experiments.config import TrainConfig
from phyll.registry import SYSTEMS, make_system

#: the simulators (``remote`` needs a running server: benchmarks/remote_latency.py measures it;
#: ``random-features`` is a digital control, not a simulator)
SIMULATED = sorted(name for name in SYSTEMS if name not in ("remote", "random-features"))
SIZES = ((64, 128), (794, 2048))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_time(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 1) -> float:
    """Least wall time of ``repeats`` calls (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def baseline_fn(n_in: int, n_out: int, device: str, batch: int) -> Callable[[], Any]:
    """A bare complex product plus square law, ``|e @ M|²``, of the same size."""
    gen = torch.Generator().manual_seed(0)
    field = torch.randn(batch, n_in, dtype=torch.complex64, generator=gen).to(device)
    matrix = torch.randn(n_in, n_out, dtype=torch.complex64, generator=gen).to(device)

    def run() -> torch.Tensor:
        out = field @ matrix
        return out.real**2 + out.imag**2

    return run


def paired_times(
    base: Callable[[], Any], system: Callable[[], Any], device: str, repeats: int
) -> tuple[float, float]:
    """Least times of the baseline and the system, measured alternately (same conditions)."""
    with torch.no_grad():
        base(), system()  # warm-up
        t_base, t_sys = [], []
        for _ in range(repeats):
            t_base.append(best_time(base, device, 1, warmup=0))
            t_sys.append(best_time(system, device, 1, warmup=0))
    return min(t_base), min(t_sys)


def throughput_table(device: str, batch: int, repeats: int, microwave_batch: int) -> list[dict]:
    rows = []
    for n_in, n_out in SIZES:
        for name in SIMULATED:
            b = microwave_batch if name == "microwave" and n_in > 100 else batch
            system = make_system(name, n_in, n_out, device=device)
            drive = torch.rand(b, n_in, device=device)
            reps = 2 if b != batch else (repeats if n_in > 100 else 5 * repeats)
            base, seconds = paired_times(
                baseline_fn(n_in, n_out, device, batch),
                functools.partial(system, drive),
                device,
                reps,
            )
            rows.append(
                {"system": name, "size": f"{n_in}->{n_out}", "batch": b,
                 "samples_per_s": b / seconds, "baseline_samples_per_s": batch / base,
                 "ratio": (seconds / b) / (base / batch), "load": os.getloadavg()[0]}
            )  # fmt: skip
            r = rows[-1]
            print(
                f"{name:>10} {r['size']:>10} batch {b:>4}: {r['samples_per_s']:>11,.0f} samples/s"
                f"  ×{r['ratio']:.2f} the bare |e@M|² ({r['baseline_samples_per_s']:,.0f}/s)"
                f"  [load {r['load']:.1f}]",
                flush=True,
            )
    return rows


def _epoch_worker(config: dict[str, Any], epochs: int, evaluate: bool, queue: Any) -> None:
    torch.set_num_threads(int(os.environ.get("PHYLL_BENCH_THREADS", "2")))
    start = time.perf_counter()
    train_config = TrainConfig.from_dict(config)
    exp = build_experiment(train_config)
    engine = Engine(
        exp.model, exp.rule, exp.splits, epochs=epochs, batch_size=train_config.batch_size
    )
    build_s = time.perf_counter() - start
    meter = engine.meters["training"]
    times = []
    for _ in range(epochs):
        before = meter.costs.wall_time_s
        engine.train_epoch()
        times.append(meter.costs.wall_time_s - before)
    eval_s = None
    if evaluate:
        start = time.perf_counter()
        val = engine.evaluate("val")
        eval_s = time.perf_counter() - start
        n_eval = len(exp.splits.y_val)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    queue.put(
        {
            "build_s": build_s,
            "epoch_s": sorted(times)[len(times) // 2],
            "epoch_times_s": times,
            "val_accuracy": val if evaluate else None,
            "eval_s_per_1000": None if eval_s is None else 1000 * eval_s / n_eval,
            "peak_rss_gib": peak / 2**30,
        }
    )


def phyll_epoch(config: TrainConfig, epochs: int = 1, evaluate: bool = False) -> dict[str, Any]:
    """Median training-epoch wall time (and peak memory) of ``config``, in a fresh process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_epoch_worker, args=(config.to_dict(), epochs, evaluate, queue))
    proc.start()
    result = queue.get()
    proc.join()
    result["load"] = os.getloadavg()[0]
    return result


def mnist_config(system: str, device: str, args: argparse.Namespace) -> TrainConfig:
    """The mnist5k architecture timed here: 2,048 measurements per block."""
    return TrainConfig(
        dataset="mnist5k", system=system, device=device, measurements=2048,
        blocks=args.mnist_blocks, width=args.mnist_width, batch_size=args.mnist_batch,
        system_params=json.loads(args.mnist_system_params),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="cpu, cuda (cuda:N) or auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=10, help="repeats per timing (best kept)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--microwave-batch", type=int, default=8, help="at 794 inputs")
    parser.add_argument("--mnist-blocks", type=int, default=1)
    parser.add_argument("--mnist-width", type=int, default=256)
    parser.add_argument("--mnist-batch", type=int, default=64)
    parser.add_argument("--mnist-system-params", default="{}", help="JSON, e.g. optical options")
    parser.add_argument("--skip", nargs="*", default=[], choices=["forward", "small", "mnist"])
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    try:
        check_device(args.device)
    except UserError as exc:
        raise SystemExit(f"throughput.py: {exc}") from None
    torch.set_num_threads(args.threads)
    os.environ["PHYLL_BENCH_THREADS"] = str(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    out: dict[str, Any] = {"args": vars(args)}
    if "forward" not in args.skip:
        out["forward"] = throughput_table(
            args.device, args.batch, args.repeats, args.microwave_batch
        )
    if "small" not in args.skip:
        out["small"] = []
        for name in SIMULATED:
            for dataset in ("vowels", "digits"):
                r = phyll_epoch(TrainConfig(dataset=dataset, system=name, device=args.device), 3)
                out["small"].append({"system": name, "dataset": dataset, **r})
                print(
                    f"PhyLL epoch on {dataset} (2 {name} blocks, default config): "
                    f"{r['epoch_s']:.2f} s  [load {r['load']:.1f}]",
                    flush=True,
                )
    if "mnist" not in args.skip:
        out["mnist"] = []
        for name in ("optical", "acoustic"):
            config = mnist_config(name, args.device, args)
            r = phyll_epoch(config, 1, evaluate=True)
            out["mnist"].append({"system": name, "config": config.to_dict(), **r})
            print(
                f"PhyLL epoch on mnist5k ({args.mnist_blocks} {name} block(s), 2,048 "
                f"measurements, width {args.mnist_width}, batch {args.mnist_batch}): "
                f"{r['epoch_s']:.1f} s training, goodness evaluation "
                f"{r['eval_s_per_1000']:.1f} s per 1,000 samples, peak memory "
                f"{r['peak_rss_gib']:.2f} GiB, systems built in {r['build_s']:.1f} s  "
                f"[load {r['load']:.1f}]",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

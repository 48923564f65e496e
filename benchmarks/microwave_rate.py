"""The microwave cavity's throughput against the single-thread LAPACK floor of its solves.

Run: ``python benchmarks/microwave_rate.py [--sizes 64:128,784:2048] [--batches 256,4]
[--rounds 5] [--threads 1] [--profile]``. Not a test: it prints the machine's load and torch's
thread count with the figures, because timings on a busy machine mean little; the last line is
``fraction=X.XX``, the least fraction over the sizes.

Each sample of the cavity (``n`` metasurface elements, ``A`` antennas, ``K`` frequencies)
solves ``K`` dense complex64 systems ``S x = Uᵀ`` of size ``n × n`` with ``A`` right-hand
sides (module docstring of ``phyll.systems.microwave``). No simulator of it can beat LAPACK
doing just that, so the **floor** is LAPACK's getrf + getrs alone on as many random complex64
``n × n`` systems, with ``A`` right-hand sides each, as the timed batch of samples has
(``K · batch``), on one thread: ``torch.linalg.lu_factor_ex`` in place on matrices
already in LAPACK's column-major layout, then ``torch.linalg.lu_solve``, in groups of at most
8 MB of matrices (at least one), each group refilled, untimed, just before it is timed, so its
matrices are as hot in cache as they can be; the floor's time is the sum over the groups.
Its rate is the FLOPs that :mod:`phyll.flops` counts for
``torch.linalg.solve_ex`` of the same systems (LAWN 41: ⅔·n³ + 2·n²·A complex multiply-adds
per system, 8 real FLOPs each) over its time. The cavity's rate is the same solve FLOPs per
sample over the time of one public call ``system(drive)`` per sample (building ``S``, noise,
ADC, checks and all), and its **fraction** of the floor is the ratio of the two times.

With ``--profile``, it also prints where one batch's time goes: the share of each operator in
torch's profiler (self CPU time, summed over ``--rounds`` calls).

One process alternates the two timings, ``--rounds`` times each, and keeps the least time of
each (the least disturbed run); both span the same number of systems, so a shared machine's
load stretches them alike.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from phyll.flops import count_flops
from phyll.systems import MicrowaveCavity

#: the floor factorises its systems in groups of at most this many matrix entries (8 MB)
GROUP_ENTRIES = 2**20


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(n_inputs: int, n_outputs: int, batch: int, rounds: int) -> dict[str, float]:
    """Samples/s of the cavity, the floor's GFLOP/s, and the cavity's fraction of the floor."""
    system = MicrowaveCavity(n_inputs, n_outputs, seed=0)
    k, a = system.n_freqs, system.n_antennas
    gen = torch.Generator().manual_seed(0)
    drive = torch.rand(batch, n_inputs, generator=gen)
    # the floor's systems: as many as the batch solves, random (pivoting as LAPACK pleases)
    matrices = torch.randn(k * batch, n_inputs, n_inputs, dtype=torch.complex64, generator=gen)
    rhs = torch.randn(k * batch, n_inputs, a, dtype=torch.complex64, generator=gen)
    flops_per_system = count_flops(torch.linalg.solve_ex, matrices[:1], rhs[:1])
    group = max(1, GROUP_ENTRIES // n_inputs**2)
    lu = torch.empty(group, n_inputs, n_inputs, dtype=torch.complex64).mT  # LAPACK's layout
    pivots = torch.empty(group, n_inputs, dtype=torch.int32)
    info = torch.empty(group, dtype=torch.int32)

    def lapack() -> float:
        """Time of getrf + getrs alone on the floor's systems, group by group, one thread."""
        threads, total = torch.get_num_threads(), 0.0
        torch.set_num_threads(1)
        for start in range(0, k * batch, group):
            n = min(group, k * batch - start)
            piece, piv = lu[:n], pivots[:n]
            piece.copy_(matrices[start : start + n])  # untimed: the group is now in cache
            begin = time.perf_counter()
            torch.linalg.lu_factor_ex(piece, out=(piece, piv, info[:n]))
            torch.linalg.lu_solve(piece, piv, rhs[start : start + n])
            total += time.perf_counter() - begin
        torch.set_num_threads(threads)
        return total

    with torch.no_grad():
        system(drive), lapack()  # warm-up (and the cavity's workspace)
        cavity, floor = [], []
        for _ in range(rounds):
            floor.append(lapack())
            cavity.append(timed(lambda: system(drive)))
    per_sample, floor_per_system = min(cavity) / batch, min(floor) / (k * batch)
    return {
        "n_antennas": a,
        "n_freqs": k,
        "samples_per_s": 1 / per_sample,
        "floor_gflops": flops_per_system / floor_per_system / 1e9,
        "cavity_gflops": k * flops_per_system / per_sample / 1e9,
        "fraction": k * floor_per_system / per_sample,
        "emulation_gflop_per_sample": system.emulation_flops_per_query / 1e9,
    }


def profile_shares(n_inputs: int, n_outputs: int, batch: int, rounds: int) -> list[str]:
    """Each operator's share of a batch's self CPU time (torch profiler), largest first."""
    from torch.profiler import ProfilerActivity, profile

    system = MicrowaveCavity(n_inputs, n_outputs, seed=0)
    drive = torch.rand(batch, n_inputs, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        system(drive)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(rounds):
                system(drive)
    times = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(times.values())
    ranked = sorted(times.items(), key=lambda kv: -kv[1])
    return [f"{100 * t / total:5.1f} %  {name}" for name, t in ranked if t >= 0.005 * total]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64:128,784:2048", help="INPUTS:OUTPUTS,...")
    parser.add_argument("--batches", default="256,4", help="samples per timed call, per size")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timings (least kept)")
    parser.add_argument("--threads", type=int, default=1, help="the cavity's torch threads")
    parser.add_argument("--profile", action="store_true", help="where a batch's time goes")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split(":")) for size in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    if len(batches) != len(sizes):
        raise SystemExit("microwave_rate.py: give one batch per size")
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, the cavity on {torch.get_num_threads()} thread(s), "
        "the floor on one",
        flush=True,
    )
    fractions = []
    for (n_in, n_out), batch in zip(sizes, batches, strict=True):
        load = os.getloadavg()[0]
        r = measure(n_in, n_out, batch, args.rounds)
        fractions.append(r["fraction"])
        print(
            f"microwave {n_in} -> {n_out} ({r['n_antennas']} antennas, {r['n_freqs']} "
            f"frequencies, batch {batch}): {r['samples_per_s']:,.1f} samples/s, "
            f"{r['emulation_gflop_per_sample']:.4g} GFLOP per sample; its solves at "
            f"{r['cavity_gflops']:.1f} GFLOP/s against the LAPACK floor's "
            f"{r['floor_gflops']:.1f} GFLOP/s: {r['fraction']:.2f} of it  "
            f"[load {load:.1f} → {os.getloadavg()[0]:.1f}]",
            flush=True,
        )
        if args.profile:
            for line in profile_shares(n_in, n_out, batch, args.rounds):
                print(f"    {line}", flush=True)
    print(f"fraction={min(fractions):.2f}")


if __name__ == "__main__":
    main()

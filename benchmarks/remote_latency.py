"""Round-trip latency and throughput of RemoteSystem over loopback (or a real network).

Run: ``python benchmarks/remote_latency.py`` — starts ``phyll serve acoustic`` (64 drive → 128
measured channels) on 127.0.0.1 in a subprocess, drives it with batches of 1, 64 and 1024
samples, and compares with calling the same simulated system in-process. ``--address
tcp://HOST:PORT`` measures an already running server instead (e.g. across the lab network).
Not a test: it prints figures (docs/reliability.md says how to read them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from phyll.registry import make_system
from phyll.remote import RemoteSystem

N_IN, N_OUT = 64, 128


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", "serve", "acoustic", "--port", "0",
         "--param", f"n_inputs={N_IN}", "--param", f"n_outputs={N_OUT}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )  # fmt: skip
    line = proc.stdout.readline()
    if " on tcp://" not in line:
        proc.kill()
        raise SystemExit(f"phyll serve did not start: {line!r}")
    return proc, line.rsplit(" on ", 1)[1].strip()


def time_calls(system, batch: int, repeats: int) -> list[float]:
    drive = torch.rand(batch, system.n_inputs)
    for _ in range(3):
        system(drive)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        system(drive)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="benchmark this running server instead")
    parser.add_argument("--repeats", type=int, default=200, help="calls per batch size")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of client and server (default 1)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    proc = None
    address = args.address
    if address is None:
        proc, address = start_server(args.threads)
    try:
        remote = RemoteSystem(address, timeout_s=30)
        local = make_system("acoustic", remote.n_inputs, remote.n_outputs)
        print(f"RemoteSystem at {address}: {remote.n_inputs} → {remote.n_outputs} channels")
        print("| batch | round trip median (ms) | p90 (ms) | samples/s remote | "
              "in-process call (ms) | samples/s in-process |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|")
        for batch in (1, 64, 1024):
            repeats = args.repeats if batch < 1024 else max(20, args.repeats // 4)
            r = time_calls(remote, batch, repeats)
            loc = time_calls(local, batch, repeats)
            r_med, l_med = statistics.median(r), statistics.median(loc)
            p90 = statistics.quantiles(r, n=10)[-1]
            print(f"| {batch} | {1e3 * r_med:.3f} | {1e3 * p90:.3f} | {batch / r_med:,.0f} | "
                  f"{1e3 * l_med:.3f} | {batch / l_med:,.0f} |")  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()

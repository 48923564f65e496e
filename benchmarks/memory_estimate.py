"""A run's memory estimate against its measured peak (issue 25 item 4, docs/reliability.md).

Each configuration trains one epoch in a fresh process; the process records the estimate
phyll computed before allocating anything (``phyll.experiments.memory_plan``) and its own
peak resident memory (``VmHWM``) at the end. Both figures are of the whole process (the
interpreter, torch and the dataset included, as the budget is).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/memory_estimate.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: name → phyll train options (one epoch each); chosen so that the run's own arrays, not the
#: interpreter, make most of the peak
CONFIGS: dict[str, list[str]] = {
    "acoustic-wide": ["--system", "acoustic", "--width", "1024", "--measurements", "1024"],
    "optical-many-pixels": ["--system", "optical", "--width", "128", "--measurements", "16384"],
    "random-features-big-batch": [
        "--system",
        "random-features",
        "--width",
        "2048",
        "--measurements",
        "2048",
        "--batch-size",
        "1024",
    ],
}

CHILD = """
import json, sys, tempfile
from phyll.experiments import build, memory_plan
from phyll.memory import peak_resident_bytes
from phyll.cli import main
seen = []
original = build.check_run
def recording(plan, *args):
    seen.append(plan.peak)
    return original(plan, *args)
build.check_run = recording
with tempfile.TemporaryDirectory() as tmp:
    code = main(["train", "--dataset", "vowels", "--epochs", "1", "--quiet", *sys.argv[1:],
                 "--out", tmp + "/run"])
print(json.dumps({"code": code, "estimate": seen[-1], "peak": peak_resident_bytes()}))
"""


def measure(options: list[str]) -> dict[str, float]:
    """Train one configuration in a fresh process: its estimate and measured peak (bytes)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *options],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise RuntimeError(f"{options}: exit {result['code']}: {done.stderr[-500:]}")
    return {"estimate": result["estimate"], "peak": result["peak"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = {name: measure(options) for name, options in CONFIGS.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'configuration':28} {'estimate':>10} {'measured':>10} {'error':>7}")
    for name, r in results.items():
        error = r["estimate"] / r["peak"] - 1
        print(f"{name:28} {r['estimate'] / 2**20:8.0f}MB {r['peak'] / 2**20:8.0f}MB {error:+7.0%}")


if __name__ == "__main__":
    main()

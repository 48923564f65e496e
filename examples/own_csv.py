"""Your own CSV dataset, end to end, from the command line.

Writes scikit-learn's wine data as ``wine.csv`` (13 numeric features, the cultivar as a string
label), then runs what a user types::

    phyll train --dataset csv:wine.csv --out runs/wine      # stopped part-way by Ctrl-C ...
    phyll train --resume runs/wine                          # ... and continued exactly
    phyll predict runs/wine new_wines.csv                   # one cultivar name per row
    phyll predict runs/wine new_wines.csv --out preds.csv   # names and per-class scores

Usage: ``python examples/own_csv.py [--epochs N] [--workdir DIR]`` (default: phyll's 30
epochs, in ``./wine-example``).
"""

from __future__ import annotations

import argparse
import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

from sklearn.datasets import load_wine

CULTIVARS = ["barolo", "grignolino", "barbera"]


def write_wine_csv(path: Path, rows: slice = slice(None), label: bool = True) -> Path:
    """Wine rows as CSV: a header of feature names (and ``label``), one row per wine."""
    data = load_wine()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*data.feature_names, *(["label"] if label else [])])
        for x, y in zip(data.data[rows], data.target[rows], strict=True):
            writer.writerow([*x, *([CULTIVARS[y]] if label else [])])
    return path


def phyll(*args: str) -> list[str]:
    """``python -m phyll.cli ARGS`` (the ``phyll`` command); its stdout lines."""
    print("$ phyll", " ".join(args), flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "phyll.cli", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"phyll {args[0]} failed: {done.stderr.strip()}")
    print(done.stdout, end="", flush=True)
    return done.stdout.splitlines()


def train_then_interrupt(data: Path, run: Path, epochs: int) -> None:
    """Start ``phyll train`` and press Ctrl-C (SIGINT) once its first epoch is written."""
    args = ["train", "--dataset", f"csv:{data}", "--out", str(run), "--epochs", str(epochs)]
    print("$ phyll", " ".join(args), "   # then Ctrl-C after the first epoch", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "phyll.cli", *args, "--quiet"])
    metrics = run / "metrics.jsonl"
    while proc.poll() is None and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # stops at the next step boundary, checkpoint kept
    proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    parser.add_argument("--workdir", type=Path, default=Path("wine-example"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = write_wine_csv(args.workdir / "wine.csv")
    run = args.workdir / "run"
    train_then_interrupt(data, run, args.epochs)
    phyll("train", "--resume", str(run), "--quiet")
    new = write_wine_csv(args.workdir / "new_wines.csv", slice(0, 178, 30), label=False)
    names = phyll("predict", str(run), str(new))
    print("true cultivars:", [CULTIVARS[y] for y in load_wine().target[0:178:30]])
    phyll("predict", str(run), str(new), "--out", str(args.workdir / "preds.csv"))
    print(f"{len(names)} predictions; scores in {args.workdir / 'preds.csv'}")


if __name__ == "__main__":
    main()

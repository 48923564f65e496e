"""The Python API from data to prediction: arrays → dataset → training → loaded run → names.

Usage: ``python examples/python_api.py [--epochs N] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.datasets import load_iris

import phyll
from phyll.data import from_arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    parser.add_argument("--workdir", type=Path, default=Path("api-example"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    # 1. your arrays (any scale): phyll splits them and scales each feature into [0, 1]
    iris = load_iris()
    data = from_arrays(
        iris.data,
        iris.target,
        class_names=[str(c) for c in iris.target_names],
        feature_names=["sepal_length", "sepal_width", "petal_length", "petal_width"],
        name="iris",
    )
    # 2. train: PhyLL on two simulated acoustic cavities; the run folder keeps everything
    config = phyll.TrainConfig(epochs=args.epochs, width=32, measurements=64)
    summary = phyll.train(
        config, args.workdir / "run", dataset=data, overwrite=True, progress=False
    )
    print(f"test accuracy {summary['test_accuracy']:.3f} (chance {summary['chance_accuracy']:.3f})")
    # 3. later, elsewhere: load the selected weights and classify raw measurements
    run = phyll.load_run(args.workdir / "run")
    new_flowers = iris.data[::25]
    print("predicted:", run.predict(new_flowers))
    print("true:     ", [str(iris.target_names[y]) for y in iris.target[::25]])
    print("scores (goodness per class):\n", run.scores(new_flowers).round(3))


if __name__ == "__main__":
    main()

"""Screen image-profile settings on a subsample of full MNIST, on validation only.

How the image profile's PhyLL parameters were chosen (docs/mnist.md): each setting trains
PhyLL on the optical system with the image defaults and the setting's overrides, on a fixed
random subsample of the training split, and is scored on a fixed 3,000-image subsample of the
validation split (the test split is never evaluated). One JSON line per setting:

    python benchmarks/image_profile_screen.py DATA 15000 8 '{}' \
        '{"rule_params": {"negatives": 3, "theta": 20}}' '{"blocks": 2}'
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from phyll.engine import Engine, EvalPlan
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig


def screen(data: str, n_train: int, epochs: int, overrides: dict, seed: int) -> dict:
    """Validation accuracy per epoch of one setting (and of 2,000 training images)."""
    options = dict(overrides)
    rule_params = options.pop("rule_params", {})
    config = TrainConfig(
        dataset="mnist", data_path=data, system="optical", epochs=epochs, seed=seed,
        rule_params=rule_params, **options,
    )  # fmt: skip
    exp = build_experiment(config)
    splits, pick = exp.splits, torch.Generator().manual_seed(5)
    train = torch.randperm(len(splits.y_train), generator=pick)[:n_train]
    splits.x_train, splits.y_train = splits.x_train[train], splits.y_train[train]
    val = torch.randperm(len(splits.y_val), generator=pick)[:3000]
    splits.x_val, splits.y_val = splits.x_val[val], splits.y_val[val]
    splits.x_test, splits.y_test = splits.x_test[:0], splits.y_test[:0]  # never looked at
    engine = Engine(
        exp.model, exp.rule, splits, epochs=epochs, batch_size=config.batch_size,
        seed=config.seed, eval_plan=EvalPlan(train_samples=2000), callbacks=exp.callbacks,
        augment=exp.augment,
    )  # fmt: skip
    start = time.perf_counter()
    engine.fit()
    vals = [round(r["val_accuracy"], 4) for r in engine.history]
    return {
        "setting": overrides,
        "n_train": n_train,
        "epochs": epochs,
        "val": vals,
        "train": [round(r["train_accuracy"], 4) for r in engine.history],
        "best_val": max(vals),
        "seconds": round(time.perf_counter() - start),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder of the four MNIST IDX files")
    parser.add_argument("n_train", type=int, help="training images of the subsample")
    parser.add_argument("epochs", type=int)
    parser.add_argument("settings", nargs="+", help="JSON overrides of TrainConfig, one each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for setting in args.settings:
        print(
            json.dumps(screen(args.data, args.n_train, args.epochs, json.loads(setting), args.seed))
        )


if __name__ == "__main__":
    main()

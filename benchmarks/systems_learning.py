"""PhyLL on every simulated physical system: vowels (≥ 3× chance) and digits (≥ 85 % test).

Run: ``python benchmarks/systems_learning.py`` (CPU; ``--systems optical --datasets digits``
to run a part). Each run is ``phyll train --system NAME --dataset DATASET`` with the default
configuration (2 blocks, 128 measurements, 30 epochs, seed 0); the test accuracy is that of the
best-validation epoch. ``--ablation`` also trains the same network with the physical
measurement removed (``--no-physics``, the honesty ablation: what the skip connection alone
gives); ``--no-skip`` removes the skip connection, so the digital weights see the physical
measurement only (what the physics alone provides). Not a test: it prints its figures (not
re-run for docs/ in this version).
"""

from __future__ import annotations

import argparse
import json

from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train
from phyll.systems import SYSTEMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--systems", nargs="*", default=sorted(SYSTEMS), help="systems to train")
    parser.add_argument("--datasets", nargs="+", default=["vowels", "digits"], help="datasets")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs, help="epochs per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--ablation", action="store_true", help="add the no-physics network")
    parser.add_argument("--no-skip", dest="skip", action="store_false", help="measurement only")
    args = parser.parse_args()
    results = []
    runs = [(system, True) for system in args.systems] + ([("acoustic", False)] * args.ablation)
    for system, use_physics in runs:
        for dataset in args.datasets:
            config = TrainConfig(
                dataset=dataset,
                system=system,
                epochs=args.epochs,
                seed=args.seed,
                use_physics=use_physics,
                skip=args.skip,
            )
            s = train(config, progress=False)
            row = {
                "system": system if use_physics else "none (ablation)",
                "dataset": dataset,
                "skip": args.skip,
                "test_accuracy": s["test_accuracy"],
                "chance_accuracy": s["chance_accuracy"],
                "x_chance": s["test_accuracy"] / s["chance_accuracy"],
                "best_epoch": s["best_epoch"],
                "train_wall_time_s": s["wall_time_s_training"],
                "wall_time_s": s["wall_time_s"],
                "physical_queries": s["physical_queries"],
            }
            results.append(row)
            print(
                f"{row['system']:>10} {dataset:>7}: test {row['test_accuracy']:.3f} "
                f"({row['x_chance']:.1f}× chance {row['chance_accuracy']:.3f}, best epoch "
                f"{row['best_epoch']}) · training {row['train_wall_time_s']:.1f} s, "
                f"total {row['wall_time_s']:.1f} s",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

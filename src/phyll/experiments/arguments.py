"""Command-line options shared by every command that trains (train, compare, robustness, depth).

One definition of the task, physical-network and training options, and one mapping from parsed
options to a :class:`~phyll.experiments.config.TrainConfig`, so the commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from typing import Any

from phyll.data import DATASETS, DatasetError, parse_dataset_spec
from phyll.experiments.config import TrainConfig
from phyll.learning import RULES
from phyll.systems import SYSTEMS


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["noise_std=0.01", "encoding=phase"]`` → ``{"noise_std": 0.01, "encoding": "phase"}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key] = raw
    return params


def dataset_argument(spec: str) -> str:
    """argparse type: a registered dataset name, optionally ``NAME:HxW``."""
    try:
        parse_dataset_spec(spec)
    except DatasetError as exc:  # worded like argparse's own choices check
        raise argparse.ArgumentTypeError(
            f"invalid choice: {spec!r} (choose from {', '.join(sorted(DATASETS))}; "
            "image datasets also as NAME:HxW, e.g. mnist5k:14x14)"
        ) from exc
    return spec


def add_experiment_arguments(
    p: argparse.ArgumentParser, *, rule: bool = True, seed: bool = True
) -> None:
    """Task, physical network and training options shared by every command that trains.

    ``rule=False`` / ``seed=False`` leave out ``--rule``/``--rule-param`` and ``--seed`` for
    commands that take several (``--rules``, ``--seeds``).
    """
    d = TrainConfig()
    g = p.add_argument_group("task")
    g.add_argument(
        "--dataset",
        type=dataset_argument,
        default=d.dataset,
        metavar="NAME[:HxW]",
        help=f"dataset: {', '.join(sorted(DATASETS))}; image datasets take :HxW to "
        "average-pool the images, e.g. mnist5k:14x14 (default: %(default)s)",
    )
    g.add_argument(
        "--data-path",
        default=None,
        help="file or folder for datasets read from disk (e.g. vowels7's CSV)",
    )
    if seed:
        g.add_argument(
            "--seed",
            type=int,
            default=d.seed,
            help="seeds data split, systems, weights and negatives (default: %(default)s)",
        )
    g = p.add_argument_group("physical network")
    g.add_argument(
        "--system",
        choices=sorted(SYSTEMS),
        default=d.system,
        help="physical system of every block (default: %(default)s)",
    )
    g.add_argument(
        "--system-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="system parameter, repeatable (e.g. noise_std=0.01, encoding=phase)",
    )
    g.add_argument(
        "--blocks",
        type=int,
        default=d.blocks,
        help="number of physical blocks, 1-10+ (default: %(default)s)",
    )
    g.add_argument(
        "--width",
        type=int,
        default=d.width,
        help="features of each hidden representation = drive channels of the next "
        "system (default: %(default)s)",
    )
    g.add_argument(
        "--measurements",
        type=int,
        default=d.measurements,
        help="measured channels of every system (default: %(default)s)",
    )
    g.add_argument(
        "--no-skip",
        dest="skip",
        action="store_false",
        help="do not feed the block input to the digital weights next to the measurement",
    )
    g.add_argument(
        "--no-physics",
        dest="use_physics",
        action="store_false",
        help="honesty ablation: remove the physical measurement (digital path only)",
    )
    g.add_argument(
        "--conditioning",
        default=d.conditioning,
        choices=["standardize", "log-standardize", "unit-norm", "none"],
        help="how measurements are scaled before the digital weights (default: %(default)s)",
    )
    g.add_argument(
        "--activation",
        default=d.activation,
        choices=["abs", "relu"],
        help="activation after the digital weights (default: %(default)s)",
    )
    g = p.add_argument_group("training")
    if rule:
        g.add_argument(
            "--rule",
            choices=sorted(RULES),
            default=d.rule,
            help="learning rule (default: %(default)s)",
        )
        g.add_argument(
            "--rule-param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="rule hyper-parameter, repeatable (e.g. theta=4, prediction=readout)",
        )
    g.add_argument("--epochs", type=int, default=d.epochs, help="epochs (default: %(default)s)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="samples per step (default: %(default)s)",
    )
    g.add_argument("--lr", type=float, default=d.lr, help="learning rate (default: %(default)s)")
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="part of the training split held out to pick the best epoch (default: %(default)s)",
    )
    g.add_argument(
        "--device", default=d.device, help="torch device: cpu or cuda (default: %(default)s)"
    )


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Every ``phyll train`` option: the shared experiment options plus output and resume."""
    add_experiment_arguments(p)
    d = TrainConfig()
    g = p.add_argument_group("output")
    g.add_argument(
        "--out",
        default=None,
        help="run folder to write (default: runs/DATASET-RULE-SYSTEM-seedN-TIME)",
    )
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its last checkpoint (other options ignored)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=d.checkpoint_every,
        metavar="STEPS",
        help="checkpoint every STEPS training steps, 0 = at epoch ends only; epoch ends and "
        "Ctrl-C/SIGTERM always checkpoint (default: %(default)s)",
    )
    g.add_argument(
        "--record",
        action="store_true",
        help="record every drive/measurement pair to RUN_DIR/records (NumPy .npz chunks)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of parsed options; options a command lacks keep their default."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    for key in ("system_params", "rule_params"):
        values.pop(key, None)
    values["system_params"] = parse_params(getattr(args, "system_param", []))
    values["rule_params"] = parse_params(getattr(args, "rule_param", []))
    return TrainConfig(**{**values, **overrides})

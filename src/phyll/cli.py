"""The ``phyll`` command line: ``phyll train``, ``phyll list`` and the experiment commands.

Each command is a ``register(subparsers)`` function: the two core ones live here, experiment
commands in their own modules (listed in :data:`COMMANDS`). Errors the user can fix (unknown
names, missing files, bad folders, a faulty physical system) are printed as one clear line and
exit with status 2; no traceback to decode.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phyll.data import DATASETS, DatasetError, parse_dataset_spec
from phyll.experiments import compare, depth, robustness
from phyll.experiments.config import TrainConfig
from phyll.experiments.run_folder import RunFolderError
from phyll.experiments.train import TrainingError, resume, train
from phyll.learning import RULES
from phyll.remote import command as remote_command
from phyll.systems import SYSTEMS, PhysicalSystemError
from phyll.systems.base import DriveError

USER_ERRORS = (
    DatasetError,
    RunFolderError,
    TrainingError,
    PhysicalSystemError,
    DriveError,
    ValueError,
)


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


def add_train_arguments(p: argparse.ArgumentParser) -> None:
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
    g.add_argument(
        "--rule", choices=sorted(RULES), default=d.rule, help="learning rule (default: %(default)s)"
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


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, system=args.system, rule=args.rule, seed=args.seed,
        epochs=args.epochs, batch_size=args.batch_size, blocks=args.blocks, width=args.width,
        measurements=args.measurements, lr=args.lr, skip=args.skip, use_physics=args.use_physics,
        conditioning=args.conditioning, activation=args.activation,
        val_fraction=args.val_fraction, data_path=args.data_path, device=args.device,
        system_params=parse_params(args.system_param), rule_params=parse_params(args.rule_param),
        checkpoint_every=args.checkpoint_every, record=args.record,
    )  # fmt: skip


def command_train(args: argparse.Namespace) -> int:
    if args.resume:
        summary = resume(args.resume, progress=not args.quiet)
        out = Path(args.resume)
    else:
        config = config_from_args(args)
        out = Path(args.out) if args.out else _default_out(config)
        summary = train(config, out, progress=not args.quiet, overwrite=args.overwrite)
    print(
        f"test accuracy {summary['test_accuracy']:.3f} (chance {summary['chance_accuracy']:.3f}, "
        f"best epoch {summary['best_epoch']}/{summary['epochs']}) · "
        f"{summary['physical_queries']:,} physical queries · "
        f"{summary['digital_flops']:,} digital FLOPs · {summary['wall_time_s']:.1f} s "
        f"({summary['physical_time_s']:.1f} s physical)"
    )
    print(f"run folder: {out}")
    return 0


def _default_out(config: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = Path("runs")
    runs.mkdir(exist_ok=True)
    return runs / f"{config.dataset}-{config.rule}-{config.system}-seed{config.seed}-{stamp}"


def command_list(args: argparse.Namespace) -> int:
    del args
    print("datasets:", ", ".join(sorted(DATASETS)))
    print("systems: ", ", ".join(sorted(SYSTEMS)))
    print("rules:   ", ", ".join(sorted(RULES)))
    return 0


Subparsers = Any  # argparse's private _SubParsersAction


def register_train(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train a physical network and write a run folder",
        description="Train a deep physical neural network; bare `phyll train` trains the "
        "default (PhyLL on the embedded vowel task with acoustic cavities).",
    )
    add_train_arguments(p)
    p.set_defaults(func=command_train)


def register_list(sub: Subparsers) -> None:
    p = sub.add_parser("list", help="list datasets, physical systems and learning rules")
    p.set_defaults(func=command_list)


#: every subcommand's register function, in ``--help`` order
COMMANDS: list[Callable[[Subparsers], None]] = [
    register_train,
    register_list,
    compare.register,
    robustness.register,
    depth.register,
    remote_command.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phyll",
        description="Train deep physical neural networks without backpropagation (PhyLL).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"phyll: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"phyll: {exc}" if str(exc) else
              "phyll: interrupted; the last checkpoint is kept (resume with --resume RUN_DIR)",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())

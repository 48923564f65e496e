"""The ``phyll`` command line: ``phyll train``, ``phyll list``, ``predict``/``evaluate`` and the
experiment commands.

Each command is a ``register(subparsers)`` function: the two core ones live here, experiment
commands in their own modules (listed in :data:`COMMANDS`). Errors the user can fix
(:class:`~phyll.errors.UserError`: unknown names, bad parameters, missing files, bad folders, a
faulty physical system, an exception raised by the user's own system code) are printed as one
clear line and exit with status 2 (``--debug``, accepted by every command, prints the
traceback first); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from phyll.data import dataset_catalogue
from phyll.errors import ConfigError, UserError, printable
from phyll.experiments import predict, runner
from phyll.experiments.arguments import (
    add_experiment_arguments,
    add_option,
    add_run_arguments,
    add_track_arguments,
    add_trust_argument,
    config_from_args,
    tracking_of,
    trust_of,
)
from phyll.experiments.config import TrainConfig, training_help
from phyll.experiments.kinds import EXPERIMENT_KINDS
from phyll.experiments.run_folder import RunFolder, output_folder
from phyll.experiments.train import resume, train
from phyll.files import USER_ERRNOS, os_reason
from phyll.machine import process_start, use_threads
from phyll.memory import memory_limit
from phyll.params import ParamInfo, describe_params
from phyll.registry import RULES, system_factory, system_names
from phyll.remote import command as remote_command
from phyll.report import command as report_command
from phyll.systems.faults import FAULTS


def command_train(args: argparse.Namespace) -> int:
    tracking = tracking_of(args)
    if args.resume:
        refuse_options_beside_resume(args)
        out = args.run_dir = Path(args.resume)
        recorded = RunFolder(out).read_json(out / "config.json") if tracking else {}
        config = {k: v for k, v in recorded.items() if k not in ("format", "resolved")}
        callbacks = tracking.callbacks(out, config) if tracking else []
        summary = resume(
            out,
            trust_code=trust_of(args),
            progress=not args.quiet,
            callbacks=callbacks,
            started=process_start(),
            epochs=args.epochs,
        )
    else:
        config = config_from_args(args)
        out = args.run_dir = Path(args.out) if args.out else _default_out(config)
        callbacks = tracking.callbacks(out, config.to_dict()) if tracking else []
        with output_folder(out.parent):  # missing parents made (and removed if it fails)
            summary = train(
                config,
                out,
                progress=not args.quiet,
                overwrite=args.overwrite,
                callbacks=callbacks,
                started=process_start(),
            )
    print(
        f"test accuracy {summary['test_accuracy']:.3f} (chance {summary['chance_accuracy']:.3f}, "
        f"best epoch {summary['best_epoch']}/{summary['epochs']}) · "
        f"{summary['physical_queries']:,} physical queries · "
        f"{summary['digital_flops']:,} digital FLOPs · {summary['wall_time_s']:.1f} s wall "
        f"({summary['simulation_time_s']:.1f} s simulating the physics) · projected with the "
        f"hardware: {summary['projected_time_s']:.1f} s"
        + (" (device time measured per call)" if summary.get("device_time") == "measured" else "")
    )
    timeline = summary.get("pipeline_timeline")
    if timeline:
        busy = sum(b["busy_s"] for b in timeline["blocks"]) + timeline["driver_busy_s"]
        print(
            f"pipeline: {timeline['elapsed_s']:.1f} s elapsed for {busy:.1f} s of work on "
            f"{len(timeline['blocks'])} actors (+ {timeline['startup_s']:.1f} s starting them)"
        )
    print(f"run folder: {out}")
    return 0


#: what ``phyll train --resume`` accepts beside it: how long to train, and how to run (the rest
#: of the configuration is the run's own)
RESUME_OPTIONS = (
    "--resume", "--epochs", "--quiet", "--threads", "--track", "--track-uri",
    "--track-experiment", "--trust-code", "--debug", "--system", "--rule", "--max-memory",
)  # fmt: skip


def refuse_options_beside_resume(args: argparse.Namespace) -> None:
    """One line when ``--resume`` comes with an option that would change the run."""
    given = [token.split("=", 1)[0] for token in args.argv if token.startswith("-")]
    extra = [option for option in given if option not in RESUME_OPTIONS]
    if extra:
        raise ConfigError(
            f"--resume continues the run with its recorded configuration: {', '.join(extra)} "
            f"cannot be changed (only {', '.join(RESUME_OPTIONS[1:])} may be given)"
        )


def _default_out(config: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{config.dataset}-{config.rule}-{config.system}-seed{config.seed}-{stamp}"
    return Path("runs") / name


def command_list(args: argparse.Namespace) -> int:
    print("datasets (train / test rows, features, classes, what they need, kind of defaults):")
    for row in dataset_catalogue():
        sizes = "—" if row["n_train"] is None else (
            f"{row['n_train']:,} / {row['n_test']:,} rows, {row['n_features']} features, "
            f"{row['n_classes']} classes"
        )  # fmt: skip
        print(f"  {row['name']:<14} {sizes:<46} {row['needs']:<9} {row['kind']:<8} {row['about']}")
    print("systems: ", ", ".join(system_names()))
    print("rules:   ", ", ".join(RULES.names()))
    print("faults:  ", ", ".join(FAULTS.names()))
    if args.params:
        print("\ntraining options (phyll train --NAME with dashes; TrainConfig in Python):")
        print_params(describe_params(TrainConfig), training_help)
        groups: list[tuple[str, Any]] = [
            *((f"system {n}", system_factory(n)) for n in system_names()),
            *((f"rule {n}", c) for n, c in sorted(RULES.items())),
            *((f"fault {n}", c) for n, c in sorted(FAULTS.items())),
        ]
        for title, cls in groups:
            declared = getattr(cls, "Params", None)
            print(f"\n{title} ({cls.__module__}.{cls.__name__}):")
            print_params(describe_params(declared) if declared else [])
    return 0


def print_params(infos: list[ParamInfo], help_of: Callable[[str], str] | None = None) -> None:
    """One line per declared parameter: name, type, default (by dataset kind where it has
    one), unit, help and range."""
    for info in infos:
        unit = f" [{info.unit}]" if info.unit else ""
        bounds = f" (range {info.range})" if info.range else ""
        default = f"{info.default!r}" + (f" ({info.profile})" if info.profile else "")
        text = help_of(info.name) if help_of else info.help
        print(f"  {info.name}: {info.type} = {default}{unit}  {text}{bounds}")


Subparsers = Any  # argparse's private _SubParsersAction


def register_train(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train a physical network and write a run folder",
        description="Train a deep physical neural network; bare `phyll train` trains the "
        "default (PhyLL on the embedded vowel task with acoustic cavities).",
    )
    add_experiment_arguments(p)
    add_run_arguments(p, "run")
    add_track_arguments(p)
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its last checkpoint with its recorded "
        "configuration; --epochs N trains it to N epochs in total (a finished run trains on); "
        "a --system or --rule MODULE:NAME given again (or --trust-code) trusts its code",
    )
    add_trust_argument(p)
    add_option(p, "record")
    p.set_defaults(func=command_train)


def register_list(sub: Subparsers) -> None:
    p = sub.add_parser("list", help="list datasets, physical systems, rules and faults")
    p.add_argument(
        "--params",
        action="store_true",
        help="also every system's, rule's and fault's parameters: type, default, unit, help",
    )
    p.set_defaults(func=command_list)


def register_experiments(sub: Subparsers) -> None:
    """Every experiment kind of :data:`~phyll.experiments.kinds.EXPERIMENT_KINDS`, each with
    the options it declares and the runner's ``--resume`` and ``--trust-code``."""
    for kind in EXPERIMENT_KINDS.values():
        runner.register(kind, sub)


#: every subcommand's register function, in ``--help`` order
COMMANDS: list[Callable[[Subparsers], None]] = [
    register_train,
    register_list,
    predict.register,
    register_experiments,
    report_command.register,
    remote_command.register,
]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``phyll train: error: ...``, exit status 2), like every
    other phyll error; the usage is one ``--help`` away. Subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="phyll",
        description="Train deep physical neural networks without backpropagation (PhyLL).",
    )
    parser.add_argument("--version", action="version", version=f"phyll {version('phyll')}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    for command in sub.choices.values():  # also after the command: phyll train ... --debug
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
        )
    return parser


DEBUG_HELP = "on an error, print its traceback before the one-line message"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if hasattr(args, "threads"):
            use_threads(args.threads)
        with memory_limit(getattr(args, "max_memory", None)):
            return args.func(args)
    except UserError as exc:
        return error_line(args, str(exc))
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise  # a bug, or an error phyll should have worded: keep the traceback
        where = f"{exc.filename}: " if exc.filename else ""
        return error_line(args, f"{where}{os_reason(exc)}")
    except KeyboardInterrupt as exc:
        print(f"phyll: {str(exc) or interrupted_at(args)}", file=sys.stderr)
        return 130


def error_line(args: argparse.Namespace, message: str) -> int:
    """Print ``message`` as the one error line (its control characters escaped: it may quote a
    file or a server), after the traceback with ``--debug``; exit status 2."""
    if args.debug:
        traceback.print_exc()
    print(f"phyll: error: {printable(' '.join(message.split()))}", file=sys.stderr)
    return 2


def interrupted_at(args: argparse.Namespace) -> str:
    """What an abort (a second Ctrl-C) keeps, and the command that continues it."""
    run = getattr(args, "run_dir", None)
    if run is None:
        return "interrupted; the last checkpoints are kept (continue with --resume)"
    return f"interrupted; the last checkpoint is kept: continue with `phyll train --resume {run}`"


def run() -> NoReturn:
    """The ``phyll`` command: :func:`main`, then exit without tearing the interpreter down.

    Freeing torch's and matplotlib's modules one by one at exit took 0.8 s of a 4.5 s
    ``phyll train --epochs 3`` (after the run's summary was written); the output streams are
    flushed and the ``atexit`` handlers (Ray, MLflow, logging) run before the process ends.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to lose
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    run()

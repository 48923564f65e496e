"""Command-line options shared by every command that trains (train, compare, robustness, depth).

One definition of the task, physical-network, training and evaluation options, one list syntax
(:class:`ListAction`: comma-separated, spaces accepted) and one mapping from parsed options to a
:class:`~phyll.experiments.config.TrainConfig`, so the commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from phyll.data import DATASETS, DatasetError, parse_dataset_spec
from phyll.errors import ConfigError, did_you_mean
from phyll.experiments.build import resolve_device
from phyll.experiments.config import LR_SCHEDULES, PIPELINES, PROFILES, TrainConfig
from phyll.experiments.tracking import TRACKERS, Tracking
from phyll.memory import parse_size
from phyll.params import ParamError, build_params, parse_params
from phyll.registry import RULES, SYSTEMS, system_names
from phyll.systems.faults import FAULTS
from phyll.usercode import Trust

_ITEM = re.compile(r"^[\w.:/+\-=]+$")


class ListAction(argparse.Action):
    """``--rules phyll,pat``, ``--rules phyll pat`` and ``--rules "phyll, pat"`` all give
    ``["phyll", "pat"]``; each item goes through the option's ``type`` (default ``str``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.item_type: Callable[[str], Any] = kwargs.pop("type", None) or str
        kwargs.setdefault("nargs", "+")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items: list[Any] = []
        for token in values:
            for raw in re.split(r"[,\s]+", token.strip()):
                if not raw:
                    continue
                if not _ITEM.match(raw):
                    parser.error(f"argument {option_string}: unexpected item {raw!r}")
                try:
                    items.append(self.item_type(raw))
                except (ValueError, argparse.ArgumentTypeError) as exc:
                    parser.error(f"argument {option_string}: {exc}")
        if not items:
            parser.error(f"argument {option_string}: expected a comma-separated list")
        setattr(namespace, self.dest, items)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def named_choice(names: Callable[[], Any], what: str) -> Callable[[str], str]:
    """argparse type: a registered name (``names()``) or a ``MODULE:NAME`` import path."""

    def check(text: str) -> str:
        if (":" in text and not text.startswith(":")) or text in names():
            return text
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r}{did_you_mean(text, names())} (choose from "
            f"{', '.join(sorted(names()))}, or a {what} of your own as MODULE:NAME)"
        )

    return check


def fault_argument(text: str) -> dict[str, Any]:
    """argparse type: ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` of a fault wrapper (``phyll list
    --params``), checked against its declared parameters; the ``faults`` entry it makes."""
    name, _, options = text.partition(":")
    if name not in FAULTS:
        raise argparse.ArgumentTypeError(
            f"unknown fault {name!r} (choose from {', '.join(sorted(FAULTS))})"
        )
    try:
        params = parse_params(p for p in options.split(",") if p.strip())
        build_params(FAULTS[name].Params, params, f"fault {name!r}")
    except ParamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return {"name": name, **params}


def dataset_argument(spec: str) -> str:
    """argparse type: a registered dataset name, optionally ``NAME:HxW``."""
    try:
        parse_dataset_spec(spec)
    except DatasetError as exc:  # worded like argparse's own choices check
        raise argparse.ArgumentTypeError(
            f"invalid choice: {spec!r}{did_you_mean(spec.split(':')[0], DATASETS)} (choose from "
            f"{', '.join(sorted(DATASETS))}; "
            "image datasets also as NAME:HxW, e.g. mnist5k:14x14; your own data as "
            "csv:PATH or npz:PATH)"
        ) from exc
    return spec


def _by_kind(name: str) -> str:
    """An option's default per dataset kind, for its help text."""
    return ", ".join(f"{kind} {values[name]}" for kind, values in PROFILES.items())


def add_experiment_arguments(
    p: argparse.ArgumentParser,
    *,
    rule: bool = True,
    seed: bool = True,
    blocks: bool = True,
    address: bool = True,
) -> None:
    """Task, physical network, training, pipeline and evaluation options of every command that
    trains.

    ``rule=False`` / ``seed=False`` / ``blocks=False`` leave out ``--rule``/``--rule-param``,
    ``--seed`` and ``--blocks`` for commands that take several (``--rules``, ``--seeds``,
    a list of block counts); ``address=False`` leaves out ``--address`` for a command that has
    its own Ray cluster option.
    """
    d = TrainConfig()
    g = p.add_argument_group("task")
    g.add_argument(
        "--dataset",
        type=dataset_argument,
        default=d.dataset,
        metavar="NAME[:HxW]",
        help=f"dataset: {', '.join(sorted(DATASETS))}, or your own csv:PATH / npz:PATH; "
        "image datasets take :HxW to average-pool the images, e.g. mnist5k:14x14 "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--data-path",
        default=None,
        help="file or folder for datasets read from disk (e.g. mnist's IDX files)",
    )
    g.add_argument(
        "--label-column",
        default=d.label_column,
        metavar="NAME",
        help="label column of a csv:PATH dataset (default: %(default)s)",
    )
    if seed:
        g.add_argument(
            "--seed",
            type=int,
            default=d.seed,
            help="one seed: data split, systems, weights and negatives (default: %(default)s)",
        )
    g = p.add_argument_group("physical network")
    g.add_argument(
        "--system",
        type=named_choice(system_names, "system"),
        default=None,  # the configuration's default; None: not given (a resume trusts it)
        metavar="NAME",
        help=f"physical system of every block: {', '.join(sorted(SYSTEMS))}, or MODULE:NAME "
        f"(your own PhysicalSystem class or factory) (default: {d.system})",
    )
    g.add_argument(
        "--system-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="system parameter, repeatable (phyll list --params shows them all)",
    )
    g.add_argument(
        "--fault",
        dest="faults",
        type=fault_argument,
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="wrap every block's system in a fault, repeatable, innermost first, e.g. "
        f"drift:std=0.5,target=gain ({', '.join(sorted(FAULTS))}; phyll list --params)",
    )
    if blocks:
        g.add_argument(
            "--blocks",
            type=positive_int,
            default=None,
            help=f"physical blocks (default: {_by_kind('blocks')})",
        )
    g.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help="features of each hidden representation = drive channels of the next "
        f"system (default: {_by_kind('width')})",
    )
    g.add_argument(
        "--measurements",
        type=positive_int,
        default=None,
        help=f"measured channels of every system (default: {_by_kind('measurements')}; "
        "optical on images: 4096)",
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
        "--label-encoding",
        default=None,
        choices=["append", "overlay"],
        help="labels of the local rules: appended drive channels, or written into the top "
        "rows of the image as the paper's optics does (images only) (default: "
        f"{_by_kind('label_encoding')}; images narrower than 10 pixels: append)",
    )
    g.add_argument(
        "--pool",
        type=positive_int,
        default=d.pool,
        metavar="N",
        help="average the measured image (camera pixels) over N × N windows before the "
        "digital weights; 1: none (default: %(default)s)",
    )
    g.add_argument(
        "--pool-stride",
        type=positive_int,
        default=None,
        metavar="S",
        help="stride of the pooling windows (default: N, non-overlapping; the paper: "
        "--pool 3 --pool-stride 2)",
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
            type=named_choice(lambda: RULES, "rule"),
            default=None,  # the configuration's default; None: not given (a resume trusts it)
            metavar="NAME",
            help=f"learning rule: {', '.join(sorted(RULES))}, or MODULE:NAME (default: {d.rule})",
        )
        g.add_argument(
            "--rule-param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="rule parameter, repeatable, e.g. theta=4, prediction=readout, optimizer=sgd "
            "(phyll list --params)",
        )
    g.add_argument(
        "--epochs", type=positive_int, default=None, help=f"epochs (default: {_by_kind('epochs')})"
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help=f"samples per step (default: {_by_kind('batch_size')})",
    )
    g.add_argument(
        "--augment-shift",
        type=int,
        default=None,
        metavar="PIXELS",
        help="shift each training image at random by up to PIXELS pixels each step "
        f"(default: {_by_kind('augment_shift')})",
    )
    g.add_argument(
        "--lr-schedule",
        choices=list(LR_SCHEDULES),
        default=None,
        help=f"learning rate over the epochs (default: {_by_kind('lr_schedule')})",
    )
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate: the rule parameter lr (default: the rule's, 0.01)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="part of the training split held out to pick the best epoch (default: %(default)s)",
    )
    add_device_argument(g, d.device)
    add_pipeline_arguments(p, d, address)
    g = p.add_argument_group("evaluation (each costs physical queries)")
    g.add_argument(
        "--eval-every",
        type=positive_int,
        default=d.eval_every,
        metavar="N",
        help="evaluate the validation split every N epochs and after the last (default: 1)",
    )
    g.add_argument(
        "--eval-samples",
        type=int,
        default=None,
        metavar="N",
        help="evaluate at most N validation samples (a fixed random subset; 0: all; default: "
        f"{_by_kind('eval_samples')}, 0 meaning all)",
    )
    g.add_argument(
        "--test-curve",
        action="store_true",
        help="also measure the test split at every evaluation (for figures; the result is "
        "always the best-validation epoch, tested once at the end)",
    )
    g.add_argument(
        "--train-eval-samples",
        type=int,
        default=d.train_eval_samples,
        metavar="N",
        help="also measure the accuracy on N training samples at every evaluation (default: 0)",
    )


def add_pipeline_arguments(p: argparse.ArgumentParser, d: TrainConfig, address: bool) -> None:
    """``--pipeline ray``, ``--pipeline-sync``, ``--pipeline-restarts`` (and ``--address``)."""
    g = p.add_argument_group("pipeline: every block on its own Ray actor (optional extra .[ray])")
    g.add_argument(
        "--pipeline",
        choices=list(PIPELINES),
        default=d.pipeline,
        help="ray: train each block on its own Ray actor, minibatches pipelined through them "
        "(local rules: phyll, ff, phyll-unsup) (default: %(default)s)",
    )
    g.add_argument(
        "--pipeline-sync",
        action="store_true",
        help="one actor task at a time, in the sequential order (no overlap): identical to "
        "a sequential run even when blocks share a device",
    )
    g.add_argument(
        "--pipeline-restarts",
        type=int,
        default=d.pipeline_restarts,
        metavar="N",
        help="replace a dead actor and continue from the last checkpoint at most N times "
        "(0: stop at once) (default: %(default)s)",
    )
    if address:
        g.add_argument(
            "--address",
            dest="ray_address",
            default=None,
            metavar="ADDRESS",
            help="the Ray cluster of the actors, e.g. auto or ray://HOST:PORT (default: a local "
            "Ray instance)",
        )


def add_device_argument(g: Any, default: str | None, default_text: str = "") -> None:
    """``--device``: cpu, cuda (cuda:N) or auto (cuda where available, else cpu, said once)."""
    g.add_argument(
        "--device",
        type=resolve_device,
        default=default,
        help=f"torch device: cpu, cuda (cuda:N) or auto (cuda if available, else cpu with a "
        f"notice) (default: {default_text or '%(default)s'})",
    )


def add_trust_argument(p: Any, what: str = "run folder") -> None:
    """``--trust-code``: import the ``MODULE:NAME`` system or rule a recorded run names."""
    p.add_argument(
        "--trust-code",
        action="store_true",
        help=f"import the system or rule of your own (MODULE:NAME) that the {what} records; "
        "without it a recorded folder never runs code (the same --system MODULE:NAME given "
        "again also trusts it)",
    )


def trust_of(args: argparse.Namespace) -> Trust:
    """What the options trust: everything with ``--trust-code``, else the ``--system`` and
    ``--rule`` given (a recorded name equal to one of them is the user's own choice)."""
    if getattr(args, "trust_code", False):
        return True
    return {n for n in (getattr(args, "system", None), getattr(args, "rule", None)) if n}


def add_run_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """Output options of every command that writes a folder: --out, --overwrite, --quiet."""
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help=f"{what} folder to write")
    g.add_argument("--overwrite", action="store_true", help=f"replace a {what} already in --out")
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=TrainConfig().checkpoint_every,
        metavar="STEPS",
        help="checkpoint every STEPS training steps, 0 = at epoch ends only; epoch ends and "
        "Ctrl-C/SIGTERM always checkpoint (default: %(default)s)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress output")
    add_threads_argument(p)
    add_memory_argument(p)


def add_memory_argument(p: Any) -> None:
    """``--max-memory SIZE``: the memory budget of the memory estimate (:mod:`phyll.memory`)."""
    p.add_argument(
        "--max-memory",
        type=memory_size,
        default=None,
        metavar="SIZE",
        help="memory the process may use, e.g. 8G or 512M: a run whose estimated peak exceeds "
        "it is refused before it allocates anything (default: what is available now)",
    )


def memory_size(text: str) -> int:
    """argparse type: a size such as ``8G`` (bytes)."""
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """``--threads N|auto``: torch's thread count (applied by the command line's main)."""
    p.add_argument(
        "--threads",
        default="auto",
        metavar="N|auto",
        help="torch threads; auto: the cores the load average leaves idle, at least 1, so a "
        "busy machine is not oversubscribed (default: %(default)s)",
    )


def add_track_arguments(p: argparse.ArgumentParser) -> None:
    """``--track mlflow``, ``--track-uri URI``, ``--track-experiment NAME``."""
    g = p.add_argument_group("experiment tracking (optional extra .[mlflow])")
    g.add_argument(
        "--track",
        choices=TRACKERS,
        default=None,
        help="also log the configuration, per-epoch metrics and the run's files to MLflow",
    )
    g.add_argument(
        "--track-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the file store ./mlruns)",
    )
    g.add_argument(
        "--track-experiment",
        default="phyll",
        metavar="NAME",
        help="MLflow experiment the runs are logged under (default: %(default)s)",
    )


def tracking_of(args: argparse.Namespace) -> Tracking | None:
    """The :class:`Tracking` that ``--track`` asks for (resolved here), or None."""
    if getattr(args, "track", None) is None:
        return None
    return Tracking(args.track, args.track_uri, args.track_experiment).resolved()


def add_seeds_arguments(p: argparse.ArgumentParser, default: int) -> None:
    """``--seeds N`` (N seeds) and ``--first-seed S``: the seeds S … S+N−1."""
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=default,
        metavar="N",
        help="number of seeds, first-seed … first-seed+N−1 (default: %(default)s)",
    )
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default: %(default)s)")


def seeds_of(args: argparse.Namespace) -> list[int]:
    """The seeds ``--seeds N --first-seed S`` name."""
    return list(range(args.first_seed, args.first_seed + args.seeds))


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of parsed options; options a command lacks keep their default."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["system_params"] = parse_params(getattr(args, "system_param", []))
    rule_params = parse_params(getattr(args, "rule_param", []))
    if getattr(args, "lr", None) is not None:
        rule_params["lr"] = args.lr
    values["rule_params"] = rule_params
    values = {**values, **overrides}
    for name in ("system", "rule"):  # not given: the configuration's default
        if values.get(name) is None:
            values.pop(name, None)
    return TrainConfig(**values)

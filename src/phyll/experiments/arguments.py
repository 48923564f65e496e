"""Command-line options shared by every command that trains (train, compare, robustness, depth).

The task, physical-network, training and evaluation options are made from the declaration of
:class:`~phyll.experiments.config.TrainConfig`'s fields (:func:`add_option`: name, type,
choices, range, default and help), with one list syntax (:class:`ListAction`: comma-separated,
spaces accepted) and one mapping from parsed options to a configuration
(:func:`config_from_args`), so the commands cannot drift apart from it or from each other.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any, get_args, get_origin, get_type_hints

from phyll.data import DATASETS, DatasetError, parse_dataset_spec
from phyll.errors import ConfigError, did_you_mean
from phyll.experiments.build import resolve_device
from phyll.experiments.config import SYSTEM_PROFILES, TrainConfig, help_text
from phyll.experiments.tracking import TRACKERS, Tracking
from phyll.learning import RuleParams
from phyll.memory import parse_size
from phyll.params import (
    ParamError,
    build_params,
    check_range,
    literal_choices,
    parse_params,
    profile_text,
)
from phyll.registry import RULES, system_names
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
        raise argparse.ArgumentTypeError(FAULTS.unknown(name))
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
            f"{', '.join(DATASETS.names())}; "
            "image datasets also as NAME:HxW, e.g. mnist5k:14x14; your own data as "
            "csv:PATH or npz:PATH)"
        ) from exc
    return spec


#: the option groups of the training options (``Flag.group`` → title), in ``--help`` order
GROUPS = {
    "task": "task",
    "network": "physical network",
    "training": "training",
    "pipeline": "pipeline: every block on its own Ray actor (optional extra .[ray])",
    "evaluation": "evaluation (each costs physical queries)",
}
#: how the options of the fields that take names (or a device) are read
PARSERS: dict[str, Callable[[str], Any]] = {
    "dataset": dataset_argument,
    "system": named_choice(system_names, "system"),
    "rule": named_choice(RULES.names, "rule"),
    "faults": fault_argument,
    "device": resolve_device,
}
#: options whose default is None, "not given" (the configuration's default applies): a resume
#: trusts a ``MODULE:NAME`` given again (:func:`trust_of`)
GIVEN_ONLY = ("system", "rule")
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
HINTS = get_type_hints(TrainConfig)


def value_type(name: str) -> Callable[[str], Any]:
    """argparse type of the field ``name``: its parser (:data:`PARSERS`), else its declared
    type and range (refused as the configuration refuses it, naming the field)."""
    if name in PARSERS:
        return PARSERS[name]
    base = next(a for a in (*get_args(HINTS[name]), HINTS[name]) if a is not type(None))
    if base not in (int, float):
        return str

    def parse(text: str) -> Any:
        try:
            value = base(text)
            check_range(value, FIELDS[name], name)
        except ValueError as exc:  # ParamError included
            what = "an integer" if base is int else "a number"
            reason = str(exc) if isinstance(exc, ParamError) else f"expected {what}, got {text!r}"
            raise argparse.ArgumentTypeError(reason) from None
        return value

    return parse


def default_text(name: str) -> str:
    """The default of the field ``name`` as its help shows it: the declared text, its defaults
    by dataset kind (and what a system changes in them), or its value."""
    f, flag = FIELDS[name], FIELDS[name].metadata["flag"]
    if flag.default or profile_text(f):
        by_system = [
            f"{system} on {kind}s: {changes[name]}"
            for kind, systems in SYSTEM_PROFILES.items()
            for system, changes in systems.items()
            if name in changes
        ]
        return "; ".join([flag.default or profile_text(f), *by_system])
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return "" if default in (None, [], {}) else str(default)


def add_option(g: Any, name: str) -> None:
    """The option of the :class:`TrainConfig` field ``name``, made from its declaration
    (:func:`~phyll.experiments.config.option`): name, type, choices, default and help."""
    f, flag = FIELDS[name], FIELDS[name].metadata["flag"]
    help_ = flag.help or help_text(f)
    if HINTS[name] is bool:  # a switch: --NAME turns it on, or --no-NAME off
        on = f.default is True
        option_name = flag.name or f"--{'no-' if on else ''}{name.replace('_', '-')}"
        if on and not flag.help:
            help_ = f"do not {help_}"
        action = "store_false" if on else "store_true"
        g.add_argument(option_name, dest=name, action=action, help=help_)
        return
    shown = default_text(name)
    kwargs: dict[str, Any] = {
        "metavar": flag.metavar,
        "help": f"{help_} (default: {shown})" if shown else help_,
    }
    option_name = flag.name or f"--{name.replace('_', '-')}"
    if flag.repeat:  # a list field is parsed item by item; a dict field's KEY=VALUE pairs later
        dest = name if get_origin(HINTS[name]) is list else option_name[2:].replace("-", "_")
        kw_type = {"type": value_type(name)} if name in PARSERS else {}
        g.add_argument(option_name, dest=dest, action="append", default=[], **kw_type, **kwargs)
        return
    choices = literal_choices(HINTS[name])
    if choices:
        kwargs.update(choices=list(choices), metavar=None)
    else:
        kwargs["type"] = value_type(name)
    given_only = f.metadata["profile"] or name in GIVEN_ONLY
    g.add_argument(option_name, dest=name, default=None if given_only else f.default, **kwargs)


def add_experiment_arguments(
    p: argparse.ArgumentParser,
    *,
    rule: bool = True,
    seed: bool = True,
    blocks: bool = True,
    address: bool = True,
) -> None:
    """Task, physical network, training, pipeline and evaluation options of every command that
    trains: one per :class:`TrainConfig` field of those groups (:func:`add_option`), and
    ``--lr`` (the rule parameter ``lr``).

    ``rule=False`` / ``seed=False`` / ``blocks=False`` leave out ``--rule``/``--rule-param``,
    ``--seed`` and ``--blocks`` for commands that take several (``--rules``, ``--seeds``,
    a list of block counts); ``address=False`` leaves out ``--address`` for a command that has
    its own Ray cluster option.
    """
    left_out = {
        name
        for name, keep in (
            ("rule", rule), ("rule_params", rule), ("seed", seed), ("blocks", blocks),
            ("ray_address", address),
        )
        if not keep
    }  # fmt: skip
    for key, title in GROUPS.items():
        g = p.add_argument_group(title)
        for name, f in FIELDS.items():
            if f.metadata["flag"].group == key and name not in left_out:
                add_option(g, name)
        if key == "training":
            g.add_argument(
                "--lr",
                type=float,
                default=None,
                help="learning rate: the rule parameter lr (default: the rule's, "
                f"{RuleParams().lr})",
            )


def add_device_argument(g: Any, default: str | None, shown: str) -> None:
    """``--device`` of a command that loads a run (``shown``: its default, in words)."""
    help_ = help_text(FIELDS["device"])
    g.add_argument(
        "--device", type=resolve_device, default=default, help=f"{help_} (default: {shown})"
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
    for name, f in FIELDS.items():
        if f.metadata["flag"].group == "output":
            add_option(g, name)
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
    for name in GIVEN_ONLY:  # not given: the configuration's default
        if values.get(name) is None:
            values.pop(name, None)
    return TrainConfig(**values)

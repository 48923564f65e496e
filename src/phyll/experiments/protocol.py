"""The experiment protocol: what an experiment kind declares, and what the runner gives it.

An experiment kind (``phyll compare``, ``robustness``, ``depth``, ``sweep``, ``frontier``) is an
:class:`ExperimentKind`: how its command reads its options (``add_arguments``, ``from_args``)
and its recorded configuration (``from_record``), which runs it plans (``plan(config) →
[RunSpec]``), what it makes of them (``summarize(config, runs)``), its figures and its text
page. It knows nothing of folders, markers, resuming, Ctrl-C or executors: the one runner
(:mod:`phyll.experiments.runner`) does that for every kind, and the table of kinds
(:mod:`phyll.experiments.kinds`) is what the command line and ``phyll report`` read.

A kind's configuration is any object with ``to_dict()`` (recorded in the folder's marker file,
so that ``--resume DIR`` needs nothing else).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from phyll.errors import ConfigError, did_you_mean
from phyll.experiments.config import TrainConfig
from phyll.experiments.ownership import FolderKind
from phyll.registry import RULES


class KindConfig(Protocol):
    """An experiment kind's own configuration."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunSpec:
    """One run an experiment plans: its folder (relative to the experiment's folder), its
    configuration, how progress lines name it, and what the kind needs to know of it later."""

    folder: str
    config: TrainConfig
    label: str
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """One planned run once the executor is done with it: its summary and metrics (None and
    empty when it failed or never ran, ``error`` then says why)."""

    spec: RunSpec
    path: Path
    summary: dict[str, Any] | None
    history: list[dict[str, Any]]
    error: str | None = None


@dataclass(frozen=True)
class ExperimentKind:
    """One experiment kind: its name, folder and the functions only it knows.

    ``folder`` names the marker file (the recorded configuration, written before anything
    else) and every name the kind writes (:mod:`phyll.experiments.ownership`); the runner
    writes ``result_file`` (default ``NAME.json``) with the format marker ``phyll-NAME/1``.
    ``recorded_errors``: exceptions of one run that are recorded in its :class:`RunResult`
    instead of stopping the experiment (depth: a diverging network). ``explores``: the kind
    searches a space where some points may fail (sweep): only its first configuration is
    checked up front, a failing point is that run's error. ``finished_reruns``: the
    same command run again on a finished experiment rebuilds its outputs from the kept runs
    (else it is refused without ``--overwrite``). ``replaced_on_overwrite``: folders removed
    before an ``--overwrite`` (runs the new plan may not name), the rest being retrained.
    ``recorded_progress``: marker keys that record progress, not configuration. ``legacy``:
    whether a result file written before the format marker is this kind's (``phyll report``).
    ``executor_of(config, args)``: the executor the command's options ask for (default: the
    runs one after the other in this process).
    """

    name: str
    help: str
    description: str
    folder: FolderKind
    add_arguments: Callable[[argparse.ArgumentParser], None]
    from_args: Callable[[argparse.Namespace], KindConfig]
    from_record: Callable[[dict[str, Any], argparse.Namespace], KindConfig]
    recorded_names: Callable[[dict[str, Any]], list[tuple[str | None, str | None]]]
    default_out: Callable[[Any], Path]
    plan: Callable[[Any], list[RunSpec]]
    summarize: Callable[[Any, list[RunResult]], dict[str, Any]]
    figures: Callable[[dict[str, Any], Path], None]
    page: Callable[[dict[str, Any]], str]
    result_file: str = ""
    recorded_errors: tuple[type[Exception], ...] = ()
    explores: bool = False
    finished_reruns: bool = False
    replaced_on_overwrite: tuple[str, ...] = ()
    recorded_progress: tuple[str, ...] = ()
    legacy: Callable[[dict[str, Any]], bool] = lambda data: True
    executor_of: Callable[[Any, argparse.Namespace], Any] | None = None

    @property
    def format(self) -> str:
        """The format marker of the kind's JSON files: ``phyll-NAME/1``."""
        return f"phyll-{self.name}/1"

    @property
    def result(self) -> str:
        """The file the runner writes the summary to (``result_file``, else ``NAME.json``)."""
        return self.result_file or f"{self.name}.json"


def base_names(data: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """The ``(system, rule)`` a kind's marker records in its base ``config`` (the names whose
    code ``--resume`` may have to trust)."""
    return [(data["config"].get("system"), data["config"].get("rule"))]


def check_rule_names(
    names: Iterable[str], extra: Iterable[str] = (), option: str = "--rules"
) -> None:
    """Refuse an unknown rule name in one line, the same way for every kind (``extra``: the
    kind's own entries beside the registered rules, e.g. compare's controls)."""
    known = [*sorted(RULES), *sorted(extra)]
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            raise ConfigError(
                f"unknown rule {name!r} in {option}{hint}; choose from: {', '.join(known)}"
            )

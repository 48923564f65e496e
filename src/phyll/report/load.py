"""What ``phyll report DIR`` reads: which kind of folder DIR is, and the runs it refers to.

An experiment folder is found by its format marker: the kind whose result file
(``OUT/KIND.json``; ``summary.json`` for ``phyll compare``) says ``phyll-KIND/1``, for every kind
of :data:`~phyll.experiments.kinds.EXPERIMENT_KINDS`; files written before the marker are read
by their names. Otherwise a folder holding ``config.json`` is a ``phyll train`` run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phyll.errors import UserError
from phyll.experiments.kinds import EXPERIMENT_KINDS
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import resume_command


class ReportError(UserError):
    """DIR is not a folder ``phyll report`` can render."""


@dataclass(frozen=True)
class Run:
    """One finished run folder: configuration, summary and one record per epoch."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class Experiment:
    """A folder to report on: its kind, its main JSON and the runs the report draws from."""

    kind: str  # run, compare, robustness, depth, sweep or frontier
    folder: Path
    data: dict[str, Any]
    runs: dict[str, list[Run]] = field(default_factory=dict)


def read_run(path: Path) -> Run:
    """A finished run folder (one-line errors for a missing or unfinished one)."""
    folder = RunFolder(path)
    config = folder.read_json(folder.config_file)
    if not folder.summary_file.exists():
        names = [str(config.get(k, "")) for k in ("system", "rule", "dataset")]
        raise ReportError(
            f"{path} holds no finished run (summary.json missing); finish it: "
            f"{resume_command(path, *names)}"
        )
    return Run(path, config, folder.read_json(folder.summary_file), folder.read_metrics())


def detect(folder: Path) -> tuple[str, dict[str, Any] | None]:
    """The kind of ``folder`` and its experiment's JSON (None for a run folder)."""
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder")
    for kind in EXPERIMENT_KINDS.values():
        path = folder / kind.result
        if not path.is_file():
            continue
        data = RunFolder(folder).read_json(path)
        marker = data.get("format")
        if marker == kind.format or (marker is None and kind.legacy(data)):
            return kind.name, data
        if marker is not None and kind.result != "summary.json":
            raise ReportError(f"{path} is not a phyll {kind.name} (format marker {kind.format})")
    if (folder / "config.json").is_file():
        return "run", None
    names = ", ".join(sorted({k.result for k in EXPERIMENT_KINDS.values()}))
    raise ReportError(
        f"{folder} is not a phyll run, comparison, robustness, depth, sweep or frontier folder "
        f"(it holds neither config.json nor an experiment's {names} with its format marker)"
    )


def best_trial(sweep: dict[str, Any]) -> dict[str, Any] | None:
    """The finished trial with the best ``metric`` (``mode`` max or min), None if none."""
    metric, sign = sweep.get("metric", "val_accuracy"), -1 if sweep.get("mode") == "min" else 1
    done = [
        t
        for t in sweep.get("trials", [])
        if t.get("status") == "done" and t.get(metric) is not None
    ]
    return max(done, key=lambda t: sign * t[metric]) if done else None


def load(folder: str | Path) -> Experiment:
    """Detect the kind of ``folder`` and read what its report shows."""
    folder = Path(folder)
    kind, data = detect(folder)
    if data is None:
        run = read_run(folder)
        return Experiment(kind, folder, run.summary, {"run": [run]})
    runs: dict[str, list[Run]] = {}
    if kind == "compare":
        runs = {
            entry: [read_run(folder / "runs" / Path(path).name) for path in paths]
            for entry, paths in data.get("runs", {}).items()
        }
    elif kind == "sweep":
        best = best_trial(data)
        if best is not None and (folder / best["run_dir"] / "summary.json").is_file():
            runs = {"best": [read_run(folder / best["run_dir"])]}
    return Experiment(kind, folder, data, runs)

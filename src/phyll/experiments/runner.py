"""The one runner of every experiment kind (:mod:`phyll.experiments.protocol`).

For every kind, in this order:

1. **plan and check**: the kind plans its runs; every distinct configuration (a sweep: its
   first) is built and dropped (:func:`~phyll.experiments.train.check_configs`), and the
   output folder is claimed (:func:`~phyll.experiments.ownership.claim`), before anything is
   written;
2. **the marker first**: ``OUT/MARKER`` records the kind's configuration with the format
   marker ``phyll-KIND/1`` (so ``--resume OUT`` needs nothing else);
3. **the runs**: an executor trains each planned run folder, or keeps it when finished, or
   resumes it from its checkpoint (:func:`run_one`): :class:`LocalExecutor` one after the
   other in this process, or Ray (:mod:`phyll.experiments.ray_executor`);
4. **the outputs**: ``OUT/KIND.json`` (atomically, with the format marker), then the kind's
   figures and tables.

A folder that already holds the kind's experiment: ``--resume`` continues it with its recorded
configuration; the same command again continues an unfinished one (one of another
configuration is refused, a finished one too unless the kind rebuilds finished ones);
``--overwrite`` trains every run again. Ctrl-C stops at a step boundary with the run's
checkpoint kept, and says the command that continues the experiment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from phyll.engine import Callback
from phyll.experiments.arguments import add_trust_argument, trust_of
from phyll.experiments.ownership import claim
from phyll.experiments.protocol import ExperimentKind, KindConfig, RunResult, RunSpec
from phyll.experiments.run_folder import RunFolder, RunFolderError, output_folder
from phyll.experiments.train import check_configs, train, train_or_resume
from phyll.registry import check_recorded_names, needs_trust


def run_one(
    spec: RunSpec,
    out: Path,
    *,
    overwrite: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train one planned run folder (``out / spec.folder``), or keep it when finished, or
    resume it from its checkpoint; ``overwrite`` trains it again. Its summary."""
    path = out / spec.folder
    with output_folder(path.parent):
        if overwrite:
            return train(spec.config, path, progress=progress, overwrite=True, callbacks=callbacks)
        return train_or_resume(spec.config, path, progress=progress, callbacks=callbacks)


def result_of(spec: RunSpec, out: Path, error: str | None = None) -> RunResult:
    """What a run folder holds now: its summary and metrics when finished, else the error."""
    folder = RunFolder(out / spec.folder)
    if error is None and folder.summary_file.exists():
        summary = folder.read_json(folder.summary_file)
        return RunResult(spec, folder.path, summary, folder.read_metrics())
    return RunResult(spec, folder.path, None, [], error)


class Executor(Protocol):
    """Runs the planned runs of an experiment; one :class:`RunResult` per planned run (and any
    run the executor itself adds, e.g. the trials Optuna proposes)."""

    def run(
        self, kind: ExperimentKind, config: Any, specs: list[RunSpec], out: Path, *,
        progress: bool, overwrite: bool,
    ) -> list[RunResult]: ...  # fmt: skip


class LocalExecutor:
    """One run after the other in this process, with a progress line before and after each."""

    def run(
        self, kind: ExperimentKind, config: Any, specs: list[RunSpec], out: Path, *,
        progress: bool, overwrite: bool,
    ) -> list[RunResult]:  # fmt: skip
        results = []
        for i, spec in enumerate(specs, start=1):
            where = f"[{i}/{len(specs)}] {spec.label}"
            if progress:
                print(f"{where} → {out / spec.folder}", flush=True)
            start = time.perf_counter()
            try:
                summary = run_one(spec, out, overwrite=overwrite, progress=progress)
            except kind.recorded_errors as exc:
                results.append(result_of(spec, out, error=str(exc)))
                continue
            results.append(result_of(spec, out))
            if progress:
                print(
                    f"{where}: test accuracy {summary['test_accuracy']:.3f} in "
                    f"{time.perf_counter() - start:.1f} s",
                    flush=True,
                )
        return results


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists)."""
    return json.loads(json.dumps(value, default=str))


def _distinct(specs: list[RunSpec]) -> list[Any]:
    """One configuration per distinct run, seeds aside (a seed changes no option's validity)."""
    seen: dict[str, Any] = {}
    for spec in specs:
        key = json.dumps({**_plain(spec.config.to_dict()), "seed": None}, sort_keys=True)
        seen.setdefault(key, spec.config)
    return list(seen.values())


def marker_record(kind: ExperimentKind, config: KindConfig) -> dict[str, Any]:
    """What the marker file records: the format marker and the kind's configuration."""
    return {"format": kind.format, **config.to_dict()}


def _check_existing(kind: ExperimentKind, out: Path, record: dict[str, Any]) -> None:
    """The same command again on a folder holding this kind's experiment: refuse another
    configuration, and a finished experiment unless the kind rebuilds finished ones."""
    recorded = RunFolder(out).read_json(out / kind.folder.marker)
    wanted = {k: v for k, v in _plain(record).items() if k not in kind.recorded_progress}
    if recorded.get("format", kind.format) != kind.format:
        raise RunFolderError(f"{out / kind.folder.marker} is not a phyll {kind.name} record")
    changed = sorted(k for k, v in wanted.items() if k != "format" and recorded.get(k) != v)
    if changed:
        raise RunFolderError(
            f"{out} already holds a {kind.folder.what} of another configuration "
            f"({', '.join(changed)} differ): pass --overwrite to replace it, or choose "
            "another --out"
        )
    if (out / kind.result).exists() and not kind.finished_reruns:
        raise RunFolderError(
            f"{out} already holds a finished {kind.folder.what}: pass --overwrite to train it "
            "again, or choose another --out"
        )


def run_experiment(
    kind: ExperimentKind,
    config: KindConfig,
    out: str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Plan, check, run and summarise one experiment of ``kind`` in ``out``; its summary (what
    ``OUT/KIND.json`` holds). ``resume``: continue the experiment recorded in ``out`` (finished
    runs kept, interrupted ones resumed); ``overwrite``: train every run again."""
    out = Path(out)
    specs = kind.plan(config)
    claim(out, kind.folder)  # nothing of the user's is written over, --overwrite included
    record = marker_record(kind, config)
    marker = out / kind.folder.marker
    existing = marker.exists()
    if existing and not (overwrite or resume):
        _check_existing(kind, out, record)
    check_configs(_distinct(specs[:1] if kind.explores else specs))
    with output_folder(out):  # removed again if it was made here and nothing could start
        if overwrite and existing:
            for name in kind.replaced_on_overwrite:
                path = out / name
                if path.is_symlink():
                    path.unlink()  # the link only, never what it points to
                shutil.rmtree(path, ignore_errors=True)
        RunFolder(out).write_json(marker, record)  # the marker first: the folder is ours
        try:
            results = (executor or LocalExecutor()).run(
                kind, config, specs, out, progress=progress, overwrite=overwrite
            )
        except KeyboardInterrupt as exc:  # a run's checkpoint kept (TrainingInterrupted), or
            stopped = str(exc).split("; checkpoint kept")[0] or "interrupted"  # between runs
            raise type(exc)(f"{stopped}; {continue_hint(kind, out, config)}") from None
        finally:
            RunFolder(out).write_json(marker, marker_record(kind, config))  # progress recorded
        summary = {"format": kind.format, **kind.summarize(config, results)}
        unfinished = sum(r.summary is None and r.error is None for r in results)
        if unfinished:  # stopped before every run finished: the rest resumes
            summary["unfinished_runs"] = unfinished
        RunFolder(out).write_json(out / kind.result, summary)
        kind.figures(summary, out)
        return summary


def continue_hint(kind: ExperimentKind, out: Path, config: KindConfig) -> str:
    """The command that continues the experiment in ``out``, ``--trust-code`` where needed."""
    record = config.to_dict()
    trust = any(needs_trust(s or "", r or "") for s, r in kind.recorded_names(record))
    return (
        f"finished runs and the last checkpoint are kept: continue with "
        f"`phyll {kind.name} --resume {out}{' --trust-code' if trust else ''}`"
    )


# ---------------------------------------------------------------------- the command line
def recorded_config(kind: ExperimentKind, args: argparse.Namespace) -> KindConfig:
    """The configuration recorded in ``--resume DIR``, the code it names imported only when
    built in or trusted (``--trust-code``, or the same ``--system``/``--rule`` given)."""
    out = Path(args.resume)
    marker = out / kind.folder.marker
    if not marker.is_file():
        raise RunFolderError(f"{out} holds no {kind.folder.what} ({kind.folder.marker} missing)")
    data = RunFolder(out).read_json(marker)
    if data.get("format", kind.format) != kind.format:
        raise RunFolderError(f"{marker} is not a {kind.folder.what} record ({kind.format})")
    data = {k: v for k, v in data.items() if k != "format"}
    try:
        names = kind.recorded_names(data)
    except (KeyError, TypeError, AttributeError):
        raise RunFolderError(f"{marker} is not a {kind.folder.what} record") from None
    for system, rule in names:
        check_recorded_names(system, rule, trust_of(args), str(marker))
    try:
        return kind.from_record(data, args)
    except (KeyError, TypeError) as exc:
        raise RunFolderError(f"{marker} is not a {kind.folder.what} record ({exc})") from None


def command(kind: ExperimentKind, args: argparse.Namespace) -> int:
    """``phyll KIND ...``: run (or ``--resume``) the experiment; print its page. Exit status
    130 when runs were left unfinished (stopped): the rest resumes."""
    if args.resume:
        config, out = recorded_config(kind, args), Path(args.resume)
    else:
        config = kind.from_args(args)
        out = Path(args.out) if args.out else kind.default_out(config)
    executor = kind.executor_of(config, args) if kind.executor_of else None
    with output_folder(out.parent):  # missing parents made (and removed if it fails)
        summary = run_experiment(
            kind, config, out, progress=not args.quiet, overwrite=args.overwrite,
            resume=bool(args.resume), executor=executor,
        )  # fmt: skip
    print(kind.page(summary))
    pending = summary.get("unfinished_runs", 0)
    hint = f"; {pending} runs unfinished: {continue_hint(kind, out, config)}" if pending else ""
    print(f"{kind.folder.what} folder: {out}{hint}")
    return 130 if pending else 0


def register(kind: ExperimentKind, sub: Any) -> None:
    """Add ``phyll KIND`` to the command line: the kind's options, then ``--resume DIR`` and
    ``--trust-code``, the same for every kind."""
    p = sub.add_parser(kind.name, help=kind.help, description=kind.description)
    kind.add_arguments(p)
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help=f"continue the {kind.folder.what} in DIR with its recorded options: finished runs "
        "are kept, interrupted ones resume from their checkpoints",
    )
    add_trust_argument(p, f"{kind.folder.what} folder")
    p.set_defaults(func=lambda args: command(kind, args))

"""One training run: build the experiment, ride the engine, keep the run folder; or resume one.

:func:`train` builds the experiment from a :class:`TrainConfig` (and optional objects: a
dataset, a system factory), assembles the :class:`~phyll.engine.Engine` with the run folder's
callbacks (:mod:`phyll.experiments.run_callbacks`), the signal guard and the progress bar, and
returns the summary. :func:`resume` continues a run folder from its last checkpoint: the final
weights, metrics and query counts are bit-identical to an uninterrupted run and no physical
query is repeated (see the engine's state). A physical system that fails stops training with a
:class:`~phyll.engine.TrainingError` naming the last checkpoint to resume from.

A run made with Python objects records what they were: a system factory by the ``MODULE:NAME``
that imports it back, where there is one (then ``phyll train --resume DIR --trust-code``,
``predict`` and ``evaluate`` rebuild it), else ``"python:NAME"``, like a dataset object, with a
fingerprint of the data; resuming those needs the same objects again. A run folder never
imports code by itself: a recorded ``MODULE:NAME`` is imported only with the caller's consent
(``trust_code``, :func:`phyll.registry.check_recorded_names`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from phyll.data import Dataset, provenance_changes
from phyll.engine import (
    Callback,
    Engine,
    EvalPlan,
    ProgressBar,
    SignalGuard,
    TrainingError,
    TrainingInterrupted,
)
from phyll.errors import ConfigError
from phyll.experiments.build import Experiment, SystemFactory, build_experiment
from phyll.experiments.config import FORMAT, TrainConfig
from phyll.experiments.pipeline import check_pipeline, pipelined_engine
from phyll.experiments.run_callbacks import RunFolderWriter, SummaryInfo
from phyll.experiments.run_folder import RunFolder, RunFolderError
from phyll.machine import load_average, machine_info
from phyll.registry import PYTHON, SYSTEMS, check_recorded_names, needs_trust
from phyll.systems.contract import is_positional_factory
from phyll.systems.recording import record_systems
from phyll.usercode import Trust, importable_path

__all__ = [
    "TrainingError",
    "TrainingInterrupted",
    "check_configs",
    "resume",
    "train",
    "train_or_resume",
]


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    dataset: Dataset | None = None,
    system_factory: SystemFactory | None = None,
    progress: bool = True,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    started: float | None = None,
) -> dict[str, Any]:
    """Train one run from ``config``; write the run folder ``out`` if given; return the summary.

    ``dataset`` replaces the registry's dataset (e.g. ``phyll.data.from_arrays(x, y)``);
    ``system_factory`` (a class or factory called as :mod:`phyll.systems.contract` says:
    ``n_inputs``, ``n_outputs``, ``seed``, then ``config.system_params``; or the older
    ``(block, n_inputs, n_outputs)``) builds each block's physical system instead of
    ``config.system``. ``callbacks`` are extra engine callbacks (experiment tracking, a
    sweep's reporter), called after the run folder's. Everything is built and checked before
    the folder is created. ``started`` (:func:`time.perf_counter`; default: now) is when the
    run's work began: the command line passes the process's start, so that the summary's
    ``wall_time_s`` covers the imports too (``startup_s``).
    """
    started = time.perf_counter() if started is None else started
    check_train_arguments(config, out, dataset)
    exp = build_experiment(config, dataset=dataset, system_factory=system_factory)
    check_pipeline(config, exp)
    recorded = recorded_config(exp, dataset is not None, system_factory)
    if out is None:
        return run(exp, recorded, None, progress=progress, callbacks=callbacks, started=started)
    folder = RunFolder(out)
    folder.create(overwrite=overwrite)  # locked; an old run stays until the first checkpoint
    try:
        return run(exp, recorded, folder, progress=progress, callbacks=callbacks, started=started)
    finally:
        folder.close()


def check_train_arguments(config: Any, out: Any, dataset: Any) -> None:
    """:func:`train`'s arguments of the wrong type, as the library's user error."""
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train() takes a phyll.TrainConfig, got {type(config).__name__}")
    if out is not None and not isinstance(out, str | os.PathLike):
        raise ConfigError(f"train(out=...) must be a folder path, got {type(out).__name__}")
    if dataset is not None and not isinstance(dataset, Dataset):
        raise ConfigError(
            f"train(dataset=...) must be a phyll Dataset (phyll.data.from_arrays), got "
            f"{type(dataset).__name__}"
        )


def train_or_resume(
    config: TrainConfig,
    out: str | Path,
    *,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """One run folder of an experiment that trains many (depth, robustness, sweep, frontier):
    its summary when the run is finished, resumed from its checkpoint when it was interrupted,
    else trained from the start. A folder holding a run of another configuration is refused:
    an experiment never mixes in a stale run."""
    folder = RunFolder(out)
    if not (folder.summary_file.exists() or folder.checkpoint_file.exists()):
        return train(config, out, progress=progress, callbacks=callbacks)
    folder.check_is_run()
    recorded = folder.read_json(folder.config_file)
    wanted = json.loads(json.dumps(config.to_dict()))  # as recorded: tuples become lists
    changed = sorted(k for k, v in wanted.items() if recorded.get(k, v) != v)
    if changed:
        raise RunFolderError(
            f"{folder.path} holds a run of another configuration ({', '.join(changed)} "
            "differ): remove it or write the experiment elsewhere"
        )
    if folder.summary_file.exists():
        return folder.read_json(folder.summary_file)
    trusted = {config.system, config.rule}  # the experiment's own names, no others
    return resume(out, trust_code=trusted, progress=progress, callbacks=callbacks)


def check_configs(configs: Iterable[TrainConfig]) -> None:
    """Build each configuration and drop it, so an experiment command that trains several runs
    refuses a bad option (an unknown parameter, unreadable data) before it writes anything."""
    for config in configs:
        check_pipeline(config, build_experiment(config))


def resume(
    out: str | Path,
    *,
    dataset: Dataset | None = None,
    system_factory: SystemFactory | None = None,
    trust_code: Trust = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    started: float | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Continue the run in ``out`` from its last checkpoint (same configuration and seed).

    ``epochs``: train to this many epochs in total instead of the recorded number; a finished
    run then trains on from its last epoch (:meth:`~phyll.engine.Engine.extend`).

    Runs made with Python objects without an import path need them again (``dataset``,
    ``system_factory``). A system or rule the run records as ``MODULE:NAME`` is imported only
    when ``trust_code`` is True or lists that name (a run folder never runs code by itself).
    ``callbacks`` as for :func:`train` (a keyed one gets its checkpointed state back).
    """
    started = time.perf_counter() if started is None else started
    folder = RunFolder(out)
    if not folder.path.is_dir():
        raise RunFolderError(f"cannot resume {folder.path}: no such folder")
    folder.check_is_run()
    state = folder.load(folder.checkpoint_file)
    if not isinstance(state.get("config"), dict):
        raise RunFolderError(f"{folder.checkpoint_file} is not a phyll checkpoint (no config)")
    recorded = state["config"]
    system = PYTHON if system_factory is not None else recorded.get("system")
    check_recorded_names(system, recorded.get("rule"), trust_code, str(folder.path))
    config = TrainConfig.from_dict(recorded)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    folder.read_metrics()  # a corrupt line stops here, before anything is built
    for what, given, option in (
        ("dataset", dataset, "dataset"),
        ("system", system_factory, "system_factory"),
    ):
        if getattr(config, what).startswith(PYTHON) and given is None:
            raise RunFolderError(
                f"{folder.path} was trained with a {what} built in Python "
                f"({getattr(config, what)}): resume it from Python with "
                f"phyll.resume({str(folder.path)!r}, {option}=...)"
            )
    build_config = config
    if dataset is not None or system_factory is not None:
        build_config = dataclasses.replace(
            config,
            dataset=config.dataset.removeprefix(PYTHON),
            system=config.system.removeprefix(PYTHON),
        )
    exp = build_experiment(build_config, dataset=dataset, system_factory=system_factory)
    check_pipeline(config, exp)
    resolved = folder.read_json(folder.config_file).get("resolved", {})
    changed = provenance_changes(resolved.get("dataset", {}).get("provenance") or {"files": {}})
    if changed:
        raise RunFolderError(f"cannot resume {folder.path}: {'; '.join(changed)}")
    expected = resolved.get("data_fingerprint")
    if expected is not None and expected != data_fingerprint(exp.dataset):
        raise RunFolderError(
            f"the data of {folder.path} changed since the run started (fingerprint "
            f"{data_fingerprint(exp.dataset)[:12]}…, recorded {expected[:12]}…): "
            "resume needs the same data"
        )
    folder.acquire()
    try:
        return run(
            exp,
            config,
            folder,
            progress=progress,
            state=state,
            callbacks=callbacks,
            started=started,
        )
    finally:
        folder.close()


def run(
    exp: Experiment,
    config: TrainConfig,
    folder: RunFolder | None,
    *,
    progress: bool = True,
    state: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    started: float | None = None,
) -> dict[str, Any]:
    """Assemble the engine for ``exp`` (run-folder callbacks if ``folder``, then
    ``callbacks``) and fit it."""
    load_at_start = load_average()
    info = SummaryInfo(lambda: {**run_info(config, exp), "load_average_start": load_at_start})
    chain: list[Callback] = [*exp.callbacks, info]
    writer = None
    if folder is not None:
        recorders = record_systems(exp.systems, folder.records_dir) if config.record else []
        writer = RunFolderWriter(
            folder,
            config.to_dict(),
            config_record(config, exp),
            config.checkpoint_every,
            recorders,
            title=f"{config.rule} · {config.dataset} · {config.system}",
        )
        chain.append(writer)
    elif config.record:
        raise ConfigError("recording (record=True) needs a run folder")
    chain += [
        *callbacks,
        SignalGuard(),
        ProgressBar(f"{config.rule} on {config.dataset}/{config.system}", progress),
    ]
    settings: dict[str, Any] = dict(
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        eval_plan=EvalPlan(
            config.eval_every,
            config.eval_samples or None,  # 0: every validation sample
            config.test_curve,
            config.train_eval_samples,
        ),
        callbacks=chain,
        augment=exp.augment,
        started=started,
    )
    engine = (
        pipelined_engine(exp, config, **settings)
        if config.pipeline != "none"
        else Engine(exp.model, exp.rule, exp.splits, **settings)
    )
    if state is not None:
        try:
            engine.load_state_dict(state)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            where = folder.checkpoint_file if folder else "the checkpoint"
            reason = " ".join(str(exc).split())[:200]
            raise RunFolderError(
                f"{where} does not fit this run ({type(exc).__name__}: {reason})"
            ) from None
        planned = int(state["config"]["epochs"])
        if config.epochs != planned:  # trained longer (or shorter) than recorded
            engine.epochs = planned
            engine.extend(config.epochs)
            if folder is not None:
                record = folder.read_json(folder.config_file)
                folder.write_json(folder.config_file, {**record, "epochs": config.epochs})
    try:
        return engine.fit()
    except TrainingInterrupted as exc:
        hint = f"; checkpoint kept: {resume_hint(config, folder)}" if folder else ""
        raise TrainingInterrupted(f"{exc}{hint}") from None
    except TrainingError as exc:
        raise TrainingError(f"{exc}{kept(writer, config, folder)}") from exc.__cause__


def resume_hint(config: TrainConfig, folder: RunFolder | None) -> str:
    """How to continue the run in ``folder``."""
    if folder is None:
        return "no run folder"
    return resume_command(folder.path, config.system, config.rule, config.dataset)


def resume_command(path: Path, system: str, rule: str, dataset: str) -> str:
    """How to continue the run in ``path`` of this system, rule and dataset: a command that
    will not refuse it (with ``--trust-code`` where it imports the user's code)."""
    if system.startswith(PYTHON) or dataset.startswith(PYTHON):
        return f"continue from Python with phyll.resume({str(path)!r}, ...)"
    trust = " --trust-code" if needs_trust(system, rule) else ""
    return f"continue with `phyll train --resume {path}{trust}`"


def kept(writer: RunFolderWriter | None, config: TrainConfig, folder: RunFolder | None) -> str:
    """What a failed run keeps: its last good checkpoint, if any."""
    if writer is None or folder is None:
        return ""
    if writer.last_checkpoint is None:
        return "; no checkpoint was written"
    epoch, step = writer.last_checkpoint
    return (
        f"; last good checkpoint: {folder.checkpoint_file} (epoch {epoch}, step {step}): "
        f"{resume_hint(config, folder)}"
    )


def recorded_config(exp: Experiment, own_dataset: bool, factory: Any) -> TrainConfig:
    """The configuration as recorded: the sizes the systems have, Python-built datasets marked
    as such, a system factory by the name that rebuilds it (:func:`factory_record`)."""
    changes: dict[str, Any] = {}
    if own_dataset:
        changes["dataset"] = PYTHON + exp.dataset.name
    if factory is not None:
        changes["system"] = factory_record(factory) or PYTHON + system_name(exp.systems[0])
    return dataclasses.replace(exp.config, **changes) if changes else exp.config


def factory_record(factory: Any) -> str | None:
    """The name that rebuilds ``factory`` under the contract: its registered name, or the
    ``MODULE:NAME`` that imports it; None for a lambda, a closure, code of ``__main__`` or
    the older positional form (the run then needs the factory again)."""
    if is_positional_factory(factory):
        return None
    return SYSTEMS.name_of(factory) or importable_path(factory)


def system_name(system: Any) -> str:
    """A system's own name (a CallableSystem's ``name``), else its class name."""
    return str(getattr(system, "name", None) or type(system).__name__)


def data_fingerprint(dataset: Dataset) -> str:
    """sha256 of the dataset's arrays: resume refuses data that changed."""
    digest = hashlib.sha256()
    for tensor in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def config_record(config: TrainConfig, exp: Experiment) -> dict[str, Any]:
    """``config.json``: the format marker, the configuration and what it resolved to."""
    return {
        "format": FORMAT,
        **config.to_dict(),
        "resolved": {
            "dataset": exp.dataset.describe(),
            "data_fingerprint": data_fingerprint(exp.dataset),
            "systems": [s.describe() for s in exp.systems],
            "rule": exp.rule.describe(),
            "n_train": len(exp.splits.y_train),
            "n_val": len(exp.splits.y_val),
        },
    }


def chance_accuracy(labels: torch.Tensor) -> float | None:
    """The accuracy of always answering the most frequent class of ``labels`` (the test
    split): what a model must beat (1 / classes only on balanced data)."""
    if len(labels) == 0:
        return None
    return int(torch.bincount(labels.long().cpu()).max()) / len(labels)


def run_info(config: TrainConfig, exp: Experiment) -> dict[str, Any]:
    """The descriptive keys of a run's summary (read at the end: e.g. PAT's twin fit)."""
    return {
        "chance_accuracy": chance_accuracy(exp.splits.y_test),
        "dataset": config.dataset,
        "system": config.system,
        "rule": config.rule,
        "seed": config.seed,
        "blocks": config.blocks,
        "width": config.width,
        "use_physics": config.use_physics,
        "pipeline": config.pipeline,
        "prediction": exp.rule.prediction,
        "model_free": exp.rule.model_free,
        "class_names": list(exp.dataset.class_names),
        "systems": [s.describe() for s in exp.systems],
        "device_time": device_time_source(exp.systems),
        "rule_details": exp.rule.describe(),
        **machine_info(),
    }


def device_time_source(systems: Sequence[Any]) -> str:
    """Where ``device_time_s`` comes from: every device's declared measurement time
    (``"declared"``), the measured duration of each call (``"measured"``: a device that
    declares none, e.g. a served one timed by its round trips), or ``"mixed"``."""
    declared = {s.measurement_time_s is not None for s in systems}
    if declared == {True}:
        return "declared"
    return "measured" if declared == {False} else "mixed"

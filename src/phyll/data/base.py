"""The dataset container shared by every loader: features in [0, 1], integer labels, a split.

Also the pieces every loader shares: the stratified and group-disjoint splits, the min–max
scaling into the drive range, and file fingerprints (provenance).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.errors import UserError

#: most classes a dataset may have; checked before anything is sized by a label value
MAX_CLASSES = 10_000


class DatasetError(UserError, ValueError):
    """A dataset could not be loaded (missing file, bad format); the message says what to do."""


@dataclass
class Dataset:
    """A classification task with a fixed train/test split; features scaled to [0, 1]."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    #: (height, width) of image datasets, whose features are pixels row by row; else None
    image_shape: tuple[int, int] | None = None
    #: one name per feature column (``f0, f1, …`` when the data has none)
    feature_names: list[str] = field(default_factory=list)
    #: how raw features were mapped to [0, 1], as plain data (see :func:`fit_minmax`); None
    #: when the features came in [0, 1] already (the built-in datasets)
    scaling: dict[str, object] | None = None
    #: the data files read, ``{"files": {absolute path: sha256}}``; empty when there are none
    provenance: dict[str, object] = field(default_factory=dict)
    #: group (speaker, session) of each training / test row when the data has groups, else None
    train_groups: np.ndarray | None = None
    test_groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if x.dim() != 2 or x.shape[0] != y.shape[0]:
                raise DatasetError(
                    f"{self.name}: features/labels shapes {list(x.shape)}, {list(y.shape)}"
                )
            if not torch.isfinite(x).all():
                raise DatasetError(f"{self.name}: features contain NaN or inf")
            if x.min() < 0 or x.max() > 1:
                raise DatasetError(f"{self.name}: features must be scaled to [0, 1]")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise DatasetError(f"{self.name}: train and test have different feature counts")
        if not self.feature_names:
            self.feature_names = [f"f{i}" for i in range(self.n_features)]
        if len(self.feature_names) != self.n_features:
            raise DatasetError(
                f"{self.name}: {len(self.feature_names)} feature names for "
                f"{self.n_features} features"
            )
        if (self.train_groups is None) != (self.test_groups is None):
            raise DatasetError(f"{self.name}: groups are needed for both splits or neither")
        for groups, y in ((self.train_groups, self.y_train), (self.test_groups, self.y_test)):
            if groups is not None and len(groups) != len(y):
                raise DatasetError(f"{self.name}: {len(groups)} groups for {len(y)} rows")

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "source": self.source,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names),
            "scaling": self.scaling,
            "provenance": self.provenance,
        }

    def validation_split(self, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (train, validation) into the training split, fixed by ``seed``.

        Without groups: :func:`stratified_split` of the training labels (what runs have always
        used). With groups: whole groups are held out (:func:`group_split`), so no speaker or
        session is on both sides. ``fraction <= 0``: every row trains.
        """
        n = len(self.y_train)
        if fraction <= 0:
            return np.arange(n), np.arange(0)
        labels = self.y_train.numpy()
        if self.train_groups is None:
            return stratified_split(labels, fraction, seed)
        return group_split(labels, self.train_groups, fraction, seed, purpose="validation")

    def transform(self, raw: np.ndarray) -> Tensor:
        """Raw feature rows ``[n, n_features]`` → drive-range features, with this dataset's
        scaling (fitted on its training split); values outside [0, 1] are clipped."""
        try:
            x = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{self.name}: feature rows must be numbers ({exc})") from exc
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DatasetError(
                f"{self.name}: expected rows of {self.n_features} features, got shape "
                f"{list(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise DatasetError(f"{self.name}: feature rows contain NaN or inf")
        scaled = np.clip(x, 0.0, 1.0) if self.scaling is None else apply_scaling(x, self.scaling)
        return torch.as_tensor(scaled.astype(np.float32))


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with the class proportions kept, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def group_split(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int, purpose: str = "test"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) holding out whole groups, ≈ ``fraction`` of the rows.

    Groups are visited in an order fixed by ``seed``; a group is held out when that brings the
    held-out row count closer to the target and leaves every class some kept rows (so no class
    is tested that was never trained). Raises :class:`DatasetError` when no group can go.
    """
    names, inverse = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(names)))[:-1]
    rows_of = np.split(order, bounds)
    n_codes = int(labels.max()) + 1 if len(labels) else 0
    kept_counts = np.bincount(labels, minlength=n_codes)
    target = fraction * len(labels)
    held = np.zeros(len(names), dtype=bool)
    n_held = 0
    for g in np.random.default_rng(seed).permutation(len(names)):
        counts = np.bincount(labels[rows_of[g]], minlength=n_codes)
        if np.any((counts > 0) & (counts == kept_counts)):
            continue  # would take a class's last rows out
        size = int(counts.sum())
        if n_held and abs(n_held + size - target) >= abs(n_held - target):
            continue
        held[g], n_held = True, n_held + size
        kept_counts -= counts
    if not n_held:
        raise DatasetError(
            f"no group can be held out for the {purpose} split without taking a class's last "
            f"rows out of training ({len(names)} group(s)); add groups or give a split column"
        )
    held_rows = held[inverse]
    return np.flatnonzero(~held_rows), np.flatnonzero(held_rows)


def fit_minmax(x_train: np.ndarray) -> dict[str, object]:
    """Per-feature min–max scaling fitted on the training rows, as plain data."""
    lo, hi = x_train.min(axis=0), x_train.max(axis=0)
    return {"kind": "minmax", "min": lo.tolist(), "max": hi.tolist()}


def apply_scaling(x: np.ndarray, scaling: dict[str, object]) -> np.ndarray:
    """Map raw features into [0, 1] with ``scaling`` (from :func:`fit_minmax`): constant
    features map to 0; values outside the fitted range are clipped to [0, 1]."""
    if scaling.get("kind") != "minmax":
        raise DatasetError(f"unknown scaling {scaling.get('kind')!r} (expected 'minmax')")
    lo = np.asarray(scaling["min"], dtype=np.float64)
    span = np.asarray(scaling["max"], dtype=np.float64) - lo
    safe = np.where(span > 0, span, 1.0)
    scaled = np.where(span > 0, (np.asarray(x, dtype=np.float64) - lo) / safe, 0.0)
    return np.clip(scaled, 0.0, 1.0)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_provenance(*paths: str | os.PathLike[str]) -> dict[str, object]:
    """``{"files": {absolute path: sha256}}`` for the data files a dataset was read from."""
    return {"files": {str(Path(p).resolve()): file_sha256(p) for p in paths}}


def provenance_changes(provenance: dict[str, object]) -> list[str]:
    """One line per data file that is gone or whose bytes changed since ``provenance`` was
    recorded (empty when all match): what a resumed run checks before it continues."""
    files = provenance.get("files", {})
    if not isinstance(files, dict):
        raise DatasetError(f"provenance {provenance!r} has no 'files' mapping")
    changes = []
    for path, sha in files.items():
        if not Path(path).is_file():
            changes.append(f"{path}: the data file is gone")
        elif file_sha256(path) != sha:
            changes.append(f"{path}: the data file changed (sha256 {sha[:12]}… before)")
    return changes


def make_dataset(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    class_names: list[str],
    source: str,
    image_shape: tuple[int, int] | None = None,
    *,
    feature_names: list[str] | None = None,
    provenance: dict[str, object] | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from NumPy arrays (features already in [0, 1]) and split
    indices."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    return Dataset(
        name=name,
        x_train=xt[train_idx],
        y_train=yt[train_idx],
        x_test=xt[test_idx],
        y_test=yt[test_idx],
        n_classes=len(class_names),
        class_names=class_names,
        source=source,
        image_shape=image_shape,
        feature_names=list(feature_names or []),
        provenance=provenance or {},
    )


def pool_images(dataset: Dataset, height: int, width: int) -> Dataset:
    """Average-pool an image dataset to ``height × width`` pixels (area averaging).

    Fits images to a system with fewer drive channels (28×28 → 14×14 = 196 or 7×7 = 49
    channels). Each output pixel is the mean of the input pixels its area covers
    (``adaptive_avg_pool2d``), so features stay in [0, 1].
    """
    if dataset.image_shape is None:
        raise DatasetError(f"{dataset.name} is not an image dataset: it cannot be resized")
    h0, w0 = dataset.image_shape
    if not (1 <= height <= h0 and 1 <= width <= w0):
        raise DatasetError(
            f"{dataset.name}: can only shrink its {h0}x{w0} images, not resize to {height}x{width}"
        )

    def pool(x: Tensor) -> Tensor:
        images = x.reshape(-1, 1, h0, w0)
        return F.adaptive_avg_pool2d(images, (height, width)).reshape(len(x), -1).clamp(0, 1)

    return Dataset(
        name=f"{dataset.name}:{height}x{width}",
        x_train=pool(dataset.x_train),
        y_train=dataset.y_train,
        x_test=pool(dataset.x_test),
        y_test=dataset.y_test,
        n_classes=dataset.n_classes,
        class_names=dataset.class_names,
        source=f"{dataset.source}, average-pooled to {height}x{width}",
        image_shape=(height, width),
        provenance=dataset.provenance,
        train_groups=dataset.train_groups,
        test_groups=dataset.test_groups,
    )

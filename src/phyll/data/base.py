"""The dataset container shared by every loader: features in [0, 1], integer labels, a split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class DatasetError(ValueError):
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
        }


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


def make_dataset(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    class_names: list[str],
    source: str,
    image_shape: tuple[int, int] | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from NumPy arrays and split indices."""
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
    )

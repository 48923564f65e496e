"""scikit-learn's 8×8 handwritten digits (1,797 images, embedded in scikit-learn, no download)."""

from __future__ import annotations

from phyll.data.base import Dataset, make_dataset, stratified_split


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """64 pixel features scaled to [0, 1], 10 classes, stratified split fixed by ``seed``."""
    from sklearn.datasets import load_digits as sklearn_digits  # 1–2 s: only when used

    bunch = sklearn_digits()
    x, y = bunch.data / 16.0, bunch.target
    train, test = stratified_split(y, test_fraction, seed)
    return make_dataset(
        "digits",
        x,
        y,
        train,
        test,
        [str(d) for d in range(10)],
        "scikit-learn load_digits",
        image_shape=(8, 8),
    )

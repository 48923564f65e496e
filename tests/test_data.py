"""Dataset registry, embedded tasks, the packaged real 7-vowel file, the catalogue, clear
errors."""

from __future__ import annotations

import csv

import pytest
import torch

from phyll.data import DATASETS, DatasetError, dataset_catalogue, file_sha256, load_dataset
from phyll.data.vowels import GROUPS, PB1952_FORMANTS_HZ, packaged_vowels7_path


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


def test_real_vowels7_ships_inside_the_package_with_its_own_split():
    d = load_dataset("vowels7")
    assert (len(d.y_train), len(d.y_test), d.n_features, d.n_classes) == (210, 49, 12, 7)
    assert torch.equal(d.x_test, load_dataset("vowels7", seed=5).x_test)
    assert d.scaling is None and d.feature_names == [f"f{i}" for i in range(12)]
    path = packaged_vowels7_path()
    assert d.provenance == {"files": {str(path.resolve()): file_sha256(path)}}


def test_packaged_vowels7_is_the_shared_reference_file(shared_data):
    shared = shared_data / "vowels7_formants.csv"
    assert packaged_vowels7_path().read_bytes() == shared.read_bytes()


def test_vowels7_data_path_overrides_the_packaged_file(tmp_path):
    lines = packaged_vowels7_path().read_text().splitlines(keepends=True)
    (tmp_path / "vowels7_formants.csv").write_text("".join(lines[:1] + lines[1:60]))
    d = load_dataset("vowels7", data_path=tmp_path)  # a folder holding the file
    assert len(d.y_train) + len(d.y_test) == 59


def test_missing_vowels7_file_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match=r"needs its CSV file \(looked for .*nope\.csv\)"):
        load_dataset("vowels7", data_path=tmp_path / "nope.csv")


def test_malformed_vowels7_file_is_refused(tmp_path):
    bad = tmp_path / "v.csv"
    bad.write_text("f0,label\n0.5,1\n")
    with pytest.raises(DatasetError, match=r"expected columns f0\.\.f11,label,split"):
        load_dataset("vowels7", data_path=bad)
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="no label column 'label'; the columns are 'a', 'b'"):
        load_dataset("vowels7", data_path=bad)


def test_catalogue_matches_the_datasets_it_can_load_without_files():
    rows = {row["name"]: row for row in dataset_catalogue()}
    assert set(DATASETS) | {"csv:PATH", "npz:PATH"} == set(rows)
    for name, row in rows.items():
        assert row["needs"] in ("embedded", "package", "files")
        if row["needs"] == "files":
            continue
        described = load_dataset(name).describe()
        assert {k: row[k] for k in ("n_train", "n_test", "n_features", "n_classes")} == {
            k: described[k] for k in ("n_train", "n_test", "n_features", "n_classes")
        }


def test_embedded_dataset_refuses_a_data_path(tmp_path):
    with pytest.raises(DatasetError, match="embedded and takes no --data-path"):
        load_dataset("digits", data_path=tmp_path)

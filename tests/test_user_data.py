"""Users' own data: CSV and NPZ files and in-memory arrays (``phyll.data.tabular``): labels,
splits, groups, scaling fitted on the training split, prediction rows, and one clear line per
kind of bad data."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from phyll.data import (
    Dataset,
    DatasetError,
    file_sha256,
    from_arrays,
    load_dataset,
    parse_dataset_spec,
    provenance_changes,
    read_feature_rows,
    stratified_split,
)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def iris_like(path: Path, n_per_class: int = 10, seed: int = 0) -> Path:
    """Three string classes, two numeric features, a text column."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, name in enumerate(["versicolor", "setosa", "virginica"]):
        for i in range(n_per_class):
            rows.append(
                [
                    f"{rng.normal(5 + k, 0.3):.3f}",
                    f"{rng.normal(1 + k, 0.2):.3f}",
                    name,
                    f"note {i}",
                ]
            )
    return write_csv(path, ["sepal_length", "petal_width", "label", "comment"], rows)


def grouped(path: Path, n_groups: int = 10, per_class: int = 4, split: bool = False) -> Path:
    """``n_groups`` speakers × 3 classes × ``per_class`` tokens; optionally a split column
    putting the last 3 speakers in test."""
    rng = np.random.default_rng(1)
    header = ["a", "b", "label", "group"] + (["split"] if split else [])
    rows = []
    for g in range(n_groups):
        for c in range(3):
            for _ in range(per_class):
                row = [rng.normal(c, 1.0), rng.normal(-c, 2.0), c, f"spk{g}"]
                rows.append(row + (["test" if g >= n_groups - 3 else "train"] if split else []))
    return write_csv(path, header, rows)


def message(excinfo: pytest.ExceptionInfo[DatasetError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


# -- CSV ---------------------------------------------------------------------------------


def test_csv_string_labels_stratified_split_fixed_by_seed(tmp_path):
    path = iris_like(tmp_path / "iris.csv")
    d = load_dataset(f"csv:{path}", seed=0)
    assert isinstance(d, Dataset) and d.name == f"csv:{path}"
    assert d.class_names == ["setosa", "versicolor", "virginica"]  # sorted
    assert d.feature_names == ["sepal_length", "petal_width"] and "comment" in d.source
    assert (len(d.y_train), len(d.y_test), d.n_classes) == (24, 6, 3)
    assert torch.bincount(d.y_test).tolist() == [2, 2, 2]  # stratified
    again, other = load_dataset(f"csv:{path}", seed=0), load_dataset(f"csv:{path}", seed=1)
    assert torch.equal(d.x_test, again.x_test) and not torch.equal(d.x_test, other.x_test)
    assert d.provenance == {"files": {str(path.resolve()): file_sha256(path)}}
    assert provenance_changes(d.provenance) == []
    path.write_text(path.read_text() + "5.0,1.0,setosa,late\n")
    assert "changed" in provenance_changes(d.provenance)[0]


def test_csv_integer_labels_in_a_named_column(tmp_path):
    rows = [[i, i % 3 * 10.0, i % 3] for i in range(30)]
    path = write_csv(tmp_path / "codes.csv", ["x", "y", "kind"], rows)
    d = load_dataset(f"csv:{path}", label_column="kind")
    assert d.class_names == ["0", "1", "2"] and d.n_classes == 3
    assert d.feature_names == ["x", "y"]
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")  # no 'label' column
    assert message(exc) == (
        f"{path}: no label column 'label'; the columns are 'x', 'y', 'kind' "
        "(name the label column with --label-column)"
    )


def test_csv_split_column_is_kept(tmp_path):
    rows = [[i, i % 2, "test" if i in (3, 4) else " Train "] for i in range(10)]
    d = load_dataset(f"csv:{write_csv(tmp_path / 's.csv', ['v', 'label', 'split'], rows)}")
    assert d.scaling == {"kind": "minmax", "min": [0.0], "max": [9.0]}
    assert torch.allclose(d.x_test[:, 0], torch.tensor([3 / 9, 4 / 9]))
    assert d.y_test.tolist() == [1, 0] and len(d.y_train) == 8


def test_scaling_is_fitted_on_the_training_split_only(tmp_path):
    rows = [[v, 7.0, i % 2, "train"] for i, v in enumerate([10.0, 20.0, 30.0, 40.0])]
    rows += [[0.0, 7.0, 0, "test"], [25.0, 7.0, 1, "test"], [90.0, 7.0, 0, "test"]]
    path = write_csv(tmp_path / "scale.csv", ["v", "const", "label", "split"], rows)
    d = load_dataset(f"csv:{path}")
    assert d.scaling == {"kind": "minmax", "min": [10.0, 7.0], "max": [40.0, 7.0]}
    assert d.x_train[:, 0].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert d.x_test[:, 0].tolist() == pytest.approx([0.0, 0.5, 1.0])  # clipped outside
    assert d.x_train[:, 1].abs().sum() == 0  # a constant feature maps to 0


def test_transform_and_read_feature_rows_reproduce_the_training_features(tmp_path):
    path = iris_like(tmp_path / "iris.csv")
    d = load_dataset(f"csv:{path}")
    with path.open() as f:
        table = list(csv.DictReader(f))
    # prediction rows: columns reordered, no label, an extra column
    rows = [[r["comment"], r["petal_width"], r["sepal_length"]] for r in table]
    new = write_csv(tmp_path / "new.csv", ["comment", "petal_width", "sepal_length"], rows)
    raw = read_feature_rows(new, d.feature_names)
    assert raw.shape == (30, 2)
    x_all = d.transform(raw)
    train_rows = {tuple(row) for row in d.x_train.tolist()}
    assert sum(tuple(row) in train_rows for row in x_all.tolist()) == len(d.y_train)
    assert d.transform(np.array([[-100.0, 100.0]])).tolist() == [[0.0, 1.0]]
    with pytest.raises(DatasetError) as exc:
        read_feature_rows(new, ["sepal_length", "petal_length", "petal_width", "colour"])
    assert "missing feature column(s) 'petal_length', 'colour'" in message(exc)


def test_groups_are_disjoint_in_test_and_validation_splits(tmp_path):
    d = load_dataset(f"csv:{grouped(tmp_path / 'g.csv')}", seed=3)
    train_groups, test_groups = set(d.train_groups), set(d.test_groups)
    assert train_groups and test_groups and not train_groups & test_groups
    assert len(train_groups | test_groups) == 10
    assert 12 <= len(d.y_test) <= 36  # ≈ 20 % of 120 rows, whole speakers of 12
    train, val = d.validation_split(0.25, seed=0)
    assert not set(d.train_groups[train]) & set(d.train_groups[val])
    assert abs(len(val) - 0.25 * len(d.y_train)) <= 12
    assert set(d.y_train[train].tolist()) == {0, 1, 2}
    again = d.validation_split(0.25, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again, strict=True))


def test_group_split_column_must_keep_groups_apart(tmp_path):
    d = load_dataset(f"csv:{grouped(tmp_path / 'g.csv', split=True)}")
    assert set(d.test_groups) == {"spk7", "spk8", "spk9"}
    path = write_csv(
        tmp_path / "mixed.csv",
        ["a", "label", "group", "split"],
        [
            [1, 0, "s1", "train"],
            [2, 1, "s1", "train"],
            [3, 0, "s2", "train"],
            [4, 1, "s2", "test"],
            [5, 0, "s3", "test"],
        ],
    )
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == (
        f"{path}: group 's2' is in both splits (row 4 train, row 5 test); each group must sit "
        "in one split"
    )


def test_validation_split_without_groups_is_todays_stratified_split(tmp_path):
    d = load_dataset(f"csv:{iris_like(tmp_path / 'iris.csv', n_per_class=20)}")
    for fraction, seed in ((0.15, 0), (0.3, 4)):
        ours = d.validation_split(fraction, seed)
        reference = stratified_split(d.y_train.numpy(), fraction, seed)
        assert all(np.array_equal(a, b) for a, b in zip(ours, reference, strict=True))
    train, val = d.validation_split(0.0, 0)
    assert len(train) == len(d.y_train) and len(val) == 0
    vowels = load_dataset("vowels")
    ours = vowels.validation_split(0.1, 2)
    reference = stratified_split(vowels.y_train.numpy(), 0.1, 2)
    assert all(np.array_equal(a, b) for a, b in zip(ours, reference, strict=True))


def test_a_path_with_colons_works(tmp_path):
    path = iris_like(tmp_path / "run:2:data.csv")
    assert parse_dataset_spec(f"csv:{path}") == (f"csv:{path}", None)
    assert load_dataset(f"csv:{path}").n_features == 2
    with pytest.raises(DatasetError, match="names its file"):
        load_dataset(f"csv:{path}", data_path=tmp_path)
    with pytest.raises(DatasetError, match="--label-column is for csv:PATH"):
        load_dataset("vowels", label_column="kind")


def test_wine_round_trip_through_csv(tmp_path):
    wine = load_wine()
    names = list(wine.target_names)
    rows = [[*x, names[t]] for x, t in zip(wine.data, wine.target, strict=True)]
    path = write_csv(tmp_path / "wine.csv", [*wine.feature_names, "label"], rows)
    d = load_dataset(f"csv:{path}", seed=2)
    assert (d.n_features, d.n_classes, d.class_names) == (13, 3, names)
    assert d.feature_names == list(wine.feature_names)
    assert len(d.y_train) + len(d.y_test) == 178
    assert torch.allclose(d.x_train.min(0).values, torch.zeros(13))
    assert torch.allclose(d.x_train.max(0).values, torch.ones(13))
    # same rows, same scaling: the dataset's features are the wine features, min-max scaled
    expected = d.transform(wine.data)
    assert sorted(map(tuple, expected.tolist())) == sorted(
        map(tuple, torch.cat([d.x_train, d.x_test]).tolist())
    )
    labels = torch.cat([d.y_train, d.y_test]).bincount().tolist()
    assert labels == np.bincount(wine.target).tolist()


# -- NPZ and arrays ----------------------------------------------------------------------


def test_npz_with_split_and_groups(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)) * 50
    y = np.array(["b", "a", "c"] * 4)
    split = np.array(["train"] * 9 + ["test"] * 3)
    group = np.repeat(np.arange(4), 3)
    np.savez(tmp_path / "d.npz", x=x, y=y, split=split, group=group)
    d = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert d.class_names == ["a", "b", "c"] and d.feature_names == ["f0", "f1", "f2"]
    assert (len(d.y_train), len(d.y_test)) == (9, 3)
    assert d.test_groups.tolist() == ["3", "3", "3"]
    assert d.scaling["min"] == x[:9].min(0).tolist()
    path = tmp_path / "d.npz"
    assert d.provenance["files"] == {str(path.resolve()): file_sha256(path)}


def test_from_arrays_is_a_dataset_like_any_other():
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    d = from_arrays(x, y, class_names=["left", "right"], feature_names=["u", "v"], seed=1)
    assert (d.name, d.class_names, d.feature_names) == ("arrays", ["left", "right"], ["u", "v"])
    assert (len(d.y_train), len(d.y_test)) == (32, 8) and d.provenance == {}
    assert float(d.x_train.min()) == 0 and float(d.x_train.max()) == 1
    assert d.describe()["n_classes"] == 2
    assert torch.equal(d.transform(x[:3]), d.transform(x)[:3])
    names = from_arrays(x, np.where(y == 1, "pos", "neg"))
    assert names.class_names == ["neg", "pos"]


# -- bad data: one line naming file, row and column --------------------------------------


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("abc", "'abc' is not a number"),
        ("", "missing value"),
        ("nan", "'nan' is not a finite number"),
        ("-inf", "'-inf' is not a finite number"),
    ],
)
def test_bad_cells_name_file_row_and_column(tmp_path, cell, problem):
    rows = [[f"{i}.5", str(i), "setosa" if i % 2 else "virginica"] for i in range(10)]
    rows[5][1] = cell  # file row 7: header is row 1
    path = write_csv(tmp_path / "data.csv", ["sepal_length", "petal_width", "label"], rows)
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == f"{path}: row 7, column 'petal_width': {problem}"


def test_ragged_row(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n5,x\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == f"{path}: row 4 has 2 cells, the header has 3 columns"


@pytest.mark.parametrize(
    ("text", "expected"), [("", "empty file"), ("a,b,label\n", "header only, no data rows")]
)
def test_empty_and_header_only_files(tmp_path, text, expected):
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc).startswith(f"{path}: {expected}")


@pytest.mark.parametrize("missing", ["train", "test"])
def test_no_training_or_no_test_rows(tmp_path, missing):
    other = "test" if missing == "train" else "train"
    rows = [[i, i % 2, other] for i in range(6)]
    path = write_csv(tmp_path / "data.csv", ["a", "label", "split"], rows)
    which = "training" if missing == "train" else "test"
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == f"{path}: no {which} rows (split by its 'split' column)"


def test_class_only_in_the_test_split(tmp_path):
    rows = [[1, "a", "train"], [2, "b", "train"], [3, "a", "test"], [4, "c", "test"]]
    path = write_csv(tmp_path / "data.csv", ["v", "label", "split"], rows)
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == (
        f"{path}: class 'c' is in the test split (row 5) but has no training rows"
    )


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("-1", "'-1' is not a class code (an integer ≥ 0, or text)"),
        ("2.5", "'2.5' is not a class code (an integer ≥ 0, or text)"),
        ("100000", "class code 100000 is too large (at most 10,000 classes)"),
    ],
)
def test_bad_integer_label_codes(tmp_path, label, problem):
    rows = [[i, i % 3] for i in range(9)]
    rows[3][1] = label
    path = write_csv(tmp_path / "data.csv", ["v", "label"], rows)
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == f"{path}: row 5, column 'label': {problem}"


def test_bad_split_value(tmp_path):
    rows = [[1, 0, "train"], [2, 1, "validation"], [3, 0, "test"]]
    path = write_csv(tmp_path / "data.csv", ["v", "label", "split"], rows)
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"csv:{path}")
    assert message(exc) == f"{path}: row 3, column 'split': 'validation' is not 'train' or 'test'"


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_missing_file(tmp_path, kind):
    path = tmp_path / f"nope.{kind}"
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"{kind}:{path}")
    assert message(exc) == f"{path}: no such file"


@pytest.mark.parametrize(
    ("y", "problem"),
    [
        (np.array([0, 1, -1, 0]), "row 2, column 'y': -1 is not a class code (an integer ≥ 0)"),
        (np.array([0, 1, 100000, 0]), "row 2, column 'y': class code 100000 is too large"),
        (np.array([0.0, 1.0, 1.0, 0.0]), "y must hold integers ≥ 0 or strings, not float64"),
    ],
)
def test_bad_array_labels_are_refused_before_any_allocation(y, problem):
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as exc:
            from_arrays(np.zeros((4, 2)), y, name="mine")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message(exc).startswith(f"mine: {problem}")
    assert peak < 1_000_000  # nothing sized by the label value


def test_groups_that_cannot_be_held_out():
    x, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(DatasetError) as exc:
        from_arrays(x, y, group=np.array(["s1"] * 6))
    assert message(exc).startswith("arrays: no group can be held out for the test split")
    d = from_arrays(x, y, group=np.array(["s1", "s1", "s2", "s2", "s3", "s3"]), seed=0)
    assert len(set(d.train_groups)) == 2
    with pytest.raises(DatasetError, match="no group can be held out for the validation split"):
        from_arrays(x[:4], y[:4], group=np.array(["s1", "s1", "s2", "s2"])).validation_split(
            0.5, seed=0
        )


def test_too_many_string_classes():
    y = np.array([f"c{i}" for i in range(10_001)])
    with pytest.raises(DatasetError) as exc:
        from_arrays(np.zeros((len(y), 1)), y)
    assert message(exc) == "arrays: 10,001 classes; at most 10,000"


def test_bad_npz_files(tmp_path):
    float_y = tmp_path / "float_y.npz"
    np.savez(float_y, x=np.ones((4, 2)), y=np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"npz:{float_y}")
    assert message(exc) == f"{float_y}: y must hold integers ≥ 0 or strings, not float64"
    x = np.ones((4, 2))
    x[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.array([0, 1, 0, 1]))
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"npz:{tmp_path / 'nan.npz'}")
    assert message(exc) == f"{tmp_path / 'nan.npz'}: row 2, column 'f1': nan is not a finite number"
    np.savez(tmp_path / "no_y.npz", x=x)
    with pytest.raises(DatasetError, match="needs arrays 'x' and 'y'"):
        load_dataset(f"npz:{tmp_path / 'no_y.npz'}")
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match="not an NPZ file"):
        load_dataset(f"npz:{tmp_path / 'text.npz'}")


def test_loading_creates_nothing_on_disk(tmp_path, monkeypatch):
    path = iris_like(tmp_path / "iris.csv")
    np.savez(tmp_path / "d.npz", x=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    load_dataset(f"csv:{path}")
    load_dataset("npz:d.npz")
    with pytest.raises(DatasetError):
        load_dataset(f"csv:{tmp_path / 'missing.csv'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _wine_csv(path):
    from sklearn.datasets import load_wine

    bunch = load_wine()
    names = [f"cultivar_{t}" for t in bunch.target]
    with open(path, "w") as f:
        f.write(",".join([*bunch.feature_names, "label"]) + "\n")
        for row, name in zip(bunch.data, names, strict=True):
            f.write(",".join(f"{v:g}" for v in row) + f",{name}\n")


def test_cli_records_the_data_file_and_resume_refuses_it_changed(tmp_path, capsys):
    from phyll.cli import main

    data = tmp_path / "wine.csv"
    _wine_csv(data)
    out = tmp_path / "run"
    argv = ["train", "--dataset", f"csv:{data}", "--epochs", "1", "--width", "8",
            "--measurements", "16", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    provenance = config["resolved"]["dataset"]["provenance"]["files"]
    assert list(provenance) == [str(data.resolve())]
    assert config["resolved"]["dataset"]["class_names"][0] == "cultivar_0"
    with open(data, "a") as f:
        f.write(",".join(["1"] * 13) + ",cultivar_1\n")
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed" in err and str(data.resolve()) in err


def test_bad_data_from_the_cli_is_one_line_and_creates_no_folder(tmp_path, capsys):
    from phyll.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"csv:{bad}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 3" in err and "'b'" in err and "Traceback" not in err
    assert not out.exists()

"""A finished run put to use: phyll.load_run, `phyll predict` and `phyll evaluate`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

import phyll
from phyll.cli import main
from phyll.data import from_arrays, read_feature_rows
from phyll.experiments.predict import class_scores
from phyll.experiments.run_folder import RunFolderError
from tests.conftest import numpy_square_law

SMALL = dict(epochs=3, width=16, measurements=32, blocks=1)
SPECIES = ["setosa", "versicolor", "virginica"]


def iris_csv(path: Path) -> Path:
    """Iris with raw (unscaled) features and string labels."""
    data = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "label"])
        for x, y in zip(data.data, data.target, strict=True):
            writer.writerow([*x, SPECIES[y]])
    return path


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, CSV) of a small PhyLL run on the iris CSV."""
    tmp = tmp_path_factory.mktemp("iris")
    data = iris_csv(tmp / "iris.csv")
    config = phyll.TrainConfig(dataset=f"csv:{data}", **SMALL)
    phyll.train(config, tmp / "run", progress=False)
    return tmp / "run", data


def test_load_run_predicts_class_names_with_the_recorded_scaling(iris_run):
    run_dir, data = iris_run
    run = phyll.load_run(run_dir)
    assert run.class_names == SPECIES and run.dataset["scaling"]["kind"] == "minmax"
    x_raw = read_feature_rows(data, run.feature_names)
    scores = run.scores(x_raw)
    names = run.predict(x_raw)
    assert scores.shape == (150, 3) and len(names) == 150
    assert names == [SPECIES[i] for i in scores.argmax(axis=1)]
    truth = [SPECIES[i] for i in load_iris().target]
    assert np.mean([a == b for a, b in zip(names, truth, strict=True)]) > 0.8
    # the scores are the goodness per label the rule predicts from (up to detector noise)
    x = run.transform(x_raw)
    assert np.allclose(scores, run.rule.goodness_per_label(x).numpy(), atol=0.05)


@pytest.mark.parametrize("training", [True, False])
def test_predict_restores_the_model_mode(iris_run, training):
    run = phyll.load_run(iris_run[0])
    run.model.train(training)
    run.predict(np.full((2, 4), 5.0))
    assert all(m.training == training for m in run.model.modules())


def test_scores_of_head_rules_are_the_head_logits(tmp_path):
    head_rules = (
        ("phyll", {"prediction": "readout"}),
        ("backprop-ideal", {}),
        ("dfa", {}),
        ("zo", {"loss": "global"}),
    )
    for rule, params in head_rules:
        config = phyll.TrainConfig(rule=rule, rule_params=params, **SMALL)
        phyll.train(config, tmp_path / rule, progress=False)
        run = phyll.load_run(tmp_path / rule)
        x = run.transform(np.random.default_rng(0).random((20, run.layout.n_features)))
        scores = class_scores(run.rule, x)
        assert scores.shape == (20, 7) and not np.allclose(scores.numpy(), scores.numpy().round())
        agree = (scores.argmax(dim=1) == run.rule.predict(x)).float().mean()
        assert agree >= 0.8  # detector noise may flip a close call


def test_python_built_systems_need_their_factory_again(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 3)), np.arange(60) % 2
    factory = lambda block, n_in, n_out: numpy_square_law(n_in, n_out, seed=block)  # noqa: E731
    config = phyll.TrainConfig(**SMALL)
    data = from_arrays(x, y, class_names=np.array(["low", "high"]))  # numpy strings load too
    phyll.train(config, tmp_path / "run", dataset=data, system_factory=factory, progress=False)
    with pytest.raises(RunFolderError, match=r"system_factory=\.\.\."):
        phyll.load_run(tmp_path / "run")
    run = phyll.load_run(tmp_path / "run", system_factory=factory)
    assert set(run.predict(x)) <= {"low", "high"}


def test_cli_predict_prints_names_and_writes_scores(iris_run, tmp_path, capsys):
    run_dir, data = iris_run
    assert main(["predict", str(run_dir), str(data)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 150 and set(printed) <= set(SPECIES)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run_dir), str(data), "--out", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["prediction", *(f"score_{c}" for c in SPECIES)]
    assert [r[0] for r in rows[1:]] == printed


def test_cli_predict_errors_are_one_line(iris_run, tmp_path, capsys):
    run_dir, data = iris_run
    lines = data.read_text().splitlines()
    (tmp_path / "cols.csv").write_text("\n".join(line.split(",", 1)[1] for line in lines))
    bad = [*lines[:3], "5.0,abc,1.4,0.2,setosa"]
    (tmp_path / "cell.csv").write_text("\n".join(bad))
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    cases = [
        ([str(tmp_path / "nowhere"), str(data)], "not a phyll run folder"),
        ([str(tmp_path / "unfinished"), str(data)], "no model.pt"),
        ([str(run_dir), str(tmp_path / "cols.csv")], "missing feature column(s) 'sepal_length'"),
        ([str(run_dir), str(tmp_path / "cell.csv")], "row 4, column 'sepal_width'"),
        ([str(run_dir), str(data), "--out", str(tmp_path / "no" / "p.csv")], "cannot write"),
    ]
    for argv, message in cases:
        assert main(["predict", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_cli_evaluate_reports_accuracy_and_queries(iris_run, capsys):
    run_dir, data = iris_run
    assert main(["evaluate", str(run_dir), "--dataset", f"csv:{data}"]) == 0
    out = capsys.readouterr().out
    assert "the run's own test split" in out and "physical queries" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    recorded = phyll.load_run(run_dir).summary["test_accuracy"]
    assert abs(accuracy - recorded) <= 0.1
    assert main(["evaluate", str(run_dir), "--dataset", "vowels"]) == 2
    assert "features" in capsys.readouterr().err


def test_cli_predict_takes_a_device(iris_run, capsys):
    run_dir, data = iris_run
    assert main(["predict", str(run_dir), str(data)]) == 0
    recorded = capsys.readouterr().out
    assert main(["predict", str(run_dir), str(data), "--device", "cpu"]) == 0
    assert capsys.readouterr().out == recorded  # the run's own device, named
    assert main(["predict", str(run_dir), str(data), "--device", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err

"""``--track mlflow``: what a tracked run logs, read back with the MLflow client; a resumed run
continues its MLflow run; without the extra, one line says how to install it."""

from __future__ import annotations

import json
import math
import sys

import pytest

from phyll.cli import main
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.tracking import Tracking, flatten, numbers
from phyll.experiments.train import TrainingInterrupted, resume, train
from tests.conftest import sigint_factory

SMALL = dict(dataset="vowels", epochs=3, width=12, measurements=12, checkpoint_every=4)


def test_flatten_and_numbers():
    flat = flatten(
        {"rule_params": {"lr": 0.01}, "faults": [{"name": "drift"}], "system_params": {}}
    )
    assert flat == {
        "rule_params.lr": "0.01",
        "faults": '[{"name": "drift"}]',
        "system_params": "{}",
    }
    values = {"loss": 0.5, "epoch": 2, "time": 1.0, "ok": True, "bad": math.nan, "n": 3, "s": "x"}
    assert numbers(values, "summary.") == {"summary.loss": 0.5, "summary.n": 3.0}


def test_the_default_store_is_mlruns_here_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Tracking().resolved().uri == (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert Tracking().resolved().uri == "http://tracking:5000"
    assert Tracking(uri="runs/ml").resolved().uri == (tmp_path / "runs" / "ml").as_uri()


def test_without_the_extra_tracking_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    for module in ("mlflow", "mlflow.tracking", "mlflow.entities"):
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--track", "mlflow", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[mlflow]"' in err
    assert not out.exists()


@pytest.fixture
def mlflow():
    return pytest.importorskip("mlflow", reason="the optional extra .[mlflow] is not installed")


def only_run(mlflow, store):
    client = mlflow.tracking.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("phyll").experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_phyll_train_logs_config_metrics_and_files(mlflow, tmp_path):
    out, store = tmp_path / "run", (tmp_path / "mlruns").as_uri()
    argv = ["train", "--epochs", "2", "--width", "12", "--measurements", "12", "--lr", "0.02",
            "--out", str(out), "--quiet", "--track", "mlflow", "--track-uri", store]  # fmt: skip
    assert main(argv) == 0
    client, run = only_run(mlflow, store)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.tags["phyll.run_dir"] == str(out.absolute())
    params = run.data.params
    assert (params["epochs"], params["width"], params["rule_params.lr"]) == ("2", "12", "0.02")
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert run.data.metrics["summary.test_accuracy"] == pytest.approx(summary["test_accuracy"])
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert files == {"config.json", "metrics.jsonl", "summary.json", "learning_curve.png"}


def test_a_resumed_run_continues_its_mlflow_run(mlflow, tmp_path):
    config = TrainConfig(**SMALL)
    out, tracking = tmp_path / "run", Tracking(uri=(tmp_path / "mlruns").as_uri())
    steps = -(-len(build_experiment(config).splits.y_train) // config.batch_size)
    stop = sigint_factory(config, signal_at_call=steps + 1 + 3)  # epoch 2, step 3
    with pytest.raises(TrainingInterrupted):
        train(config, out, progress=False, system_factory=stop,
              callbacks=tracking.callbacks(out, config.to_dict()))  # fmt: skip
    client, run = only_run(mlflow, tracking.uri)
    assert run.info.status == "KILLED"
    resume(out, progress=False, system_factory=sigint_factory(config),
           callbacks=tracking.callbacks(out, config.to_dict()))  # fmt: skip
    client, resumed = only_run(mlflow, tracking.uri)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    steps_logged = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert steps_logged == [1, 2, 3]

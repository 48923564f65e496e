"""End to end: the CLI trains real physical networks, writes run folders, refuses bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phyll.cli import main
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import TrainingError, train
from phyll.systems import CallableSystem
from tests.conftest import numpy_square_law

SUMMARY_KEYS = {
    "test_accuracy", "train_accuracy", "physical_queries", "digital_flops", "wall_time_s",
    "simulation_time_s", "device_time_s", "projected_time_s", "epochs", "dataset", "system",
    "rule", "seed",
}  # fmt: skip


def test_train_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--out", str(out), "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["dataset"], summary["system"], summary["rule"], summary["seed"]) == (
        "vowels", "acoustic", "phyll", 0,
    )  # fmt: skip
    assert summary["epochs"] == 3 and summary["test_accuracy"] > 3 * summary["chance_accuracy"]
    assert summary["physical_queries"] > 0 and summary["digital_flops"] > 0
    metrics = RunFolder(out).read_metrics()
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all(m["epoch_physical_queries"] == metrics[0]["epoch_physical_queries"] for m in metrics)
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["systems"][0]["class"] == "AcousticCavity"
    for name in ("checkpoint.pt", "model.pt", "learning_curve.png"):
        assert (out / name).stat().st_size > 0


def test_vowels7_real_task_reaches_85_percent(tmp_path, shared_data):
    summary = train(
        TrainConfig(dataset="vowels7", data_path=str(shared_data / "vowels7_formants.csv")),
        progress=False,
    )
    assert summary["test_accuracy"] >= 0.85


def test_digits_reach_90_percent():
    summary = train(TrainConfig(dataset="digits", epochs=8), progress=False)
    assert summary["test_accuracy"] >= 0.90


@pytest.mark.parametrize(("option", "value"), [
    ("--dataset", "cifar"), ("--system", "laser"), ("--rule", "magic"),
])  # fmt: skip
def test_unknown_names_are_refused(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", option, value])
    assert exc.value.code == 2
    assert f"invalid choice: '{value}'" in capsys.readouterr().err


def test_out_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "no").write_text("a file, not a folder")
    code = main(["train", "--out", str(tmp_path / "no" / "such" / "run"), "--quiet"])
    assert code == 2
    assert "no" in capsys.readouterr().err


def test_existing_run_is_not_overwritten_without_asking(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--epochs", "1", "--out", str(out), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--epochs", "1", "--out", str(out), "--quiet", "--overwrite"]) == 0


def test_missing_dataset_file_is_a_clear_cli_error(tmp_path, capsys):
    code = main(["train", "--dataset", "vowels7", "--data-path", str(tmp_path / "x.csv"), "--quiet",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2
    assert "needs its CSV file" in capsys.readouterr().err


def test_nan_from_a_system_stops_naming_block_and_epoch_and_keeps_the_checkpoint(tmp_path):
    """Block 1's detector fails during epoch 2: stop, say where, keep epoch 1's checkpoint."""
    config = TrainConfig(dataset="vowels", epochs=5, measurements=16)
    splits = build_experiment(config).splits
    n_classes = int(splits.y_train.max()) + 1
    # epoch 1 trains (positives and negatives) and evaluates every label on the validation split
    epoch_1 = 2 * len(splits.y_train) + n_classes * len(splits.y_val)
    calls = {"n": 0}

    def flaky(drive: np.ndarray) -> np.ndarray:
        calls["n"] += len(drive)
        out = np.abs(drive[:, :1]).repeat(16, axis=1) + drive.mean(1, keepdims=True)
        if calls["n"] > epoch_1 + 100:  # 100 samples into epoch 2
            out[0, 3] = np.nan
        return out

    def factory(i, n_in, n_out):
        return CallableSystem(flaky, n_in, 16) if i == 1 else numpy_square_law(n_in, n_out)

    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"in epoch 2: the physical system of block 1") as exc:
        train(config, out, progress=False, system_factory=factory)
    assert "last good checkpoint" in str(exc.value)
    state = RunFolder(out).load(out / "checkpoint.pt")
    assert state["epoch"] == 1
    assert len(RunFolder(out).read_metrics()) == 1

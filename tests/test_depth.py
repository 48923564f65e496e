"""``phyll depth``: a sweep over the number of blocks, JSON holding what the figure plots."""

from __future__ import annotations

import json
import math

import pytest

from phyll.cli import main
from phyll.experiments.config import TrainConfig
from phyll.experiments.depth import run_depth_sweep
from phyll.experiments.run_folder import RunFolderError


def test_depth_sweep_writes_json_and_figure(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["depth", "--blocks", "1", "2", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    assert "2 blocks, seed 0: test" in capsys.readouterr().out
    result = json.loads((out / "depth.json").read_text())
    assert result["depths"] == [1, 2] and result["config"]["blocks"] == [1, 2]
    assert [r["blocks"] for r in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["finite"] and run["error"] is None and math.isfinite(run["final_loss"])
        assert run["test_accuracy"] > 3 * run["chance_accuracy"]
        assert (out / f"blocks-{run['blocks']:02d}-seed0" / "summary.json").exists()
    assert (out / "depth.png").stat().st_size > 0
    with pytest.raises(RunFolderError, match="already holds"):
        run_depth_sweep(TrainConfig(epochs=1), [1], out)
    again = run_depth_sweep(TrainConfig(epochs=2), [1, 2], out, reuse=True)  # nothing retrained
    assert [r["test_accuracy"] for r in again["runs"]] == [
        r["test_accuracy"] for r in result["runs"]
    ]


def test_ten_blocks_train_without_nan_or_collapse(tmp_path):
    result = run_depth_sweep(TrainConfig(epochs=3, batch_size=64), [10], tmp_path)
    (run,) = result["runs"]
    assert run["finite"] and run["error"] is None
    assert run["test_accuracy"] > 4 * run["chance_accuracy"]

"""The one runner of every experiment kind: atomic JSON with its format marker, every planned
configuration checked before anything is written, resuming a half-done experiment, the same
command again, unknown rules, Ctrl-C, and ``phyll report`` finding kinds by their marker."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from phyll import atomic
from phyll.cli import main
from phyll.engine import TrainingInterrupted
from phyll.experiments import depth
from phyll.experiments.config import TrainConfig
from phyll.experiments.kinds import EXPERIMENT_KINDS
from phyll.experiments.protocol import RunSpec
from phyll.experiments.runner import run_experiment
from phyll.report.load import ReportError, detect

TINY = ["--epochs", "2", "--width", "8", "--measurements", "16", "--quiet"]


def test_json_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("}\n")

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left


def test_every_kind_writes_its_json_with_its_marker(tmp_path):
    out = tmp_path / "d"
    assert main(["depth", "--blocks", "1", *TINY, "--out", str(out)]) == 0
    assert json.loads((out / "depth.json").read_text())["format"] == "phyll-depth/1"
    assert json.loads((out / "depth_config.json").read_text())["format"] == "phyll-depth/1"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    for kind in EXPERIMENT_KINDS.values():  # one name, one marker, one result file
        assert kind.format == f"phyll-{kind.name}/1"
        assert kind.result in ("summary.json", f"{kind.name}.json")


def test_every_planned_configuration_is_checked_before_anything_is_written(tmp_path):
    good = TrainConfig(epochs=1, blocks=1, width=8, measurements=16)
    bad = dataclasses.replace(good, system_params={"no_such_parameter": 1.0})
    kind = dataclasses.replace(
        depth.KIND, plan=lambda c: [RunSpec("a", good, "good"), RunSpec("b", bad, "bad")]
    )
    config = depth.DepthConfig(good, [1], [0])
    with pytest.raises(ValueError, match="no_such_parameter"):
        run_experiment(kind, config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["compare", "robustness"])
def test_an_unknown_rule_is_refused_in_one_line_by_every_kind(command, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([command, "--rules", "phyll,phylll", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown rule 'phylll' in --rules (did you mean 'phyll'?)" in err
    assert not out.exists()


def test_depth_resumes_a_half_done_experiment_and_refuses_another(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["depth", "--blocks", "1,2", *TINY, "--out", str(out)]
    assert main(argv) == 0
    before = json.loads((out / "depth.json").read_text())
    kept = out / "blocks-01-seed0" / "summary.json"
    stamp = kept.stat().st_mtime_ns
    assert main(argv) == 2  # finished: not trained again without --overwrite
    assert "already holds a finished depth sweep" in capsys.readouterr().err
    (out / "depth.json").unlink()
    (out / "blocks-02-seed0" / "summary.json").unlink()  # stopped after its last checkpoint
    assert main([*argv[:-2], "--width", "16", "--out", str(out)]) == 2
    assert "another configuration (config differ)" in capsys.readouterr().err
    assert main(["depth", "--resume", str(out), "--quiet"]) == 0
    after = json.loads((out / "depth.json").read_text())
    assert kept.stat().st_mtime_ns == stamp  # the finished run was kept
    assert [r["test_accuracy"] for r in after["runs"]] == [
        r["test_accuracy"] for r in before["runs"]
    ]


def test_frontier_resumes_with_the_same_option_as_every_kind(tmp_path):
    out = tmp_path / "f"
    argv = ["frontier", "--families", "linear", "--seeds", "2", *TINY, "--out", str(out)]
    assert main(argv) == 0
    before = json.loads((out / "frontier.json").read_text())
    kept = out / "runs" / "linear-seed0" / "summary.json"
    stamp = kept.stat().st_mtime_ns
    for path in sorted((out / "runs" / "linear-seed1").iterdir()):
        path.unlink()  # the second run never started
    (out / "runs" / "linear-seed1").rmdir()
    assert main(["frontier", "--resume", str(out), "--quiet"]) == 0
    assert kept.stat().st_mtime_ns == stamp
    assert json.loads((out / "frontier.json").read_text())["points"] == before["points"]


def test_ctrl_c_names_the_command_that_continues_the_experiment(tmp_path):
    class Stopped:
        def run(self, *args, **kwargs):
            raise TrainingInterrupted(
                "training interrupted (SIGINT) in epoch 1, step 3; checkpoint kept: "
                "continue with `phyll train --resume somewhere`"
            )

    config = depth.DepthConfig(TrainConfig(epochs=1, blocks=1, width=8), [1], [0])
    with pytest.raises(TrainingInterrupted) as stopped:
        run_experiment(depth.KIND, config, tmp_path / "d", progress=False, executor=Stopped())
    message = str(stopped.value)
    assert message.startswith("training interrupted (SIGINT) in epoch 1, step 3; ")
    assert f"`phyll depth --resume {tmp_path / 'd'}`" in message and "phyll train" not in message
    assert json.loads((tmp_path / "d" / "depth_config.json").read_text())["depths"] == [1]


def test_report_finds_each_kind_by_its_format_marker(tmp_path):
    for kind in EXPERIMENT_KINDS.values():
        folder = tmp_path / kind.name
        folder.mkdir()
        (folder / kind.result).write_text(json.dumps({"format": kind.format}))
        assert detect(folder)[0] == kind.name
    legacy = tmp_path / "legacy"  # written before the marker: read by its name
    legacy.mkdir()
    (legacy / "robustness.json").write_text("{}")
    assert detect(legacy)[0] == "robustness"
    other = tmp_path / "other"
    other.mkdir()
    (other / "depth.json").write_text(json.dumps({"format": "phyll-frontier/1"}))
    with pytest.raises(ReportError, match="is not a phyll depth"):
        detect(other)
    run = tmp_path / "run"  # a run's summary.json is not a comparison
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (run / "config.json").write_text("{}")
    assert detect(run) == ("run", None)

"""Training longer: ``phyll train --resume DIR --epochs N`` extends a run, exactly with a
constant learning rate; any other option beside --resume is refused in one line."""

from __future__ import annotations

import json
import math

import pytest

from phyll.cli import main
from phyll.engine import Engine
from phyll.experiments.build import LearningRateSchedule
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import resume, train


def metrics(folder) -> list[dict]:
    """metrics.jsonl without its clock readings."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if "time" not in k} for x in lines]


SMALL = {"epochs": 2, "width": 16, "measurements": 32}


def test_a_finished_run_extended_to_n_epochs_equals_n_epochs_from_scratch(tmp_path):
    train(TrainConfig(**{**SMALL, "epochs": 4}), tmp_path / "four", progress=False)
    train(TrainConfig(**SMALL), tmp_path / "two", progress=False)
    summary = resume(tmp_path / "two", epochs=4, progress=False)
    assert metrics(tmp_path / "two") == metrics(tmp_path / "four")
    planned = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert summary["test_accuracy"] == planned["test_accuracy"]
    assert summary["epochs"] == 4
    (extension,) = summary["extensions"]
    assert extension["from_epochs"] == 2 and extension["to_epochs"] == 4
    assert extension["discarded_test_physical_queries"] > 0
    assert json.loads((tmp_path / "two" / "config.json").read_text())["epochs"] == 4


def test_the_command_line_extends_a_run_and_refuses_other_options(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--epochs", "1", "--width", "16", "--out", run, "--quiet"]) == 0
    assert main(["train", "--resume", run, "--epochs", "2", "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2
    capsys.readouterr()
    assert main(["train", "--resume", run, "--epochs", "3", "--seed", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seed cannot be changed" in err and len(err.splitlines()) == 1
    assert main(["train", "--resume", run, "--epochs", "1", "--quiet"]) == 2  # no undoing
    assert "cannot undo" in capsys.readouterr().err


class _Rule:
    def __init__(self) -> None:
        self.scales: list[float] = []

    def scale_learning_rate(self, scale: float) -> None:
        self.scales.append(scale)


class _Engine:
    def __init__(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs, self.rule = epoch, epochs, _Rule()


def test_an_extended_cosine_schedule_continues_from_the_rate_it_reached():
    schedule = LearningRateSchedule("cosine", 10)
    assert schedule.scale(0) == 1.0 and schedule.scale(5) == pytest.approx(0.5)
    reached = schedule.scale(5)  # interrupted after 6 epochs (0…5), extended to 20
    engine = _Engine(epoch=6, epochs=20)
    schedule.on_fit_start(engine)  # type: ignore[arg-type]
    assert schedule.scale(5) == pytest.approx(reached)  # the epochs trained are unchanged
    assert schedule.scale(20) == pytest.approx(0.0, abs=1e-12)
    expected = reached * 0.5 * (1 + math.cos(math.pi * (6 - 5) / (20 - 5)))
    assert engine.rule.scales == [pytest.approx(expected)]
    assert all(schedule.scale(e) >= schedule.scale(e + 1) for e in range(19))  # decays


def test_extend_refuses_fewer_epochs_than_trained():
    engine = Engine.__new__(Engine)
    engine.epoch, engine.epochs = 3, 5
    with pytest.raises(Exception, match="cannot undo"):
        engine.extend(2)

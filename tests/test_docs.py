"""The documentation's code runs: docs/architecture.md's four extension examples."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from phyll import TrainConfig, train
from phyll.cli import main
from phyll.experiments.kinds import EXPERIMENT_KINDS
from phyll.params import ParamError
from phyll.registry import DATASETS, RULES, SYSTEMS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def run_block(code: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run a code block as the module ``docs_example`` (dataclasses need a real module)."""
    module = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, "docs_example", module)
    exec(compile(code, "docs/architecture.md", "exec"), module.__dict__)
    return module.__dict__


SMALL = dict(epochs=3, width=16, measurements=32, blocks=1)


def test_architecture_has_the_four_examples_each_about_20_lines():
    blocks = python_blocks(DOCS / "architecture.md")
    assert len(blocks) == 4
    assert all(len(b.strip().splitlines()) <= 45 for b in blocks)


def test_the_rule_example_trains(monkeypatch):
    rule = run_block(python_blocks(DOCS / "architecture.md")[0], monkeypatch)["Reservoir"]
    monkeypatch.setitem(RULES, "reservoir", rule)
    summary = train(TrainConfig(rule="reservoir", **SMALL), progress=False)
    assert summary["rule"] == "reservoir"
    assert summary["test_accuracy"] > 3 * summary["chance_accuracy"]


def test_the_system_example_trains(monkeypatch):
    system = run_block(python_blocks(DOCS / "architecture.md")[1], monkeypatch)["SquareLaw"]
    monkeypatch.setitem(SYSTEMS, "square-law", system)
    config = TrainConfig(system="square-law", system_params={"noise_std": 0.01}, **SMALL)
    summary = train(config, progress=False)
    assert summary["test_accuracy"] > 3 * summary["chance_accuracy"]
    with pytest.raises(ParamError, match=r"unknown parameter 'noise'.*valid: noise_std"):
        train(TrainConfig(system="square-law", system_params={"noise": 1}, **SMALL))


def test_the_dataset_example_trains(monkeypatch):
    loader = run_block(python_blocks(DOCS / "architecture.md")[2], monkeypatch)["load_moons"]
    monkeypatch.setitem(DATASETS, "moons", loader)
    summary = train(TrainConfig(dataset="moons", **SMALL), progress=False)
    assert summary["class_names"] == ["upper", "lower"]
    assert summary["test_accuracy"] > 0.8


def test_the_experiment_kind_example_runs_resumes_and_reports(monkeypatch, tmp_path, capsys):
    kind = run_block(python_blocks(DOCS / "architecture.md")[3], monkeypatch)["WIDTHS"]
    monkeypatch.setitem(EXPERIMENT_KINDS, "widths", kind)  # the one line of kinds.py
    out = tmp_path / "w"
    argv = ["widths", "--widths", "8", "16", "--epochs", "2", "--blocks", "1",
            "--measurements", "16", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "width 16: " in capsys.readouterr().out
    record = json.loads((out / "widths.json").read_text())
    assert record["format"] == "phyll-widths/1" and record["widths"] == [8, 16]
    assert json.loads((out / "widths_config.json").read_text())["format"] == "phyll-widths/1"
    (out / "widths.json").unlink()
    (out / "runs" / "w16" / "summary.json").unlink()  # stopped after its last checkpoint
    assert main(["widths", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "widths.json").read_text()) == record  # the same run, resumed
    assert main(["report", str(out)]) == 0
    assert "width 8: " in (out / "report.html").read_text()

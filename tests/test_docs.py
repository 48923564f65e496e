"""The documentation's code runs: docs/architecture.md's three extension examples."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from phyll import TrainConfig, train
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


def test_architecture_has_the_three_examples_each_about_20_lines():
    blocks = python_blocks(DOCS / "architecture.md")
    assert len(blocks) == 3
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

"""One registry type for systems, rules, datasets and faults, with installed packages' entry
points: listed without importing anything, loaded on first use, refused in one line."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import types
from typing import Any

import pytest

from phyll.cli import main
from phyll.data import DATASETS, Dataset, DatasetInfo, dataset_catalogue, load_dataset
from phyll.data.vowels import load_vowels
from phyll.errors import ConfigError
from phyll.experiments.config import TrainConfig, dataset_kind
from phyll.learning import RULES
from phyll.learning.ff import ForwardForward
from phyll.plugins import Lazy, Registry, UnknownNameError
from phyll.systems import SYSTEMS
from phyll.systems.faults import FAULTS, MeasurementNoise
from phyll.usercode import UserCodeError


def load_vowels_like(seed: int = 0) -> Dataset:
    """The synthetic vowels under another name: a dataset of a user's package."""
    return load_vowels(seed=seed)


class Louder(MeasurementNoise):
    """A fault of a user's package."""


def fake_package(monkeypatch, points: dict[str, dict[str, str]]) -> types.ModuleType:
    """An installed package ``acme_lab`` as ``importlib.metadata`` reports it: the entry points
    ``points`` (group → name → ``"acme_lab:attribute"``), its module importable."""
    module = types.ModuleType("acme_lab")
    module.Louder = Louder
    module.Rule = type("AcmeFF", (ForwardForward,), {"name": "acme-ff"})
    module.load_blobs = load_vowels_like
    module.image_blobs = DatasetInfo(load_vowels_like, "image", "28x28 blobs", n_features=784)
    module.not_a_rule = 42
    monkeypatch.setitem(sys.modules, "acme_lab", module)
    real = importlib.metadata.entry_points

    def entry_points(**selection):
        group = selection.get("group")
        if group in points:
            return importlib.metadata.EntryPoints(
                importlib.metadata.EntryPoint(name, value, group)
                for name, value in points[group].items()
            )
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return module


def test_entry_points_of_every_kind_are_listed_then_loaded_on_use(monkeypatch, capsys):
    fake_package(monkeypatch, {
        "phyll.rules": {"acme-ff": "acme_lab:Rule"},
        "phyll.datasets": {"blobs": "acme_lab:load_blobs", "image-blobs": "acme_lab:image_blobs"},
        "phyll.faults": {"louder": "acme_lab:Louder"},
        "phyll.systems": {"acme-cavity": "acme_lab:missing"},
    })  # fmt: skip
    assert "acme-ff" in RULES and "acme-ff" in RULES.names() and RULES["acme-ff"].name == "acme-ff"
    assert FAULTS["louder"] is Louder and "louder" in FAULTS.names()
    assert DATASETS["blobs"].kind == "tabular" and DATASETS["image-blobs"].kind == "image"
    assert dataset_kind("image-blobs") == "image" and dataset_kind("blobs:2x6") == "tabular"
    assert load_dataset("blobs").n_classes == 7
    assert "blobs" in {row["name"] for row in dataset_catalogue()}
    config = TrainConfig(dataset="image-blobs", rule="acme-ff")  # the image profile applies
    assert (config.epochs, config.rule) == (15, "acme-ff")
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "acme-ff" in listed and "louder" in listed and "acme-cavity" in listed
    with pytest.raises(UserCodeError, match=r"system 'acme-cavity' \(entry point 'acme_lab:mi"):
        SYSTEMS["acme-cavity"]


def test_an_entry_point_of_the_wrong_kind_is_one_line(monkeypatch):
    fake_package(monkeypatch, {"phyll.rules": {"forty-two": "acme_lab:not_a_rule"}})
    with pytest.raises(ConfigError, match=r"rule 'forty-two' \(entry point 'acme_lab:not_a_ru"):
        RULES["forty-two"]
    with pytest.raises(ConfigError, match="expected a phyll FaultWrapper subclass"):
        FAULTS["bad"] = ForwardForward


def test_an_unknown_name_says_the_closest_and_every_valid_one():
    typos = [(RULES, "phyl", "phyll"), (SYSTEMS, "acoustc", "acoustic"),
             (DATASETS, "vowles", "vowels"), (FAULTS, "nosie", "noise")]  # fmt: skip
    for registry, name, close in typos:
        with pytest.raises(UnknownNameError) as error:
            registry[name]
        message = str(error.value)
        assert f"unknown {registry.kind} {name!r} (did you mean {close!r}?)" in message
        assert ", ".join(registry.names()) in message
        assert registry.get(name) is None  # a KeyError too: a Mapping's get works


def test_a_registry_lists_without_importing_and_registers_at_run_time(monkeypatch):
    things: Registry[Any] = Registry("thing", "phyll.test-things", {"one": 1})
    things["two"], things["dumps"] = 2, Lazy("json:dumps")  # imported on first use
    assert (things.names(), things["two"], len(things)) == (["dumps", "one", "two"], 2, 3)
    assert things["dumps"] is json.dumps
    assert (things.name_of(json.dumps), things.name_of(object())) == ("dumps", None)
    assert SYSTEMS.name_of(SYSTEMS["acoustic"]) == "acoustic"  # how a factory is recorded
    assert [p.name for p in RULES.params("phyll")][:2] == ["lr", "optimizer"]
    monkeypatch.setitem(DATASETS, "loaded", load_vowels_like)  # a plain loader: tabular
    assert DATASETS["loaded"].kind == "tabular" and DATASETS["loaded"].needs == "embedded"

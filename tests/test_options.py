"""The training options are declared once (TrainConfig's fields): the command line's options,
the checks of a configuration made in Python and ``phyll list --params`` come from that
declaration, and the help reads names from the registries."""

from __future__ import annotations

import dataclasses
from typing import get_type_hints

import pytest

from phyll.cli import build_parser, main
from phyll.errors import ConfigError
from phyll.experiments.arguments import GROUPS, config_from_args
from phyll.experiments.config import PROFILES, TrainConfig
from phyll.learning import RULES, PhyLL
from phyll.params import declared_range, literal_choices
from phyll.systems.faults import FAULTS, MeasurementNoise

RANGED = [f for f in dataclasses.fields(TrainConfig) if declared_range(f) != (None, None)]
CHOICES = [name for name, hint in get_type_hints(TrainConfig).items() if literal_choices(hint)]


def train_parser():
    """The parser of ``phyll train``."""
    return build_parser()._subparsers._group_actions[0].choices["train"]


def train_options() -> dict[str, str]:
    """dest → option string of every option of ``phyll train``."""
    return {a.dest: a.option_strings[0] for a in train_parser()._actions if a.option_strings}


def test_every_field_is_declared_and_is_an_option_of_phyll_train():
    options = train_options()
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"], f.name
        flag = f.metadata["flag"]
        assert flag.group in (*GROUPS, "output", ""), f.name
        dest = {"system_params": "system_param", "rule_params": "rule_param"}.get(f.name, f.name)
        assert dest in options, f.name


def test_the_options_defaults_are_the_declared_ones():
    assert config_from_args(build_parser().parse_args(["train"])) == TrainConfig()
    for command in ("compare", "robustness", "sweep"):
        config = config_from_args(build_parser().parse_args([command]))
        assert config.epochs == TrainConfig().epochs and config.system == "acoustic"


@pytest.mark.parametrize("f", RANGED, ids=lambda f: f.name)
def test_a_value_outside_the_declared_range_is_one_line_naming_the_field(f, capsys):
    low, high = declared_range(f)
    bad = low - 1 if low is not None else high + 1
    with pytest.raises(ConfigError, match=rf"^{f.name} must be .*, got {bad}"):
        TrainConfig(**{f.name: bad})
    option = train_options()[f.name]
    with pytest.raises(SystemExit) as exit_:  # refused while the options are read
        main(["train", option, str(bad)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f.name in err and option in err


def test_val_fractions_range_is_half_open_on_both_paths():
    assert TrainConfig(val_fraction=0.0).val_fraction == 0.0
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"val_fraction must be in \[0, 0\.5\)"):
            TrainConfig(val_fraction=bad)


@pytest.mark.parametrize("name", CHOICES)
def test_a_value_outside_the_declared_choices_is_refused(name):
    assert len(CHOICES) >= 5
    with pytest.raises(ConfigError, match=rf"^{name} must be one of .*, got 'bogus'"):
        TrainConfig(**{name: "bogus"})


def test_the_profiles_are_the_declared_defaults_by_dataset_kind():
    for f in dataclasses.fields(TrainConfig):
        for kind, value in f.metadata["profile"].items():
            assert PROFILES[kind][f.name] == value
            assert f.default is None  # a profile fills a value left unset
    assert TrainConfig(dataset="mnist5k").epochs == PROFILES["image"]["epochs"]


def test_the_help_reads_names_from_the_registries(monkeypatch):
    monkeypatch.setitem(RULES, "my-rule", type("Mine", (PhyLL,), {"name": "my-rule"}))
    monkeypatch.setitem(FAULTS, "my-fault", MeasurementNoise)
    text = " ".join(train_parser().format_help().split())
    assert "my-rule" in text and "my-fault" in text
    assert "(default: tabular 30, image 15)" in text  # --epochs, from the profile


def test_list_params_shows_every_training_option(capsys):
    assert main(["list", "--params"]) == 0
    out = capsys.readouterr().out
    section = out.split("training options", 1)[1].split("\nsystem ", 1)[0]
    for f in dataclasses.fields(TrainConfig):
        assert f"\n  {f.name}: " in section, f.name
    assert "epochs: int | None = None (tabular 30, image 15)" in section
    assert "val_fraction: float = 0.15" in section and "(range [0, 0.5))" in section


def test_a_recorded_config_in_any_key_order_round_trips():
    config = TrainConfig(dataset="mnist5k", system="optical", faults=[{"name": "noise"}])
    recorded = dict(reversed(list(config.to_dict().items())))  # e.g. an older field order
    assert TrainConfig.from_dict(recorded) == config
    assert TrainConfig().faults is not TrainConfig().faults  # a fresh list per config

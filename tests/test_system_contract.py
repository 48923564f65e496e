"""One system contract for every way a system enters (--system, system_factory=, phyll serve,
the registry), fixed-size devices, the one registry with its entry points, --fault, and
one-line errors for whatever a user's code raises."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import phyll
from phyll import CallableSystem, PhysicalSystem, TrainConfig, make_system, train
from phyll.cli import build_parser, main
from phyll.errors import UserError
from phyll.experiments.arguments import config_from_args
from phyll.params import ParamError
from phyll.registry import SYSTEMS
from phyll.remote.server import load_system
from phyll.systems import SYSTEMS as ONE_REGISTRY
from phyll.systems import system_names
from phyll.systems.contract import build_system
from phyll.usercode import UserCodeError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(dataset="vowels7", epochs=2)


class Ring(PhysicalSystem):
    """A user's class: sizes, seed and one parameter by keyword."""

    def __init__(self, n_inputs, n_outputs, seed=0, coupling=0.1):
        super().__init__(n_inputs, n_outputs)
        self.seed, self.coupling = seed, coupling
        self.mix = torch.randn(n_outputs, n_inputs, generator=torch.Generator().manual_seed(seed))

    def _measure(self, drive):
        return (drive @ self.mix.T) ** 2 + self.coupling


class Duffing(PhysicalSystem):
    """A user's class naming its sizes otherwise: phyll cannot pass them."""

    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out)

    def _measure(self, drive):
        return drive


class Broken(PhysicalSystem):
    """A user's class whose measurement fails."""

    def _measure(self, drive):
        raise RuntimeError("the shutter is stuck")


def square(n: int, *, fixed: bool = False, fail: bool = False) -> CallableSystem:
    def physics(drive: np.ndarray) -> np.ndarray:
        if fail:
            raise ZeroDivisionError("the lock-in amplifier divided by zero")
        return np.abs(np.fft.fft(drive, axis=1)) ** 2

    return CallableSystem(physics, n, n, name="fft-device", fixed_size=fixed)


def test_the_contract_passes_what_a_factory_takes_and_names_what_it_lacks():
    ring = make_system(f"{__name__}:Ring", 5, 7, seed=3, coupling=0.5)
    assert (ring.n_inputs, ring.n_outputs, ring.seed, ring.coupling) == (5, 7, 3, 0.5)
    with pytest.raises(ParamError, match=r"unknown parameter 'k' for system .*valid: coupling"):
        make_system(f"{__name__}:Ring", 5, 7, k=1)
    with pytest.raises(ParamError, match=r"system '.*:Duffing' needs parameter 'n_in'"):
        make_system(f"{__name__}:Duffing", 5, 7)
    assert make_system(f"{__name__}:Duffing", n_in=3, n_out=2).n_outputs == 2

    def no_seed(n_inputs, n_outputs):  # seed and device are not passed to what does not take them
        return square(n_inputs)

    assert build_system(no_seed, "no-seed", n_inputs=4, n_outputs=4, seed=1, device="cpu")
    # phyll serve builds the same way: --param values are the keywords
    assert load_system(f"{__name__}:Ring", {"n_inputs": 2, "n_outputs": 3, "seed": 4}).seed == 4
    assert load_system("user_device:make", {}).n_inputs == 20


def test_system_factory_takes_the_contract_and_the_older_positional_form():
    seeds = []

    def make(n_inputs, n_outputs, seed, gain=1.0):
        seeds.append((seed, gain))
        return square(max(n_inputs, n_outputs))

    config = TrainConfig(**SMALL, blocks=2, width=16, measurements=16, seed=2)
    train(dataclass_replace(config, system_params={"gain": 2.0}), progress=False,
          system_factory=make)  # fmt: skip
    assert seeds == [(2000, 2.0), (2001, 2.0)]
    calls = []
    legacy = lambda block, n_in, n_out: calls.append(block) or square(max(n_in, n_out))  # noqa: E731
    assert train(config, progress=False, system_factory=legacy)["test_accuracy"] > 0.5
    assert calls == [0, 1]


def dataclass_replace(config: TrainConfig, **changes) -> TrainConfig:
    return TrainConfig(**{**config.to_dict(), **changes})


def test_a_python_factory_with_an_import_path_is_recorded_by_it(tmp_path):
    import user_device

    train(TrainConfig(**SMALL), tmp_path / "run", progress=False, system_factory=user_device.make)
    run = phyll.load_run(tmp_path / "run", trust_code=True)  # no factory passed again
    assert run.config.system == "user_device:make" and run.network.blocks[0].system.n_inputs == 20
    with pytest.raises(ValueError, match="trust_code=True"):
        phyll.load_run(tmp_path / "run")


def test_fixed_size_devices_get_a_network_sized_around_them_or_one_line():
    summary = train(TrainConfig(**SMALL), progress=False, system_factory=lambda seed: square(20))
    assert summary["width"] == 20 and summary["systems"][0]["n_outputs"] == 20
    declared = lambda n_inputs, n_outputs: square(24, fixed=True)  # noqa: E731
    assert train(TrainConfig(**SMALL), progress=False, system_factory=declared)["width"] == 24
    narrow = TrainConfig(**SMALL, width=12)  # a smaller width is kept: unused channels at zero
    assert train(narrow, progress=False, system_factory=declared)["width"] == 12
    with pytest.raises(UserError, match=r"needs 19 drive channels \(12 features \+ 7 label "
                       r"channels\).* with 16: use .*--rule phyll-unsup"):  # fmt: skip
        train(TrainConfig(**SMALL), system_factory=lambda seed: square(16))
    unsup = TrainConfig(**SMALL, rule="phyll-unsup")  # 12 features fit in 16 channels
    assert train(unsup, progress=False, system_factory=lambda seed: square(16))["width"] == 16
    with pytest.raises(UserError, match="measures 20 channels, not --measurements 64"):
        train(TrainConfig(**SMALL, measurements=64), system_factory=lambda seed: square(20))
    with pytest.raises(UserError, match="--width 30 does not fit its 20 drive channels"):
        train(TrainConfig(**SMALL, width=30), system_factory=lambda seed: square(20))


def test_user_code_errors_are_one_line_naming_the_system(tmp_path, monkeypatch, capsys):
    module = types.ModuleType("broken_lab")
    module.build = lambda n_inputs, n_outputs: 1 / 0
    module.flaky = lambda seed: square(20, fail=True)
    monkeypatch.setitem(sys.modules, "broken_lab", module)
    base = ["train", "--dataset", "vowels7", "--epochs", "1", "--quiet"]
    for system, message in (
        ("broken_lab:build", "system 'broken_lab:build' failed while building: ZeroDivisionError"),
        (
            "broken_lab:flaky",
            "system 'fft-device' failed while measuring: ZeroDivisionError: the "
            "lock-in amplifier divided by zero",
        ),
    ):
        assert main([*base, "--system", system, "--out", str(tmp_path / system)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert (
        main([*base, "--system", "broken_lab:build", "--out", str(tmp_path / "d"), "--debug"]) == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("ZeroDivisionError: division by zero")
    argv = [*base, "--system", "user_device:make", "--rule", "backprop-ideal"]
    assert main([*argv, "--out", str(tmp_path / "bp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "black box" in err
    with pytest.raises(UserCodeError, match="Broken failed while measuring: RuntimeError: the "):
        Broken(3, 2)(torch.rand(2, 3))


def test_every_error_class_a_user_can_meet_is_a_user_error():
    found = {}
    for info in pkgutil.walk_packages(phyll.__path__, "phyll."):
        for _, cls in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
            if issubclass(cls, Exception) and cls.__module__.startswith("phyll"):
                found[cls.__qualname__] = cls
    assert "NotDifferentiableError" in found and "RecordError" in found
    assert [n for n, c in found.items() if not issubclass(c, UserError)] == []


def test_one_registry_read_by_make_system_list_and_serve(monkeypatch, capsys):
    assert SYSTEMS is ONE_REGISTRY and "remote" in SYSTEMS
    monkeypatch.setitem(SYSTEMS, "my-ring", Ring)
    assert make_system("my-ring", 2, 3).n_outputs == 3
    assert load_system("my-ring", {"n_inputs": 2, "n_outputs": 2}).n_inputs == 2
    assert main(["list"]) == 0 and "my-ring" in capsys.readouterr().out


def test_an_entry_point_registers_a_system_every_process_sees(tmp_path, monkeypatch):
    info = tmp_path / "acme_lab-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-lab\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[phyll.systems]\nacme-cavity = user_device:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme-cavity" in system_names() and make_system("acme-cavity").n_inputs == 20
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT / "tests"), str(tmp_path)])}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "phyll.cli", "list"], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0 and "acme-cavity" in done.stdout, done.stderr


def test_faults_from_the_command_line_are_recorded(tmp_path):
    parser = build_parser()
    faults = ["--fault", "noise:std=0.02", "--fault", "drift:std=0.5,target=gain"]
    for command in ("train", "compare", "sweep"):
        config = config_from_args(parser.parse_args([command, *faults]))
        assert config.faults == [
            {"name": "noise", "std": 0.02},
            {"name": "drift", "std": 0.5, "target": "gain"},
        ]
    out = tmp_path / "run"
    argv = ["train", *faults, "--dataset", "vowels7", "--epochs", "1", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    recorded = phyll.load_run(out).config.faults
    assert recorded[1] == {"name": "drift", "std": 0.5, "target": "gain"}
    for bad in ("nosuch:x=1", "noise:sigma=1", "noise:std=loud"):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["train", "--fault", bad])
        assert exit_.value.code == 2


def test_a_wrapped_objects_state_must_be_plain_data():
    class Noisy:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def __call__(self, drive):
            return drive + self.rng.normal(size=drive.shape)

        def state_dict(self):
            return {"rng": self.rng, "gain": np.float32(2), "table": np.arange(3.0)}

        def load_state_dict(self, state):
            self.loaded = state

    system = CallableSystem(Noisy(), 3, 3, name="noisy")
    with pytest.raises(UserError, match=r"noisy.*holds a Generator at \['rng'\]"):
        system.state_dict()
    system.fn.state_dict = lambda: {"gain": np.float32(2), "table": np.arange(3.0), "t": (1,)}
    state = system.state_dict()
    system.load_state_dict(state)
    assert system.fn.loaded["gain"] == 2.0 and isinstance(system.fn.loaded["table"], np.ndarray)

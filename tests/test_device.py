"""Device placement without a GPU: the hot path creates no tensor on the default device.

On CUDA, a tensor made without ``device=`` (a constant, an index, a random draw from a host
generator) lands on the CPU: a device mismatch, or a host round trip per step. Here every
system call and every rule's training step runs inside ``torch.device("meta")``: whatever the
hot path creates without naming its device lands on the meta device, and mixing it with the
real (CPU) tensors fails. Each run is compared with an identical run outside the trap, so the
trap changes nothing else. The GPU itself is exercised by tests/test_cuda.py.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from phyll.cli import main
from phyll.engine import Engine
from phyll.errors import ConfigError
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.registry import make_system
from phyll.systems.faults import FAULTS
from tests.conftest import numpy_square_law


def trapped(fn, *args):
    """``fn(*args)`` with the default device set to meta (see the module docstring)."""
    with torch.device("meta"):
        return fn(*args)


SYSTEM_CASES = {
    "acoustic": lambda: make_system("acoustic", 12, 16, seed=3),
    "microwave": lambda: make_system("microwave", 12, 16, seed=3),
    "optical": lambda: make_system("optical", 12, 16, seed=3),
    "optical-amplitude-linear": lambda: make_system(
        "optical", 12, 16, seed=3, encoding="amplitude", nonlinearity="none"
    ),
    "random-features": lambda: make_system("random-features", 12, 16, seed=3),
    "callable": lambda: numpy_square_law(12, 16, seed=3),
}
#: fault wrappers with what makes them act on every call
FAULT_OPTIONS = {
    "noise": {"std": 0.01},
    "quantize": {"bits": 2},
    "drift": {"std": 0.5, "per_queries": 10, "target": "gain"},
    "step": {"strength": 0.5, "at_query": 0, "target": "gain"},
    "nan-bursts": {"rate": 0.0},
    "latency": {},
}


@pytest.mark.parametrize("name", sorted(SYSTEM_CASES))
def test_every_system_call_names_its_devices(name):
    drive = torch.rand(5, 12, generator=torch.Generator().manual_seed(0))
    free, caught = SYSTEM_CASES[name](), SYSTEM_CASES[name]()
    for _ in range(2):  # the second call: noise streams moved on, nothing cached
        expected, out = free(drive), trapped(caught, drive)
        assert out.device.type == "cpu" and torch.equal(out, expected)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_wrapper_names_its_devices(fault):
    def build():
        return FAULTS[fault](make_system("acoustic", 12, 16, seed=3), **FAULT_OPTIONS[fault])

    drive = torch.rand(5, 12, generator=torch.Generator().manual_seed(0))
    free, caught = build(), build()
    for _ in range(2):
        assert torch.equal(trapped(caught, drive), free(drive))


@pytest.mark.parametrize("system", ["acoustic", "microwave"])
def test_a_drifting_system_rebuilds_its_physics_on_its_own_device(system):
    def build():
        return FAULTS["drift"](make_system(system, 8, 12, seed=3), std=0.5, per_queries=10)

    drive = torch.rand(5, 8, generator=torch.Generator().manual_seed(0))
    free, caught = build(), build()
    for _ in range(2):  # every call perturbs the system (temperature, scatterer position)
        assert torch.equal(trapped(caught, drive), free(drive))
    assert caught.displacement == free.displacement != 0


RULE_CASES = {
    "phyll": {},
    "phyll-readout": {"rule": "phyll", "rule_params": {"prediction": "readout"}},
    "phyll-unsup": {"rule": "phyll-unsup"},
    "phyll-unsup-hybrid": {"rule": "phyll-unsup", "rule_params": {"pairs": "hybrid"}},
    "ff": {"rule": "ff"},
    "pat": {"rule": "pat", "rule_params": {"twin_samples": 64, "twin_epochs": 2}},
    "backprop-ideal": {"rule": "backprop-ideal"},
    "backprop-transfer": {"rule": "backprop-transfer"},
    "linear": {"rule": "linear", "use_physics": False},
    "dfa": {"rule": "dfa"},
    "zo-global": {"rule": "zo", "rule_params": {"loss": "global"}},
    "zo-local": {"rule": "zo", "rule_params": {"loss": "local"}},
}


def small_engine(case: str) -> Engine:
    config = TrainConfig(
        dataset="vowels", blocks=2, width=12, measurements=16, batch_size=64, **RULE_CASES[case]
    )
    exp = build_experiment(config)
    engine = Engine(exp.model, exp.rule, exp.splits, epochs=2, batch_size=config.batch_size)
    exp.rule.setup()  # setup (PAT's twin fit) is not the hot path
    engine.train_epoch()  # the optimizers' state exists from here on
    return engine


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_every_rule_trains_and_predicts_without_default_device_tensors(case):
    free = small_engine(case)
    caught = copy.deepcopy(free)
    loss = free.train_epoch()
    assert trapped(caught.train_epoch) == loss
    assert trapped(caught.evaluate, "val") == free.evaluate("val")
    weights, expected = caught.model.state_dict(), free.model.state_dict()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert [s.queries for s in caught.systems] == [s.queries for s in free.systems]


def test_device_auto_resolves_once_and_the_run_records_the_result(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--device", "auto", "--epochs", "1", "--width", "4", "--measurements", "8"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert json.loads((out / "config.json").read_text())["device"] == expected
    notice = "--device auto: CUDA is not available, running on cpu"
    assert (notice in capsys.readouterr().err) == (expected == "cpu")
    with pytest.raises(ConfigError, match="'auto' is resolved"):
        build_experiment(TrainConfig(device="auto"))

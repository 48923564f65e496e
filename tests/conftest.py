"""Shared fixtures: the reference data folder (../shared/data) and small helpers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from phyll.experiments.build import registry_systems
from phyll.experiments.config import TrainConfig
from phyll.systems import CallableSystem

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", help="also run the tests marked slow (subprocesses)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (a process each, measured) run only with ``--run-slow``."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """The reference data folder; tests using it skip in a clone without ../shared."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent (it exists in CI)")
    return SHARED_DATA


def numpy_square_law(n_inputs: int, n_outputs: int, seed: int = 0) -> CallableSystem:
    """A black box whose physics is NumPy: |M x|² with a fixed random complex M."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n_outputs, n_inputs)) + 1j * rng.normal(size=(n_outputs, n_inputs))
    m /= np.sqrt(n_inputs)

    def physics(drive: np.ndarray) -> np.ndarray:
        return np.abs(drive @ m.T) ** 2

    return CallableSystem(physics, n_inputs, n_outputs)


def sigint_factory(config: TrainConfig, signal_at_call: int | None = None):
    """The registry's systems, as a run builds them; optionally block 1's system sends this
    process SIGINT at its ``signal_at_call``-th call (a real signal, the real handler)."""
    calls = {"n": 0}
    registry = registry_systems(config)

    def factory(i: int, n_in: int, n_out: int):
        system = registry(i, n_in, n_out)
        physics = system._measure

        def measure_and_maybe_signal(drive: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            if calls["n"] == signal_at_call:
                os.kill(os.getpid(), signal.SIGINT)
            return physics(drive)

        if i == 1:
            system._measure = measure_and_maybe_signal
        return system

    return factory


def matmul_flops(meter) -> int:
    """A meter's matrix-product FLOPs (what a hand count of the matmuls gives), after checking
    that its total is the sum of its kinds and holds elementwise work too."""
    kinds = meter.costs.digital_flops_by_kind
    assert meter.costs.digital_flops == sum(kinds.values())
    assert kinds["elementwise"] > 0 or kinds["matmul"] == 0  # activations, losses, updates
    return kinds["matmul"]

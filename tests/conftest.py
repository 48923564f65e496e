"""Shared fixtures: the reference data folder (../shared/data) and small helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from phyll.systems import CallableSystem

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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

"""A user's own module, as a lab would write one: ``--system tests.numpy_lab:make`` builds a
black box whose physics is NumPy (no autograd path can reach it)."""

from __future__ import annotations

from phyll.systems import CallableSystem
from tests.conftest import numpy_square_law


def make(n_inputs: int, n_outputs: int, seed: int = 0) -> CallableSystem:
    """|M x|² of a fixed random complex matrix M, computed in NumPy."""
    return numpy_square_law(n_inputs, n_outputs, seed=seed)

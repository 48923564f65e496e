"""Wrap any callable (a NumPy simulator, a lab instrument's driver) as a physical system.

This is how users plug in their own hardware without subclassing: give a function that takes a
NumPy array ``[B, n_inputs]`` and returns ``[B, n_outputs]``. The function is called with plain
NumPy data, so no autograd graph can ever reach it: such a system is a true black box.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from phyll.systems.base import OutOfRange, PhysicalSystem, PhysicalSystemError


class CallableSystem(PhysicalSystem):
    """A black-box physical system backed by ``fn(drive: np.ndarray) -> np.ndarray``."""

    differentiable = False

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        n_inputs: int,
        n_outputs: int,
        drive_range: tuple[float, float] = (0.0, 1.0),
        out_of_range: OutOfRange = "clip",
        energy_per_query_j: float = 0.0,
    ) -> None:
        super().__init__(n_inputs, n_outputs, drive_range, out_of_range, energy_per_query_j)
        self.fn = fn

    def _measure(self, drive: Tensor) -> Tensor:
        result = self.fn(drive.detach().cpu().numpy().astype(np.float64))
        try:
            array = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PhysicalSystemError(f"system function returned non-numeric data: {exc}") from exc
        return torch.from_numpy(array).float()

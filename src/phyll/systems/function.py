"""Wrap any callable (a NumPy simulator, a lab instrument's driver) as a physical system.

This is how users plug in their own hardware without subclassing: give a function that takes a
NumPy array ``[B, n_inputs]`` and returns ``[B, n_outputs]``. The function is called with plain
NumPy data, so no autograd graph can ever reach it: such a system is a true black box. Its
``name`` (default: the function's) is what a run records as its system.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from phyll.systems.base import OutOfRange, PhysicalSystem, PhysicalSystemError


class CallableSystem(PhysicalSystem):
    """A black-box physical system backed by ``fn(drive: np.ndarray) -> np.ndarray``.

    Args:
        fn: the physics (or the instrument's driver call).
        n_inputs, n_outputs: channel counts.
        drive_range, out_of_range: the drive the device admits and what happens outside it.
        power_w: the device's power while measuring (W), for the energy figure.
        measurement_time_s: device time of one query (s); None: each call's measured duration.
        name: what runs record as the system (default: the function's name).
        device: torch device of the returned measurements (the function itself always gets
            and returns host arrays: one round trip per call on a GPU).
    """

    differentiable = False

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        n_inputs: int,
        n_outputs: int,
        drive_range: tuple[float, float] = (0.0, 1.0),
        out_of_range: OutOfRange = "clip",
        power_w: float = 0.0,
        measurement_time_s: float | None = None,
        name: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            n_inputs,
            n_outputs,
            drive_range,
            out_of_range,
            power_w=power_w,
            measurement_time_s=measurement_time_s,
            device=device,
        )
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", type(fn).__name__)

    def _measure(self, drive: Tensor) -> Tensor:
        result = self.fn(drive.detach().cpu().numpy().astype(np.float64))
        try:
            array = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PhysicalSystemError(f"system function returned non-numeric data: {exc}") from exc
        return torch.from_numpy(array).float()  # checked on the host, then moved (base class)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "name": self.name}

"""Wrap any callable (a NumPy simulator, a lab instrument's driver) as a physical system.

This is how users plug in their own hardware without subclassing: give a function that takes a
NumPy array ``[B, n_inputs]`` and returns ``[B, n_outputs]``. The function is called with plain
NumPy data, so no autograd graph can ever reach it: such a system is a true black box. Its
``name`` (default: the function's) is what a run records as its system.

**State.** When the function, or the object it is a method of, has ``state_dict()`` and
``load_state_dict(state)`` (its noise generator, a drift it models), the wrapper saves and
restores that state with its own, so a resumed run continues exactly. The state must be plain
data: numbers, strings, lists, tuples, dicts with string keys, NumPy arrays and torch tensors
(arrays come back as arrays); a checkpoint never holds a pickled object, so anything else is
refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from phyll.systems.base import OutOfRange, PhysicalSystem, PhysicalSystemError, SystemCodeError
from phyll.usercode import user_code

#: the key an array is stored under in a checkpoint (as a tensor, so no pickle is needed)
ARRAY = "__numpy_array__"


class CallableSystem(PhysicalSystem):
    """A black-box physical system backed by ``fn(drive: np.ndarray) -> np.ndarray``.

    Args:
        fn: the physics (or the instrument's driver call); with ``state_dict`` /
            ``load_state_dict`` (on ``fn`` or the object of a bound method) its state is
            checkpointed (module docstring).
        n_inputs: drive channels.
        n_outputs: measured channels.
        drive_range: the drive the device admits.
        out_of_range: what happens to a drive outside it.
        power_w: the device's power while measuring (W), for the energy figure.
        measurement_time_s: device time of one query (s); None: each call's measured duration.
        name: what runs record as the system (default: the function's name).
        device: torch device of the returned measurements (the function itself always gets
            and returns host arrays: one round trip per call on a GPU).
        fixed_size: True when the device's channels are what they are (the network is sized
            around it, see :mod:`phyll.systems.contract`).
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
        fixed_size: bool = False,
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
        self.fixed_size = fixed_size

    def _measure(self, drive: Tensor) -> Tensor:
        with user_code(f"system {self.name!r}", "measuring", SystemCodeError):
            result = self.fn(drive.detach().cpu().numpy().astype(np.float64))
        try:
            array = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PhysicalSystemError(f"system function returned non-numeric data: {exc}") from exc
        return torch.from_numpy(array).float()  # checked on the host, then moved (base class)

    @property
    def stateful(self) -> Any:
        """The object whose state is checkpointed with this system (None: no state)."""
        for owner in (self.fn, getattr(self.fn, "__self__", None)):
            if callable(getattr(owner, "state_dict", None)) and callable(
                getattr(owner, "load_state_dict", None)
            ):
                return owner
        return None

    def state_dict(self) -> dict[str, Any]:
        """The query counter and the wrapped object's own state (plain data, see above)."""
        state = super().state_dict()
        owner = self.stateful
        if owner is not None:
            with user_code(f"system {self.name!r}", "saving its state"):
                own = owner.state_dict()
            state["wrapped"] = to_plain(own, f"system {self.name!r}: state_dict()", [])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        owner = self.stateful
        if owner is not None and "wrapped" in state:
            with user_code(f"system {self.name!r}", "restoring its state"):
                owner.load_state_dict(from_plain(state["wrapped"]))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "name": self.name}


def to_plain(value: Any, what: str, where: list[Any]) -> Any:
    """``value`` as data a checkpoint holds without pickling (arrays as tagged tensors), or a
    :class:`PhysicalSystemError` naming what is not plain data and where it is."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {ARRAY: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, list | tuple):
        items = [to_plain(v, what, [*where, i]) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: to_plain(v, what, [*where, k]) for k, v in value.items()}
    raise PhysicalSystemError(
        f"{what} holds a {type(value).__name__} at {where}: a checkpoint keeps plain data only "
        "(numbers, strings, lists, dicts, arrays), never pickled objects; e.g. save a NumPy "
        "generator as rng.bit_generator.state"
    )


def from_plain(value: Any) -> Any:
    """The inverse of :func:`to_plain`: tagged tensors back to NumPy arrays."""
    if isinstance(value, dict):
        if set(value) == {ARRAY}:
            return value[ARRAY].numpy().copy()
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [from_plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value

"""Physical systems: what the hardware can do (drive it, measure it — nothing else).

``make_system(name, n_inputs, n_outputs, seed=..., **params)`` builds a registered system by
name; :data:`SYSTEMS` lists them. A new system is one module with a :class:`PhysicalSystem`
subclass plus one entry here.
"""

from __future__ import annotations

from typing import Any

from phyll.remote.client import RemoteBlockSystem
from phyll.systems.acoustic import AcousticCavity
from phyll.systems.base import (
    DriveError,
    NonFiniteMeasurementError,
    PhysicalSystem,
    PhysicalSystemError,
)
from phyll.systems.function import CallableSystem
from phyll.systems.microwave import MicrowaveCavity
from phyll.systems.optical import OpticalSystem

SYSTEMS: dict[str, type[PhysicalSystem]] = {
    "acoustic": AcousticCavity,
    "microwave": MicrowaveCavity,
    "optical": OpticalSystem,
    "remote": RemoteBlockSystem,  # a system served by `phyll serve` (address=tcp://host:port)
}


def make_system(
    name: str, n_inputs: int, n_outputs: int, seed: int = 0, **params: Any
) -> PhysicalSystem:
    """Build the registered system ``name`` with the given channel counts and seed."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; choose one of: {', '.join(sorted(SYSTEMS))}")
    return SYSTEMS[name](n_inputs, n_outputs, seed=seed, **params)


__all__ = [
    "SYSTEMS",
    "AcousticCavity",
    "CallableSystem",
    "DriveError",
    "MicrowaveCavity",
    "NonFiniteMeasurementError",
    "OpticalSystem",
    "PhysicalSystem",
    "PhysicalSystemError",
    "make_system",
]

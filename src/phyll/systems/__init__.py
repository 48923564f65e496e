"""Physical systems: what the hardware can do (drive it, measure it — nothing else).

:data:`SYSTEMS` maps the names of the simulated systems to their classes (a new system is one
module with a :class:`PhysicalSystem` subclass and one line here); the command line's full
registry, with the remote system, is :mod:`phyll.registry`.
"""

from __future__ import annotations

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
from phyll.systems.random_features import RandomFeatures

SYSTEMS: dict[str, type[PhysicalSystem]] = {
    "acoustic": AcousticCavity,
    "microwave": MicrowaveCavity,
    "optical": OpticalSystem,
    "random-features": RandomFeatures,  # a digital control: |R a|² (its work is digital)
}

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
    "RandomFeatures",
]

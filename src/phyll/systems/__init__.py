"""Physical systems: what the hardware can do (drive it, measure it — nothing else).

:data:`SYSTEMS` (:mod:`phyll.systems.registered`) is the one registry of system names: the
simulated systems (a new system is one module with a :class:`PhysicalSystem` subclass and one
line there), what is registered at run time, and installed packages' ``phyll.systems`` entry
points. :mod:`phyll.systems.contract` says how every system is built.
"""

from __future__ import annotations

from phyll.systems.acoustic import AcousticCavity
from phyll.systems.base import (
    DriveError,
    NonFiniteMeasurementError,
    PhysicalSystem,
    PhysicalSystemError,
)
from phyll.systems.contract import build_system, find_factory
from phyll.systems.function import CallableSystem
from phyll.systems.microwave import MicrowaveCavity
from phyll.systems.optical import OpticalSystem
from phyll.systems.random_features import RandomFeatures
from phyll.systems.registered import SYSTEMS, system_names

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
    "build_system",
    "find_factory",
    "system_names",
]

"""The one registry of system names, read by ``make_system``, ``phyll list`` and ``phyll serve``.

:data:`SYSTEMS` maps names to system classes or factories: the simulated systems below, what
phyll registers at import (``remote``, by :mod:`phyll.registry`) and what a program adds at
run time (``SYSTEMS["my-device"] = make``). A package registers systems that every process
sees, a new one included, with an entry point in its metadata, as pytest plugins do
(``pyproject.toml``)::

    [project.entry-points."phyll.systems"]
    my-device = "mylab.device:make"

Entry points are listed without importing anything (:func:`system_names`) and loaded when
their system is built (:func:`registered_factory`); a name in :data:`SYSTEMS` wins.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from phyll.systems.acoustic import AcousticCavity
from phyll.systems.microwave import MicrowaveCavity
from phyll.systems.optical import OpticalSystem
from phyll.systems.random_features import RandomFeatures
from phyll.usercode import UserCodeError, describe_exception

#: the entry-point group of systems that installed packages provide
GROUP = "phyll.systems"

SYSTEMS: dict[str, Callable[..., Any]] = {
    "acoustic": AcousticCavity,
    "microwave": MicrowaveCavity,
    "optical": OpticalSystem,
    "random-features": RandomFeatures,  # a digital control: |R a|² (its work is digital)
}


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def system_names() -> list[str]:
    """Every registered system name, those of installed packages' entry points included."""
    return sorted({*SYSTEMS, *_entry_points()})


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered system (nothing is imported)."""
    return name in SYSTEMS or name in _entry_points()


def registered_factory(name: str) -> Callable[..., Any] | None:
    """The class or factory registered as ``name`` (an entry point is loaded), else None."""
    if name in SYSTEMS:
        return SYSTEMS[name]
    point = _entry_points().get(name)
    if point is None:
        return None
    try:
        return point.load()
    except Exception as exc:  # the package's own code failed while it was imported
        raise UserCodeError(
            f"system {name!r} (entry point {point.value!r} of group {GROUP!r}) failed to "
            f"load: {describe_exception(exc)}"
        ) from exc

"""The one registry of system names, read by ``make_system``, ``phyll list`` and ``phyll serve``.

:data:`SYSTEMS` (a :class:`~phyll.plugins.Registry`) maps names to system classes or factories:
the simulated systems below, ``remote`` (a device served by ``phyll serve``, imported when it
is first used), what a program adds at run time (``SYSTEMS["my-device"] = make``) and what
installed packages register with an entry point in their metadata, as pytest plugins do
(``pyproject.toml``)::

    [project.entry-points."phyll.systems"]
    my-device = "mylab.device:make"

Entry points are listed without importing anything (:func:`system_names`) and loaded when
their system is built (:func:`registered_factory`); a name registered in phyll wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from phyll.plugins import Lazy, Registry
from phyll.systems.acoustic import AcousticCavity
from phyll.systems.microwave import MicrowaveCavity
from phyll.systems.optical import OpticalSystem
from phyll.systems.random_features import RandomFeatures

#: the entry-point group of systems that installed packages provide
GROUP = "phyll.systems"

SYSTEMS: Registry[Callable[..., Any]] = Registry(
    "system",
    GROUP,
    {
        "acoustic": AcousticCavity,
        "microwave": MicrowaveCavity,
        "optical": OpticalSystem,
        "random-features": RandomFeatures,  # a digital control: |R a|² (its work is digital)
        "remote": Lazy("phyll.remote.client:RemoteBlockSystem"),  # a device behind phyll serve
    },
    also="MODULE:NAME",
)


def system_names() -> list[str]:
    """Every registered system name, those of installed packages' entry points included."""
    return SYSTEMS.names()


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered system (nothing is imported)."""
    return name in SYSTEMS


def registered_factory(name: str) -> Callable[..., Any] | None:
    """The class or factory registered as ``name`` (an entry point is loaded), else None."""
    return SYSTEMS.get(name)

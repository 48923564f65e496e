"""Hardware in the loop: serve a physical system over TCP and drive it from another machine.

``phyll serve MODULE:CLASS`` (:mod:`phyll.remote.server`) exposes any
:class:`~phyll.systems.base.PhysicalSystem`; :class:`RemoteSystem` is the client, a physical
system like any other. The wire format is in :mod:`phyll.remote.protocol`.
"""

from phyll.remote.client import (
    RemoteBlockSystem,
    RemoteProtocolError,
    RemoteSystem,
    RemoteSystemError,
    RemoteTimeoutError,
)
from phyll.remote.protocol import ProtocolError
from phyll.remote.server import DeviceServer, load_system

__all__ = [
    "DeviceServer",
    "ProtocolError",
    "RemoteBlockSystem",
    "RemoteProtocolError",
    "RemoteSystem",
    "RemoteSystemError",
    "RemoteTimeoutError",
    "load_system",
]

"""Wire format between ``phyll serve`` and :class:`~phyll.remote.client.RemoteSystem`.

A message is one ZeroMQ multipart message of one or two frames:

1. a UTF-8 JSON object (at most :data:`MAX_HEADER_BYTES`), the *header*::

       {"v": 1, "id": 17, "op": "measure", "dtype": "float32", "shape": [64, 19]}

2. optionally, the raw bytes of one C-contiguous little-endian array whose ``dtype``
   (``"float32"`` or ``"float64"``) and 2-d ``shape`` the header declares.

Nothing on the wire is ever executed or unpickled: the header is parsed as JSON and the array is
read with :func:`numpy.frombuffer` after its declared size has been checked against the frame.
Requests carry an integer ``id``; a reply repeats it, so a client can drop replies to requests
it has given up on. Replies have ``"ok": true`` or ``"ok": false`` with ``"error"`` (a kind, see
:data:`ERROR_KINDS`) and ``"message"`` (one human-readable line).

Operations: ``hello`` (no array; the reply describes the served system) and ``measure`` (drive
array ``[B, n_inputs]``; the reply carries the measurement ``[B, n_outputs]``).

The server also accepts REQ clients (an empty delimiter frame first) for lab scripts written
without phyll; see :mod:`phyll.remote.server`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
#: largest accepted JSON header
MAX_HEADER_BYTES = 4096
#: default largest accepted message (header + array), both directions
DEFAULT_MAX_BYTES = 64 * 2**20
#: array types accepted on the wire (little-endian, whatever the host)
DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
OPS = ("hello", "measure")
#: ``error`` values of a refusal
ERROR_KINDS = (
    "ProtocolError",  # the message could not be parsed or broke a limit
    "DriveError",  # the drive has the wrong shape/dtype, is not finite or is out of range
    "NonFiniteMeasurement",  # the system returned NaN/inf
    "SystemError",  # the system failed otherwise (its message says how)
)


class ProtocolError(ValueError):
    """A message does not follow the wire format (or exceeds a size limit)."""


def encode(header: dict[str, Any], array: np.ndarray | None = None) -> list[bytes]:
    """Frames of one message: the JSON header (with ``v``, ``dtype``, ``shape`` filled in) and
    the array's raw little-endian bytes."""
    header = {"v": PROTOCOL_VERSION, **header}
    frames: list[bytes] = []
    if array is not None:
        if array.ndim != 2:
            raise ProtocolError(f"only 2-d arrays travel, got shape {list(array.shape)}")
        name = "float64" if array.dtype == np.float64 else "float32"
        array = np.ascontiguousarray(array, dtype=DTYPES[name])
        header["dtype"], header["shape"] = name, [int(n) for n in array.shape]
        frames.append(array.tobytes())
    text = json.dumps(header, allow_nan=False, default=str).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(text)} bytes exceeds {MAX_HEADER_BYTES}")
    return [text, *frames]


def decode(
    frames: list[bytes], max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Parse and check one message; raise :class:`ProtocolError` saying what is wrong."""
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(f"expected 1 or 2 frames (header, array), got {len(frames)}")
    size = sum(len(f) for f in frames)
    if size > max_bytes:
        raise ProtocolError(f"message of {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    raw = frames[0]
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw):,} bytes exceeds {MAX_HEADER_BYTES} bytes")
    try:
        header = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {header.get('v')!r}, expected {PROTOCOL_VERSION}")
    rid = header.get("id")
    if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool) or rid < 0):
        raise ProtocolError(f"id must be a non-negative integer, got {rid!r}")
    if len(frames) == 1:
        return header, None
    dtype, shape = header.get("dtype"), header.get("shape")
    if dtype not in DTYPES:
        raise ProtocolError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise ProtocolError(f"shape must be [rows, columns] of non-negative ints, got {shape!r}")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if len(frames[1]) != expected:
        raise ProtocolError(
            f"array frame has {len(frames[1]):,} bytes, {dtype} {shape} needs {expected:,}"
        )
    array = np.frombuffer(frames[1], dtype=DTYPES[dtype]).reshape(shape)
    return header, array.astype(array.dtype.newbyteorder("="), copy=True)


def error_reply(rid: int | None, kind: str, message: str) -> list[bytes]:
    """Frames of a refusal."""
    return encode({"id": rid, "ok": False, "error": kind, "message": message})


def best_effort_id(frames: list[bytes]) -> int | None:
    """The request id of a message that failed to decode, if one can be read at all."""
    try:
        rid = json.loads(bytes(frames[0])[:MAX_HEADER_BYTES].decode()).get("id")
    except (ValueError, AttributeError, IndexError, UnicodeDecodeError):
        return None
    return rid if isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0 else None

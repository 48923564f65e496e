"""Wire format between ``phyll serve`` and :class:`~phyll.remote.client.RemoteSystem`.

A message is one ZeroMQ multipart message of one or two frames:

1. a UTF-8 JSON object, the *header*::

       {"v": 1, "id": 17, "op": "measure", "dtype": "float32", "shape": [64, 19]}

2. optionally, the raw bytes of one C-contiguous little-endian array whose ``dtype``
   (``"float32"`` or ``"float64"``) and 2-d ``shape`` the header declares.

Nothing on the wire is ever executed or unpickled, and nothing is parsed deeply before it is
bounded: a header is refused unless it is at most :data:`MAX_REQUEST_HEADER_BYTES` (request) or
:data:`MAX_REPLY_HEADER_BYTES` (reply) long and its brackets, counted on the raw bytes outside
strings, nest at most :data:`MAX_REQUEST_DEPTH` / :data:`MAX_REPLY_DEPTH` deep; only then is it
parsed as JSON (no NaN/Infinity). It must be an object of the known keys of its direction
(:data:`REQUEST_FIELDS`, :data:`REPLY_FIELDS`), each of the documented type and range: shapes
``[rows, columns]`` with at most :data:`MAX_CHANNELS` columns and as many rows as fit in the
message limit, channel counts 1..:data:`MAX_CHANNELS`. The array frame must have exactly the
size its dtype and shape declare before :func:`numpy.frombuffer` reads it.

Requests carry an integer ``id``; a reply repeats it, so a client can drop replies to requests
it has given up on. Replies have ``"ok": true`` or ``"ok": false`` with ``"error"`` (a kind, see
:data:`ERROR_KINDS`) and ``"message"`` (one human-readable line).

Operations: ``hello`` (no array; the reply describes the served system, see
:data:`GREETING_KEYS`) and ``measure`` (drive array ``[B, n_inputs]``; the reply carries the
measurement ``[B, n_outputs]``).

The server also accepts REQ clients (an empty delimiter frame first) for lab scripts written
without phyll; see :mod:`phyll.remote.server`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from phyll.errors import ConfigError, UserError

PROTOCOL_VERSION = 1
#: largest accepted request header (requests are a handful of short fields)
MAX_REQUEST_HEADER_BYTES = 4096
#: largest accepted reply header (the hello reply carries the system's ``describe()``)
MAX_REPLY_HEADER_BYTES = 16384
#: deepest bracket nesting of a request header: the object and its ``shape`` list
MAX_REQUEST_DEPTH = 2
#: deepest bracket nesting of a reply header: the object, ``describe`` and 5 levels inside it
MAX_REPLY_DEPTH = 7
#: most drive or measured channels a message may declare (columns of an array, n_inputs...)
MAX_CHANNELS = 2**20
#: longest refusal message (longer ones are cut by the sender and refused by the receiver)
MAX_MESSAGE_CHARS = 500
#: bounds of the largest accepted message (header + array), ``--max-bytes``
MIN_MAX_BYTES, MAX_MAX_BYTES = 64 * 2**10, 2 * 2**30
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
#: what a ``hello`` reply must carry
GREETING_KEYS = (
    "n_inputs",
    "n_outputs",
    "drive_range",
    "out_of_range",
    "power_w",
    "describe",
    "server_queries",
    "max_bytes",
    "instance",
)


class ProtocolError(UserError, ValueError):
    """A message does not follow the wire format (or exceeds a size limit)."""


# ---------------------------------------------------------------------- field checks
Check = Callable[[Any], bool]


def is_int(value: Any, low: int, high: int) -> bool:
    """A JSON integer (not a bool) in ``[low, high]``."""
    return type(value) is int and low <= value <= high


def is_number(value: Any, low: float = -math.inf) -> bool:
    """A finite JSON number ≥ ``low`` (not a bool; an int below 2**63, so it converts to float)."""
    if type(value) is int:
        return abs(value) < 2**63 and value >= low
    return type(value) is float and math.isfinite(value) and value >= low


def is_plain(value: Any) -> bool:
    """Plain JSON data with finite numbers (nesting is already bounded by the raw scan)."""
    if isinstance(value, dict):
        return all(is_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return value is None or type(value) in (bool, str) or is_number(value)


def is_range(value: Any) -> bool:
    """``[low, high]`` with finite low < high."""
    if not (isinstance(value, list) and len(value) == 2 and all(map(is_number, value))):
        return False
    return value[0] < value[1]


def is_shape(value: Any) -> bool:
    """``[rows, columns]``; rows are bounded later, against the message limit."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and is_int(value[0], 0, MAX_MAX_BYTES)
        and is_int(value[1], 0, MAX_CHANNELS)
    )


def is_text(limit: int) -> Check:
    return lambda value: isinstance(value, str) and len(value) <= limit


def one_of(*choices: Any) -> Check:
    return lambda value: isinstance(value, str) and value in choices


#: what each key of a request header must be (description, check)
REQUEST_FIELDS: dict[str, tuple[str, Check]] = {
    "v": (str(PROTOCOL_VERSION), lambda v: is_int(v, PROTOCOL_VERSION, PROTOCOL_VERSION)),
    "id": ("a non-negative integer below 2**63", lambda v: v is None or is_int(v, 0, 2**63 - 1)),
    "op": (f"one of {', '.join(OPS)}", one_of(*OPS)),
    "dtype": (f"one of {', '.join(DTYPES)}", one_of(*DTYPES)),
    "shape": (f"[rows, columns ≤ {MAX_CHANNELS}] of non-negative ints", is_shape),
}
#: what each key of a reply header must be (description, check)
REPLY_FIELDS: dict[str, tuple[str, Check]] = {
    **{key: REQUEST_FIELDS[key] for key in ("v", "id", "dtype", "shape")},
    "ok": ("true or false", lambda v: isinstance(v, bool)),
    "error": (f"one of {', '.join(ERROR_KINDS)}", one_of(*ERROR_KINDS)),
    "message": (f"a string of ≤ {MAX_MESSAGE_CHARS} characters", is_text(MAX_MESSAGE_CHARS)),
    "n_inputs": (f"an integer in 1..{MAX_CHANNELS}", lambda v: is_int(v, 1, MAX_CHANNELS)),
    "n_outputs": (f"an integer in 1..{MAX_CHANNELS}", lambda v: is_int(v, 1, MAX_CHANNELS)),
    "drive_range": ("[low, high] with finite low < high", is_range),
    "out_of_range": ("one of clip, raise", one_of("clip", "raise")),
    "power_w": ("a finite number ≥ 0", lambda v: is_number(v, 0.0)),
    "measurement_time_s": (
        "null or a finite number ≥ 0",
        lambda v: v is None or is_number(v, 0.0),
    ),
    "describe": ("a JSON object of plain data", lambda v: isinstance(v, dict) and is_plain(v)),
    "server_queries": ("a non-negative integer", lambda v: is_int(v, 0, 2**63 - 1)),
    "max_bytes": (
        f"an integer in {MIN_MAX_BYTES}..{MAX_MAX_BYTES}",
        lambda v: is_int(v, MIN_MAX_BYTES, MAX_MAX_BYTES),
    ),
    "instance": ("a string of ≤ 64 characters", is_text(64)),
}
#: a request names its operation; a reply says whether it succeeded
REQUIRED = {"request": ("v", "op"), "reply": ("v", "ok")}


# ---------------------------------------------------------------------- parsing
_TOKEN = re.compile(rb'[\[\]{}"]')
#: the rest of a JSON string after its opening quote (escapes skip one byte, as in JSON)
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)


def nesting_depth(raw: bytes, limit: int) -> int:
    """Deepest bracket nesting of JSON text outside strings, scanned on the raw bytes in linear
    time without recursion; stops once past ``limit``. Multi-byte UTF-8 never contains these
    ASCII bytes, and strings end where JSON ends them, so the parser can nest no deeper."""
    depth = deepest = pos = 0
    while (token := _TOKEN.search(raw, pos)) is not None:
        pos = token.end()
        char = raw[token.start()]
        if char == ord('"'):
            rest = _STRING_REST.match(raw, pos)
            if rest is None:  # an unterminated string: the parser stops there
                break
            pos = rest.end()
        elif char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ProtocolError(f"header contains {name}, which JSON does not allow")


def parse_header(raw: bytes, max_header_bytes: int, max_depth: int) -> dict[str, Any]:
    """The header as a dict, parsed only once its size and nesting are known to be bounded."""
    if len(raw) > max_header_bytes:
        raise ProtocolError(f"header of {len(raw):,} bytes exceeds {max_header_bytes:,} bytes")
    raw = bytes(raw)
    depth = nesting_depth(raw, max_depth)
    if depth > max_depth:
        raise ProtocolError(f"header nests deeper than {max_depth} levels")
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise ProtocolError(f"header is not UTF-8 JSON ({reason})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    return header


def shorten(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters, for one-line messages about hostile values."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_fields(header: dict[str, Any], fields: dict[str, tuple[str, Check]]) -> None:
    """Every key known, every value of its documented type and range."""
    unknown = sorted(set(header) - set(fields))
    if unknown:
        names = ", ".join(shorten(k, 30) for k in unknown[:5])
        raise ProtocolError(f"unknown header key(s) {names}; expected {', '.join(fields)}")
    for key, value in header.items():
        description, check = fields[key]
        if not check(value):
            raise ProtocolError(f"{key} must be {description}, got {shorten(value)}")


def read_array(header: dict[str, Any], frame: bytes, max_bytes: int) -> np.ndarray:
    """The array frame, once its declared dtype and shape are present, bounded and match its
    size exactly."""
    dtype, shape = header.get("dtype"), header.get("shape")
    if dtype is None or shape is None:
        raise ProtocolError("an array frame needs dtype and shape in the header")
    itemsize = DTYPES[dtype].itemsize
    if shape[0] > max_bytes // itemsize:
        raise ProtocolError(f"shape {shape} has more rows than fit in {max_bytes:,} bytes")
    expected = shape[0] * shape[1] * itemsize
    if len(frame) != expected:
        raise ProtocolError(
            f"array frame has {len(frame):,} bytes, {dtype} {shape} needs {expected:,}"
        )
    array = np.frombuffer(frame, dtype=DTYPES[dtype]).reshape(shape)
    return array.astype(array.dtype.newbyteorder("="), copy=True)


def decode(
    frames: list[bytes], max_bytes: int, direction: str
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Parse and check one message of ``direction`` (``"request"`` or ``"reply"``); raise
    :class:`ProtocolError` saying what is wrong. Sizes are checked before anything is parsed."""
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(f"expected 1 or 2 frames (header, array), got {len(frames)}")
    size = sum(len(f) for f in frames)
    if size > max_bytes:
        raise ProtocolError(f"message of {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    if direction == "request":
        header = parse_header(frames[0], MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_DEPTH)
        fields = REQUEST_FIELDS
    else:
        header = parse_header(frames[0], MAX_REPLY_HEADER_BYTES, MAX_REPLY_DEPTH)
        fields = REPLY_FIELDS
    missing = [k for k in REQUIRED[direction] if k not in header]
    if missing:
        raise ProtocolError(f"header lacks {', '.join(missing)}")
    check_fields(header, fields)
    if len(frames) == 1:
        if "dtype" in header or "shape" in header:
            raise ProtocolError("header declares an array (dtype, shape) but none was sent")
        return header, None
    return header, read_array(header, frames[1], max_bytes)


def decode_request(
    frames: list[bytes], max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[dict[str, Any], np.ndarray | None]:
    """A request (server side): see :func:`decode`."""
    return decode(frames, max_bytes, "request")


def decode_reply(
    frames: list[bytes], max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[dict[str, Any], np.ndarray | None]:
    """A reply (client side): see :func:`decode`."""
    return decode(frames, max_bytes, "reply")


def check_max_bytes(value: Any) -> int:
    """``value`` if it is a sane message limit (an int in 64 KiB..2 GiB), else ConfigError."""
    if not is_int(value, MIN_MAX_BYTES, MAX_MAX_BYTES):
        raise ConfigError(
            f"max_bytes must be an integer in {MIN_MAX_BYTES:,}..{MAX_MAX_BYTES:,} "
            f"(64 KiB..2 GiB), got {shorten(value)}"
        )
    return value


def check_greeting(header: dict[str, Any]) -> None:
    """A successful ``hello`` reply carries every :data:`GREETING_KEYS` field."""
    missing = [k for k in GREETING_KEYS if k not in header]
    if missing:
        raise ProtocolError(f"greeting lacks {', '.join(missing)}")


# ---------------------------------------------------------------------- writing
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
    if len(text) > MAX_REPLY_HEADER_BYTES:
        raise ProtocolError(f"header of {len(text):,} bytes exceeds {MAX_REPLY_HEADER_BYTES:,}")
    return [text, *frames]


def one_line(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` on one line, cut to ``limit`` characters."""
    line = " ".join(str(message).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_reply(rid: int | None, kind: str, message: str) -> list[bytes]:
    """Frames of a refusal (the message made one line that fits the wire limit)."""
    return encode({"id": rid, "ok": False, "error": kind, "message": one_line(message)})


def best_effort_id(frames: list[bytes]) -> int | None:
    """The request id of a message that failed to decode, if the header can be read safely."""
    try:
        rid = parse_header(frames[0], MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_DEPTH).get("id")
    except (ProtocolError, IndexError):
        return None
    return rid if REQUEST_FIELDS["id"][1](rid) else None

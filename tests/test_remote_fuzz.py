"""Property-based fuzzing of both ends of the wire protocol (Hypothesis).

Server side: over 10,000 generated requests per run (random bytes, random, nested and huge JSON
headers, mutated valid headers, wrong frame counts, dtypes, shapes and array sizes, REQ-style
envelopes) go to one live in-process :class:`DeviceServer` over loopback, a batch per example.
Every one must get a well-formed reply, a refusal whenever the protocol's own decoder refuses
it and a measurement when it was valid by construction; afterwards a fresh client still greets
and measures.

Client side: an impostor server answers :class:`RemoteSystem` with hostile greetings and
measurement replies; the client must return a measurement of the right shape or raise one
one-line :class:`RemoteSystemError` / :class:`DriveError` / :class:`NonFiniteMeasurementError`,
never anything else (RecursionError, MemoryError, KeyError, TypeError...).

Large payloads are built from small drawn parameters (a nesting depth, a seed) so that each
example stays cheap; waits are generous deadlines that only a failing run reaches.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phyll.remote import DeviceServer, RemoteSystem
from phyll.remote.client import RemoteSystemError
from phyll.remote.protocol import (
    ERROR_KINDS,
    MIN_MAX_BYTES,
    REPLY_FIELDS,
    ProtocolError,
    decode_reply,
    decode_request,
    encode,
)
from phyll.systems import CallableSystem, DriveError, NonFiniteMeasurementError
from tests.test_remote_protocol import HELLO, PATIENCE_S, FakeServer, ThreadServers, serve

__all__ = ["serve"]  # the fixture, shared with test_remote_protocol

N_INPUTS, N_OUTPUTS = 4, 3
DRAWN_PER_EXAMPLE = 12  # x 9 (each request and its 8 variants): 108 messages per example
SERVER_EXAMPLES = 100  # 10,800 messages per run
CLIENT_EXAMPLES = 200
FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the worktree; a failure prints its reproduction
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------- values
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and inf become the NaN/Infinity literals JSON does not allow
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
OPENERS = [b"[", b"{", b'{"a":', b'[{"k":', b'"x":[']
PREFIXES = [b"", b'{"v": 1, "op": "hello", "id": 1, "x": ', b'{"v": 1, "ok": true, "describe": ']


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """Deeply nested JSON-ish text of up to 100 kB, from three drawn numbers."""
    depth = draw(st.integers(1, 20_000))
    text = draw(st.sampled_from(PREFIXES)) + draw(st.sampled_from(OPENERS)) * depth
    return text[:100_000] + (b"]" * depth if draw(st.booleans()) else b"")[:1000]


def dumps(header: Any) -> bytes:
    return json.dumps(header, allow_nan=True).encode()


def noise(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).bytes(size)


# ---------------------------------------------------------------------- requests
def valid_measure(rid: int, rows: int, seed: int, dtype: type = np.float32) -> list[bytes]:
    drive = np.random.default_rng(seed).random((rows, N_INPUTS)).astype(dtype)
    return encode({"id": rid, "op": "measure"}, drive)


@st.composite
def valid_request(draw: st.DrawFn) -> list[bytes]:
    rid = draw(st.integers(0, 2**63 - 1))
    if draw(st.booleans()):
        return encode({"id": rid, "op": "hello"})
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return valid_measure(rid, draw(st.integers(1, 8)), draw(st.integers(0, 2**32)), dtype)


@st.composite
def mutated_request(draw: st.DrawFn) -> list[bytes]:
    """A valid request with keys dropped, replaced by hostile values or added."""
    frames = draw(valid_request())
    header = json.loads(frames[0])
    for key in draw(st.sets(st.sampled_from(sorted(header)))):
        if draw(st.booleans()):
            del header[key]
        else:
            header[key] = draw(json_values)
    if draw(st.booleans()):
        header[draw(st.text(max_size=6))] = draw(json_values)
    return [dumps(header), *frames[1:]]


@st.composite
def mismatched_array(draw: st.DrawFn) -> list[bytes]:
    """A well-formed header whose array frame is of the wrong size, shape, dtype or values."""
    rows, cols = draw(st.integers(0, 20)), draw(st.integers(0, 8))
    dtype = draw(st.sampled_from(["float32", "float64", "int64", "<f4", "float16"]))
    size = rows * cols * 4 + draw(st.integers(-8, 8))
    header = {"v": 1, "id": draw(st.integers(0, 99)), "op": "measure", "dtype": dtype}
    header["shape"] = draw(st.sampled_from([[rows, cols], [rows], [rows, cols, 1], [cols, rows]]))
    seed = draw(st.integers(0, 2**32))
    frame = noise(seed, max(size, 0))  # random bits: NaN, inf, out-of-range drives too
    return [dumps(header), frame]


@st.composite
def odd_request(draw: st.DrawFn) -> list[bytes]:
    """Random bytes, random JSON, deep nesting, huge numbers, bad UTF-8, wrong frame counts."""
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.lists(st.binary(max_size=48), min_size=1, max_size=4))
    if kind == 1:
        return [dumps(draw(json_values)), *draw(st.lists(st.binary(max_size=32), max_size=2))]
    if kind == 2:
        return [draw(nested())]
    if kind == 3:
        power = draw(st.integers(0, 400))
        text = '{"v": 1, "id": 1%s, "op": "measure", "dtype": "float32", "shape": [1%s, 4]}'
        return [(text % ("0" * power, "0" * power)).encode(), b"\x00" * 16]
    if kind == 4:
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1.0"]))
        return [f'{{"v": 1, "op": "hello", "id": {literal}}}'.encode()]
    if kind == 5:
        junk = draw(st.sampled_from([b"\xff", b"\xef\xbb\xbf", b'"\\ud800"', b"\x00", b"\\"]))
        return [b'{"v": 1, "op": "hello", "id": 1, "x": ' + junk + b"}"]
    valid = draw(valid_request())
    return [*valid, *[b"extra"] * draw(st.integers(1, 4))]


#: hostile tokens the mutator splices into a header
TOKENS = [b"NaN", b"1e999", b'"\\ud800"', b"\xff", b'"', b"]", b"}", b"{", b",", b"\\", b"\x00"]


def variants(frames: list[bytes], rng: random.Random) -> list[list[bytes]]:
    """Cheap seeded mutations of one request: what multiplies each drawn request (Hypothesis
    draws the structure, this spreads it) so that an example carries ~100 messages."""
    head, rest = (frames[0], frames[1:]) if frames else (b"", [])
    at, cut = rng.randrange(len(head) + 1), rng.randrange(len(head) + 1)
    flipped = bytearray(head or b" ")
    flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    return [
        [head[:cut], *rest],  # truncated header
        [bytes(flipped), *rest],  # one bit flipped
        [head[:at] + b"[" * rng.randrange(1, 5000) + head[at:], *rest],  # nesting spliced in
        [head[:at] + rng.choice(TOKENS) + head[at:], *rest],  # a hostile token spliced in
        [head, *(f[: rng.randrange(len(f) + 1)] for f in rest), b"\x00" * rng.randrange(3)],
        [*frames, *frames],  # every frame twice
        [head],  # the array dropped
        rest or [b""],  # the header dropped
    ]


@st.composite
def requests(draw: st.DrawFn, drawn: int) -> list[tuple[list[bytes], bool, bool]]:
    """``drawn`` requests of every kind and their :func:`variants`, each as (frames, valid by
    construction, sent REQ-style with an empty delimiter first)."""
    kinds = [valid_request, mutated_request, mismatched_array, odd_request]
    rng = random.Random(draw(st.integers(0, 2**32)))
    batch = []
    for _ in range(drawn):
        kind = draw(st.integers(0, len(kinds) - 1))
        frames = draw(kinds[kind]())
        batch.append((frames, kind == 0))
        batch.extend((variant, False) for variant in variants(frames, rng))
    return [(frames, valid, rng.random() < 0.1) for frames, valid in batch]


# ---------------------------------------------------------------------- server side
@pytest.fixture
def fuzzed_server(serve: ThreadServers) -> DeviceServer:
    system = CallableSystem(lambda d: d[:, :N_OUTPUTS] ** 2, N_INPUTS, N_OUTPUTS)
    return serve(system, max_bytes=MIN_MAX_BYTES)  # small: over-limit messages are cheap


def expect(reply: list[bytes], frames: list[bytes], valid: bool) -> bool:
    """Check one reply against the local decoder's verdict; True if it is a refusal."""
    head, data = decode_reply(reply, MIN_MAX_BYTES)  # the server only sends well-formed replies
    try:
        request_head, drive = decode_request(frames, MIN_MAX_BYTES)
    except ProtocolError:
        assert (head["ok"], head["error"]) == (False, "ProtocolError"), head
        return True
    if valid:
        assert head["ok"] is True and head["id"] == request_head["id"], head
        rows = None if drive is None else (len(drive), N_OUTPUTS)
        assert (None if data is None else data.shape) == rows
    if not head["ok"]:
        assert head["error"] in ERROR_KINDS and "\n" not in head["message"]
    return not head["ok"]


def exchange(address: str, batch: list[tuple[list[bytes], bool, bool]]) -> int:
    """Send a batch on a fresh connection, then read one reply per request, in order (a failed
    example leaves no stale replies behind); return the number of refusals."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        for frames, _, envelope in batch:
            sock.send_multipart([b"", *frames] if envelope else frames)
        refused = 0
        for frames, valid, envelope in batch:
            assert sock.poll(int(PATIENCE_S * 1000)), "the server stopped answering"
            reply = sock.recv_multipart()
            if envelope or frames[:1] == [b""]:  # an empty first frame is a REQ delimiter
                assert reply[0] == b"", "a REQ-style request lost its delimiter"
                reply, frames = reply[1:], frames if envelope else frames[1:]
            refused += expect(reply, frames, valid)
        return refused
    finally:
        sock.close()


def test_server_survives_ten_thousand_fuzzed_requests(fuzzed_server):
    counts = {"sent": 0, "refused": 0}

    @settings(FUZZ, max_examples=SERVER_EXAMPLES)
    @given(requests(DRAWN_PER_EXAMPLE))
    def fuzz(batch):
        counts["refused"] += exchange(fuzzed_server.address, batch)
        counts["sent"] += len(batch)

    fuzz()
    assert exchange(fuzzed_server.address, [([], False, True)]) == 1  # an empty REQ envelope
    assert counts["sent"] >= 10_000, counts
    assert fuzzed_server.refused == counts["refused"] + 1 > 0
    client = RemoteSystem(fuzzed_server.address, timeout_s=PATIENCE_S)  # still serving
    drive = torch.rand(5, N_INPUTS)
    assert torch.allclose(client(drive), drive[:, :N_OUTPUTS] ** 2)


def test_a_message_over_four_times_the_limit_is_dropped_unread(fuzzed_server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(fuzzed_server.address)
    try:
        sock.send_multipart([b"{}", b"\x00" * (6 * MIN_MAX_BYTES)])
        assert not sock.poll(500), "ZeroMQ should drop it without the server seeing it"
    finally:
        sock.close()
    client = RemoteSystem(fuzzed_server.address, timeout_s=PATIENCE_S)
    assert client(torch.rand(2, N_INPUTS)).shape == (2, N_OUTPUTS)
    assert fuzzed_server.requests == 2  # the client's hello and measure only


# ---------------------------------------------------------------------- client side
class Impostor:
    """A fake server whose replies the current example decides: ``script[op](head)`` returns
    the reply frames for a request."""

    def __init__(self) -> None:
        self.script: dict[str, Any] = {}
        self.server = FakeServer(lambda head, array: [self.script["measure"](head)],
                                 greet=lambda head: [self.script["hello"](head)])  # fmt: skip


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    fake = Impostor()
    yield fake
    fake.server.close()


def good_greeting(head: dict[str, Any]) -> list[bytes]:
    return encode({"id": head["id"], **HELLO})


@st.composite
def hostile_header(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with keys dropped or replaced by hostile values, or keys added."""
    header = dict(base)
    for key in draw(st.sets(st.sampled_from(sorted(base)), max_size=3)):
        if draw(st.booleans()):
            del header[key]
        else:
            header[key] = draw(
                json_values
                | st.sampled_from(
                    [10**9, 2**21, 1e9, -1, 0, 10**400, [0, 10**400], {"a": [[[[[[]]]]]]}]
                )
            )
    if draw(st.integers(0, 4)) == 0:
        header[draw(st.text(max_size=6))] = draw(json_values)
    return header


@st.composite
def hostile_array(draw: st.DrawFn) -> list[bytes]:
    """No array, or one of a drawn shape, dtype and values (NaN and inf included)."""
    if draw(st.integers(0, 5)) == 0:
        return []
    rows, cols = draw(st.integers(0, 4)), draw(st.integers(0, 5))
    value = draw(st.sampled_from([0.5, float("nan"), float("inf"), -1e38]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    frames = encode({}, np.full((rows, cols), value, dtype))[1:]
    if draw(st.integers(0, 5)) == 0:
        frames = [frames[0][: draw(st.integers(0, 64))], *draw(st.lists(st.binary(), max_size=2))]
    return frames


@st.composite
def hostile_reply(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A function of the request header that returns one hostile reply: a mutated ``base``
    (with the request's id, so that it is never merely a stale reply) and a hostile array, or
    raw bytes, or nesting."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        raw = draw(st.one_of(nested(), st.binary(max_size=64), st.just(b'{"v": 1, "ok": NaN}')))
        return lambda head: [raw]
    header, array = draw(hostile_header(base)), draw(hostile_array())
    if kind == 1:
        header = {"v": 1, "ok": False, "error": draw(st.text(max_size=20) | st.sampled_from(
            ERROR_KINDS)), "message": draw(st.text(max_size=600))}  # fmt: skip
    if REPLY_FIELDS["id"][1](header.get("id")):  # else the id itself is hostile: kept
        return lambda head: [dumps({**header, "id": head["id"]}), *array]
    return lambda head: [dumps(header), *array]


MEASURE_BASE = {"v": 1, "ok": True, "instance": "x", "server_queries": 0}
ALLOWED = (RemoteSystemError, DriveError, NonFiniteMeasurementError)


def drive_impostor(address: str) -> None:
    """Greet and measure once; a hostile reply may only end in one clear allowed error."""
    try:
        client = RemoteSystem(address, timeout_s=PATIENCE_S, retries=0)
        try:
            out = client(torch.rand(2, client.n_inputs))
            assert out.shape == (2, client.n_outputs) and torch.isfinite(out).all()
        finally:
            client.close()
    except ALLOWED as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)


def test_client_survives_hostile_replies(impostor):
    @settings(FUZZ, max_examples=CLIENT_EXAMPLES)
    @given(st.booleans(), hostile_reply({"v": 1, **HELLO}), hostile_reply(MEASURE_BASE))
    def fuzz(hostile_greeting, greet, measure):
        impostor.script = {"hello": greet if hostile_greeting else good_greeting}
        impostor.script["measure"] = measure
        drive_impostor(impostor.server.address)

    fuzz()
    assert impostor.server.thread.is_alive()

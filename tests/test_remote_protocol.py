"""The wire format and both ends' refusals: malformed, oversized, nested, mismatched and NaN
messages; range checks; a restarted server's identity.

Nothing here depends on machine load: servers run in threads and are ready once bound, every
wait is a generous deadline that only a failing test reaches, and the one test about timeouts
expects a timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import zmq

from phyll.cli import main
from phyll.registry import make_system
from phyll.remote import DeviceServer, RemoteBlockSystem, RemoteSystem
from phyll.remote.client import RemoteProtocolError, RemoteSystemError, RemoteTimeoutError
from phyll.remote.protocol import (
    MAX_CHANNELS,
    ProtocolError,
    decode_reply,
    decode_request,
    encode,
    nesting_depth,
)
from phyll.remote.server import load_system
from phyll.systems import CallableSystem, DriveError, NonFiniteMeasurementError
from phyll.systems.acoustic import AcousticCavity
from tests.conftest import numpy_square_law

#: seconds any single reply may take before a test fails: only a broken test waits this long
PATIENCE_S = 60.0


class ThreadServers:
    """Starts DeviceServers in threads (on free ports unless told); stops them all at the end."""

    def __init__(self) -> None:
        self.running: dict[DeviceServer, tuple[threading.Event, threading.Thread]] = {}

    def __call__(self, system, address: str = "tcp://127.0.0.1:*", **options) -> DeviceServer:
        options.setdefault("log", lambda line: None)
        server = DeviceServer(system, address, **options)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop.is_set, 20), daemon=True)
        thread.start()  # bound already: requests queue until the loop reads them
        self.running[server] = (stop, thread)
        return server

    def stop(self, server: DeviceServer) -> None:
        stop, thread = self.running.pop(server)
        stop.set()
        thread.join(timeout=PATIENCE_S)
        assert not thread.is_alive(), "a server thread did not stop"

    def stop_all(self) -> None:
        for server in list(self.running):
            self.stop(server)


@pytest.fixture
def serve() -> Iterator[ThreadServers]:
    servers = ThreadServers()
    yield servers
    servers.stop_all()


def raw_request(address: str, frames: list[bytes], timeout_s: float = PATIENCE_S) -> list[bytes]:
    """Send frames with a bare DEALER socket; return the reply frames."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        assert sock.poll(int(timeout_s * 1000)), "the server did not answer"
        return sock.recv_multipart()
    finally:
        sock.close()


HELLO = {"ok": True, "n_inputs": 2, "n_outputs": 3, "drive_range": [0.0, 1.0],
         "out_of_range": "clip", "power_w": 0.0, "instance": "x",
         "server_queries": 0, "max_bytes": 1 << 20, "describe": {"class": "Fake"}}  # fmt: skip


def header(**fields) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


def test_encode_decode_round_trip_keeps_dtype_shape_and_values():
    for dtype in (np.float32, np.float64):
        array = np.random.default_rng(0).random((5, 3)).astype(dtype)
        head, back = decode_request(encode({"id": 3, "op": "measure"}, array))
        assert head["id"] == 3 and head["shape"] == [5, 3]
        assert back.dtype == dtype and np.array_equal(back, array)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([b"\xff\xfe"], "not UTF-8 JSON"),
        ([b"[1, 2]"], "JSON object"),
        ([header(v=2, id=1, op="hello")], "v must be 1"),
        ([b'{"id": 1, "op": "hello"}'], "lacks v"),
        ([header(id=1)], "lacks op"),
        ([header(id=-1, op="hello")], "non-negative integer"),
        ([header(id=2**64, op="hello")], "non-negative integer"),
        ([header(id=1, op="reboot")], "op must be one of hello, measure"),
        ([header(id=1, op="hello", extra=1)], "unknown header key"),
        ([header(id=1, op="measure", dtype="object", shape=[1, 1]), b"x" * 8], "dtype"),
        ([header(id=1, op="measure", dtype="float32", shape=[2, 3]), b"x" * 10], "needs 24"),
        ([header(id=1, op="measure", dtype="float32", shape=[2]), b"x" * 8], "shape"),
        ([header(id=1, op="measure", dtype="float32", shape=[1, MAX_CHANNELS + 1]), b""],
         "shape"),
        ([header(id=1, op="measure", dtype="float32", shape=[2**28, 0]), b""], "more rows"),
        ([header(id=1, op="measure", dtype="float32", shape=[1, 1])], "none was sent"),
        ([header(id=1, op="measure"), b"x" * 4], "needs dtype and shape"),
        ([header(id=1), b"", b""], "1 or 2 frames"),
        ([b'{"v": 1, "op": "hello", "id": NaN}'], "NaN"),
        ([b'{"v": 1, "op": "hello", "id": 1e999}'], "non-negative integer"),
        ([b"[" * 4000], "nests deeper than 2"),
        ([b'{"v": [[[1]]], "op": "hello"}'], "nests deeper than 2"),
        ([b"{" * 5000], "header of"),
    ],
)  # fmt: skip
def test_decode_refuses_malformed_requests_before_parsing_deeply(frames, message):
    with pytest.raises(ProtocolError, match=message):
        decode_request(frames)


def test_nesting_is_counted_on_raw_bytes_outside_strings():
    assert nesting_depth(b'{"a": "[[[{{{", "b": [1, [2]]}', 10) == 3
    assert nesting_depth(b'{"a": "\\", "b": ""[[["}', 10) == 1  # escapes do not fool it
    assert nesting_depth(b"[" * 100_000, 7) == 8  # stops once past the limit
    assert nesting_depth('{"é[": ["ü"]}'.encode(), 10) == 2


def greeting(**fields) -> bytes:
    return json.dumps({"v": 1, "id": 0, **HELLO, **fields}).encode()


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([greeting(describe={"a": [[[[[[1]]]]]]})], "nests deeper than 7"),
        ([b'{"v": 1, "ok": true, "describe": ' + b"[" * 20_000 + b"}"], "header of"),
        ([b'{"v": 1, "ok": true, "describe": ' + b"[" * 6000 + b"}"], "nests deeper"),
        ([greeting(n_inputs=1e9)], "n_inputs must be an integer in 1..1048576"),
        ([greeting(n_outputs=MAX_CHANNELS + 1)], "n_outputs must be"),
        ([greeting(drive_range=[1.0, 0.0])], "drive_range must be"),
        ([greeting(out_of_range="explode")], "out_of_range must be"),
        ([greeting(power_w=-1.0)], "power_w must be"),
        ([greeting(power_w=10**400)], "power_w must be"),
        ([greeting(drive_range=[0, 10**400])], "drive_range must be"),
        ([greeting(describe=[1])], "describe must be"),
        ([greeting(max_bytes=10)], "max_bytes must be"),
        ([greeting(op="hello")], "unknown header key"),
        ([json.dumps({"v": 1, "id": 1}).encode()], "lacks ok"),
        ([json.dumps({"v": 1, "ok": False, "message": "x" * 600}).encode()], "message must be"),
    ],
)  # fmt: skip
def test_decode_refuses_hostile_replies(frames, message):
    with pytest.raises(ProtocolError, match=message):
        decode_reply(frames)
    decode_reply([greeting()])  # the well-formed greeting passes


def test_server_refuses_malformed_oversized_and_mismatched_requests_and_keeps_serving(serve):
    server = serve(numpy_square_law(6, 4), max_bytes=65536)
    good = encode({"id": 99, "op": "measure"}, np.full((2, 6), 0.5, np.float32))
    bad_requests = [
        ([b"not json"], None, "ProtocolError", "JSON"),
        ([header(id=1, op="reboot")], 1, "ProtocolError", "op must be one of"),
        ([header(id=2, op="measure")], 2, "ProtocolError", "needs a drive"),
        ([header(id=3, op="measure", dtype="float32", shape=[2, 6]), b"\x00" * 7], 3,
         "ProtocolError", "needs 48"),
        ([header(id=4, op="measure", dtype="int64", shape=[1, 6]), b"\x00" * 48], 4,
         "ProtocolError", "dtype"),
        (encode({"id": 5, "op": "measure"}, np.zeros((3000, 6), np.float32)), 5,
         "ProtocolError", "exceeds the limit of 65,536"),
        (encode({"id": 6, "op": "measure"}, np.zeros((2, 5), np.float32)), 6,
         "DriveError", "[batch ≥ 1, 6]"),
        (encode({"id": 7, "op": "measure"}, np.full((2, 6), np.nan, np.float32)), 7,
         "DriveError", "NaN or inf"),
        (encode({"id": 8, "op": "hello"}, np.zeros((1, 1), np.float32)), 8, "ProtocolError",
         "takes no array"),
        ([b"[" * 4000], None, "ProtocolError", "nests deeper"),  # once a RecursionError
        ([b'{"v": 1, "id": 9, "op": "hello", "x": ' + b"[" * 6000], None, "ProtocolError",
         "header of"),
        ([b'{"v": 1, "id": 10, "op": ' + b"{" * 3000], None, "ProtocolError", "nests deeper"),
    ]  # fmt: skip
    for frames, rid, kind, message in bad_requests:
        head, data = decode_reply(raw_request(server.address, frames))
        assert (head["ok"], head["id"], head["error"]) == (False, rid, kind)
        assert message in head["message"] and data is None
        head, data = decode_reply(raw_request(server.address, good))  # still serving
        assert head["ok"] and head["id"] == 99 and data.shape == (2, 4)
    assert server.refused == len(bad_requests)
    # only the valid requests drove the system
    assert server.system.queries == server.samples == 2 * len(bad_requests)


def test_server_refuses_out_of_range_drive_when_the_system_says_raise(serve):
    strict = CallableSystem(lambda d: d[:, :2] ** 2, 3, 2, out_of_range="raise")
    server = serve(strict)
    request = encode({"id": 1, "op": "measure"}, np.full((1, 3), 1.5, np.float32))
    head, _ = decode_reply(raw_request(server.address, request))
    assert head["error"] == "DriveError" and "outside" in head["message"]
    client = RemoteSystem(server.address, timeout_s=PATIENCE_S)
    assert client.out_of_range == "raise"
    with pytest.raises(DriveError, match="outside"):  # refused client-side already
        client(torch.full((1, 3), 1.5))


def test_a_failing_driver_is_reported_and_the_server_keeps_serving(serve):
    state = {"fail": True}

    def driver(drive):
        if state.pop("fail", False):
            raise OSError("instrument on COM3 not responding")
        return drive**2

    server = serve(CallableSystem(driver, 2, 2))
    client = RemoteSystem(server.address, timeout_s=PATIENCE_S)
    with pytest.raises(RemoteSystemError, match="COM3 not responding"):
        client(torch.rand(3, 2))
    assert client(torch.rand(3, 2)).shape == (3, 2)


def test_req_clients_without_phyll_are_served(serve):
    server = serve(numpy_square_law(2, 2))
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    try:
        sock.send_multipart(encode({"id": 1, "op": "hello"}))
        assert sock.poll(int(PATIENCE_S * 1000))
        head, _ = decode_reply(sock.recv_multipart())
        assert head["ok"] and head["n_inputs"] == 2
    finally:
        sock.close()


def test_client_takes_its_shape_and_range_from_the_handshake_and_refuses_locally(serve):
    server = serve(CallableSystem(lambda d: d[:, :2] * 2, 5, 2, drive_range=(-1.0, 1.0)))
    client = RemoteSystem(server.address, timeout_s=PATIENCE_S)
    assert (client.n_inputs, client.n_outputs, client.drive_range) == (5, 2, (-1.0, 1.0))
    assert not client.differentiable
    with pytest.raises(DriveError, match=r"\[batch, 5\]"):
        client(torch.rand(2, 4))
    out = client(torch.full((3, 5), 2.0))  # clipped to the declared range, like a local system
    assert torch.allclose(out, torch.full((3, 2), 2.0))
    assert client.queries == 3 and client.server_queries() == 3


def test_large_batches_are_split_to_fit_the_servers_limit(serve):
    server = serve(numpy_square_law(8, 8), max_bytes=64 * 1024)
    client = RemoteSystem(server.address, timeout_s=PATIENCE_S)
    drive = torch.rand(5000, 8)  # 160 kB: above the 64 kB limit
    out = client(drive)
    local = numpy_square_law(8, 8)(drive)
    assert torch.allclose(out, local) and client.queries == 5000


def test_served_nan_measurements_are_remeasured_or_reported_per_policy(serve):
    bursts = {"left": 1}

    def flaky(drive):
        out = drive**2
        if bursts["left"] > 0:
            bursts["left"] -= 1
            out[0, 0] = np.nan
        return out

    server = serve(CallableSystem(flaky, 3, 3))
    remeasure = RemoteSystem(server.address, timeout_s=PATIENCE_S, nonfinite="remeasure")
    out = remeasure(torch.rand(4, 3))
    assert torch.isfinite(out).all()
    assert remeasure.remeasured == 4 and remeasure.queries == 8  # the wasted batch is counted
    assert remeasure.server_queries() == 8
    bursts["left"] = 1
    strict = RemoteSystem(server.address, timeout_s=PATIENCE_S, nonfinite="raise")
    with pytest.raises(NonFiniteMeasurementError, match="NaN/inf in 1 of 4 samples"):
        strict(torch.rand(4, 3))
    bursts["left"] = 10
    with pytest.raises(NonFiniteMeasurementError, match="after 2 re-measurements"):
        remeasure(torch.rand(4, 3))


class FakeServer:
    """A scripted server: ``respond(header, array) -> list of reply frame lists`` for measure
    requests; ``greet(header) -> list of reply frame lists`` for hello (default: :data:`HELLO`).
    """

    def __init__(self, respond, greet=None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.respond, self.stop = respond, threading.Event()
        self.greet = greet or (lambda head: [encode({"id": head["id"], **HELLO})])
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.stop.is_set():
            if self.sock.poll(20):
                identity, *frames = self.sock.recv_multipart()
                head, array = decode_request(frames)
                hello = head["op"] == "hello"
                replies = self.greet(head) if hello else self.respond(head, array)
                for reply in replies:
                    self.sock.send_multipart([identity, *reply])
        self.sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=PATIENCE_S)


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(respond, greet=None) -> FakeServer:
        servers.append(FakeServer(respond, greet))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def ok(head, rows, value=1.0, dtype=np.float32):
    return encode({"id": head["id"], "ok": True}, np.full((rows, 3), value, dtype))


def test_client_refuses_malformed_and_mismatched_replies(fake):
    garbage = fake(lambda head, a: [[b"\x00garbage"]])
    with pytest.raises(RemoteProtocolError, match=r"malformed reply.*JSON"):
        RemoteSystem(garbage.address, timeout_s=PATIENCE_S)(torch.rand(1, 2))
    shape = fake(lambda head, a: [encode({"id": head["id"], "ok": True}, np.ones((1, 5)))])
    with pytest.raises(RemoteProtocolError, match=r"shape \[1, 5\], expected \[1, 3\]"):
        RemoteSystem(shape.address, timeout_s=PATIENCE_S)(torch.rand(1, 2))
    big = fake(lambda head, a: [ok(head, 6000)])
    client = RemoteSystem(big.address, timeout_s=PATIENCE_S, max_bytes=65536)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 65,536"):
        client(torch.rand(1, 2))
    nested = fake(lambda head, a: [[b'{"v": 1, "ok": true, "id": ' + b"[" * 4000]])
    with pytest.raises(RemoteProtocolError, match="nests deeper"):  # once a RecursionError
        RemoteSystem(nested.address, timeout_s=PATIENCE_S)(torch.rand(1, 2))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n_inputs": 10**9}, "n_inputs must be an integer in 1..1048576"),  # once 256 GB
        ({"n_inputs": 1e9}, "n_inputs must be an integer"),
        ({"drive_range": [1, 1]}, "drive_range must be"),
        ({"describe": {"a": [[[[[[[0]]]]]]]}}, "nests deeper"),
        ({"n_outputs": None}, "n_outputs must be"),
        ({"instance": None}, "instance must be"),
    ],
)
def test_client_refuses_hostile_greetings_with_one_clear_line(fake, fields, message):
    server = fake(lambda head, a: [], greet=lambda head: [encode({"id": head["id"], **HELLO,
                                                                  **fields})])  # fmt: skip
    with pytest.raises(RemoteProtocolError, match=message) as exc:
        RemoteSystem(server.address, timeout_s=PATIENCE_S)
    assert "\n" not in str(exc.value)
    lacking = {k: v for k, v in HELLO.items() if k != "n_inputs"}
    server = fake(lambda head, a: [], greet=lambda head: [encode({"id": head["id"], **lacking})])
    with pytest.raises(RemoteProtocolError, match="greeting lacks n_inputs"):
        RemoteSystem(server.address, timeout_s=PATIENCE_S)


def test_client_refuses_a_sample_that_cannot_fit_the_message_limit(fake):
    wide = {**HELLO, "n_inputs": MAX_CHANNELS, "max_bytes": 65536}
    server = fake(lambda head, a: [], greet=lambda head: [encode({"id": head["id"], **wide})])
    client = RemoteSystem(server.address, timeout_s=PATIENCE_S)
    with pytest.raises(RemoteProtocolError, match="does not fit the message limit of 65,536"):
        client(torch.rand(1, MAX_CHANNELS))


def test_client_drops_stale_replies_and_matches_ids(fake):
    server = fake(lambda head, a: [ok({"id": head["id"] + 1000}, len(a), 7.0),
                                   ok(head, len(a), 2.0)])  # fmt: skip
    out = RemoteSystem(server.address, timeout_s=PATIENCE_S)(torch.rand(2, 2))
    assert torch.equal(out, torch.full((2, 3), 2.0))


def test_nan_in_a_reply_follows_the_policy(fake):
    sent = {"n": 0}

    def respond(head, a):
        sent["n"] += 1
        return [ok(head, len(a), np.nan if sent["n"] == 1 else 3.0)]

    client = RemoteSystem(fake(respond).address, timeout_s=PATIENCE_S)
    assert torch.equal(client(torch.rand(2, 2)), torch.full((2, 3), 3.0))
    assert client.remeasured == 2
    always_nan = fake(lambda head, a: [ok(head, len(a), np.inf)])
    with pytest.raises(NonFiniteMeasurementError, match="policy: raise"):
        RemoteSystem(always_nan.address, timeout_s=PATIENCE_S, nonfinite="raise")(torch.rand(2, 2))


def test_silence_ends_in_a_clear_timeout_after_bounded_retries(fake):
    server = fake(lambda head, a: [])  # greets, then never answers a measurement
    client = RemoteSystem(server.address, timeout_s=PATIENCE_S, retries=2)
    client.timeout_s = 0.2  # greeted patiently; a slow greeting on retry is one more timeout
    with pytest.raises(RemoteTimeoutError, match=r"no reply from tcp://127\.0\.0\.1:\d+ after 3"):
        client(torch.rand(1, 2))
    assert client.reconnects == 2
    with pytest.raises(RemoteTimeoutError, match="is `phyll serve` running"):
        RemoteSystem("tcp://127.0.0.1:9", timeout_s=0.2, retries=0)


def test_load_system_accepts_classes_factories_and_names_and_refuses_others():
    assert load_system("phyll.systems.acoustic:AcousticCavity",
                       {"n_inputs": 3, "n_outputs": 4}).n_outputs == 4  # fmt: skip
    assert load_system("acoustic", {"n_inputs": 3, "n_outputs": 4}).n_inputs == 3
    assert load_system("tests.conftest:numpy_square_law", {"n_inputs": 2, "n_outputs": 2})
    with pytest.raises(ValueError, match="cannot import"):
        load_system("no_such_module:X", {})
    with pytest.raises(ValueError, match=r"module 'phyll\.systems' has no 'Nope'"):
        load_system("phyll.systems:Nope", {})
    with pytest.raises(ValueError, match="not a phyll PhysicalSystem"):
        load_system("numpy:zeros", {"shape": 3})
    with pytest.raises(ValueError, match="'acoustic' needs parameter 'n_outputs'"):
        load_system("acoustic", {"n_inputs": 3})


def test_server_and_registry_misuse_are_clear_errors(serve):
    server = serve(numpy_square_law(2, 2))
    with pytest.raises(ValueError, match="cannot listen on"):
        DeviceServer(numpy_square_law(2, 2), server.address)
    with pytest.raises(ValueError, match="needs --system-param address"):
        make_system("remote", 2, 2)
    with pytest.raises(ValueError, match=r"unknown parameter .timeout.*valid: address"):
        make_system("remote", 2, 2, address=server.address, timeout=3)
    with pytest.raises(ValueError, match="needs ≥ 3 and exactly 2"):
        RemoteBlockSystem(3, 2, address=server.address)
    # a fixed-size device: the registry builds it as it is, whatever sizes are asked for
    assert make_system("remote", 3, 5, address=server.address).n_inputs == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_bytes": 0}, "max_bytes must be an integer in 65,536..2,147,483,648"),
        ({"max_bytes": 2**31 + 1}, "max_bytes must be"),
        ({"max_bytes": 1e6}, "max_bytes must be"),
        ({"timeout_s": 0}, "timeout_s must be"),
        ({"timeout_s": -1.0}, "timeout_s must be"),
        ({"timeout_s": float("nan")}, "timeout_s must be"),
        ({"timeout_s": float("inf")}, "timeout_s must be"),
        ({"timeout_s": "5"}, "timeout_s must be"),
        ({"retries": -1}, "retries must be"),
        ({"remeasure_attempts": 1.5}, "remeasure_attempts must be"),
    ],
)
def test_client_options_out_of_range_are_refused_before_connecting(options, message):
    with pytest.raises(ValueError, match=message):
        RemoteSystem("tcp://127.0.0.1:9", **options)


def test_server_limits_out_of_range_are_refused(capsys):
    with pytest.raises(ValueError, match="max_bytes must be"):
        DeviceServer(numpy_square_law(2, 2), "tcp://127.0.0.1:*", max_bytes=0)
    chatty = numpy_square_law(2, 2)
    chatty.describe = lambda: {"notes": "x" * 20_000}
    with pytest.raises(ValueError, match="greeting breaks the wire format"):
        DeviceServer(chatty, "tcp://127.0.0.1:*")
    for option, value, message in [
        ("--port", "99999", "port 99999 is outside 0..65535"),
        ("--port", "-1", "port -1 is outside"),
        ("--port", "http", "not an integer"),
        ("--max-bytes", "0", "message limit 0 is outside 65536..2147483648"),
        ("--max-bytes", str(2**31 + 1), "is outside"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["serve", "acoustic", option, value])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert exc.value.code == 2 and err.startswith(f"phyll serve: error: argument {option}: ")
        assert message in err


# ---------------------------------------------------------------------- identity
def cavity(**params) -> AcousticCavity:
    return AcousticCavity(3, 4, **params)


def test_a_restarted_server_must_be_the_same_device(serve):
    current = serve(cavity())
    address = current.address
    client = RemoteSystem(address, timeout_s=PATIENCE_S)
    current.system.perturb(1.0)  # drifts while it runs: the same device
    assert client.server_queries() == 0 and client.server_info["describe"]["temperature_c"] == 21

    def restart(**params) -> None:
        nonlocal current
        serve.stop(current)
        current = serve(cavity(**params), address)
        client.close()  # the next call connects afresh (ZeroMQ would too, in its own time)

    restart()  # as first adopted (20 °C), not as last seen (21 °C): accepted
    assert client(torch.rand(2, 3)).shape == (2, 4) and client.server_restarts == 1
    for params, change in [
        ({"seed": 1}, "seed: 0 → 1"),
        ({"t60_s": 0.5}, "t60_s: 0.6 → 0.5"),
        ({"temperature_c": 26.0}, "temperature_c: 20.0 → 26.0"),
        ({"n_freqs": 2}, "n_freqs: 4 → 2"),
    ]:
        restart(**params)
        with pytest.raises(RemoteSystemError, match="restarted as a different device") as exc:
            client(torch.rand(2, 3))
        assert change in str(exc.value) and "\n" not in str(exc.value)


def test_resuming_against_a_different_device_is_refused(serve):
    original = RemoteSystem(serve(cavity()).address, timeout_s=PATIENCE_S)
    original(torch.rand(5, 3))
    state = original.state_dict()
    same = RemoteSystem(serve(cavity()).address, timeout_s=PATIENCE_S)
    same.load_state_dict(state)
    assert same.queries == 5
    other = RemoteSystem(serve(cavity(seed=1)).address, timeout_s=PATIENCE_S)
    with pytest.raises(RemoteSystemError, match=r"is not the device this run was trained on "
                                                r"\(seed: 0 → 1\)"):  # fmt: skip
        other.load_state_dict(state)


def test_a_client_adopts_the_served_devices_declared_costs(serve):
    """Declared measurement time, power and calibration drives cross the wire; a device that
    declares no time is timed by its round trips; blocks sharing a device share its key (its
    calibration is counted once)."""
    declared = CallableSystem(lambda d: d**2, 3, 3, power_w=0.5, measurement_time_s=2e-3)
    declared.calibration_queries = 5
    address = serve(declared).address
    client = RemoteSystem(address, timeout_s=PATIENCE_S)
    assert (client.measurement_time_s, client.power_w, client.calibration_queries) == (
        2e-3,
        0.5,
        5,
    )
    assert client.device_time(10, 99.0) == pytest.approx(0.02)
    assert RemoteSystem(address, timeout_s=PATIENCE_S).device_key == client.device_key
    timed = RemoteSystem(serve(numpy_square_law(2, 2)).address, timeout_s=PATIENCE_S)
    assert timed.measurement_time_s is None and timed.device_time(10, 0.3) == 0.3

"""The wire format and both ends' refusals: malformed, oversized, mismatched and NaN messages."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import zmq

from phyll.registry import make_system
from phyll.remote import DeviceServer, RemoteSystem
from phyll.remote.client import RemoteProtocolError, RemoteSystemError, RemoteTimeoutError
from phyll.remote.protocol import ProtocolError, decode, encode
from phyll.remote.server import load_system
from phyll.systems import CallableSystem, DriveError, NonFiniteMeasurementError
from tests.conftest import numpy_square_law


@pytest.fixture
def serve() -> Iterator[Callable[..., DeviceServer]]:
    """Start DeviceServers in threads on free ports; always stopped at the end."""
    started: list[tuple[DeviceServer, threading.Event, threading.Thread]] = []

    def start(system, **options) -> DeviceServer:
        server = DeviceServer(system, "tcp://127.0.0.1:*", log=lambda line: None, **options)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop.is_set, 20), daemon=True)
        thread.start()
        started.append((server, stop, thread))
        return server

    yield start
    for _, stop, thread in started:
        stop.set()
        thread.join(timeout=5)


def raw_request(address: str, frames: list[bytes], timeout_s: float = 5.0) -> list[bytes]:
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


def header(**fields) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


def test_encode_decode_round_trip_keeps_dtype_shape_and_values():
    for dtype in (np.float32, np.float64):
        array = np.random.default_rng(0).random((5, 3)).astype(dtype)
        head, back = decode(encode({"id": 3, "op": "measure"}, array))
        assert head["id"] == 3 and head["shape"] == [5, 3]
        assert back.dtype == dtype and np.array_equal(back, array)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([b"\xff\xfe"], "not UTF-8 JSON"),
        ([b"[1, 2]"], "JSON object"),
        ([header(v=2, id=1, op="hello")], "protocol version"),
        ([header(id=-1, op="hello")], "non-negative integer"),
        ([header(id=1, op="measure", dtype="object", shape=[1, 1]), b"x" * 8], "dtype"),
        ([header(id=1, op="measure", dtype="float32", shape=[2, 3]), b"x" * 10], "needs 24"),
        ([header(id=1, op="measure", dtype="float32", shape=[2]), b"x" * 8], "shape"),
        ([header(id=1), b"", b""], "1 or 2 frames"),
        ([b"{" * 5000], "header of"),
    ],
)
def test_decode_refuses_malformed_messages(frames, message):
    with pytest.raises(ProtocolError, match=message):
        decode(frames)


def test_server_refuses_malformed_oversized_and_mismatched_requests_and_keeps_serving(serve):
    server = serve(numpy_square_law(6, 4), max_bytes=4096)
    good = encode({"id": 99, "op": "measure"}, np.full((2, 6), 0.5, np.float32))
    bad_requests = [
        ([b"not json"], None, "ProtocolError", "JSON"),
        ([header(id=1, op="reboot")], 1, "ProtocolError", "unknown op"),
        ([header(id=2, op="measure")], 2, "ProtocolError", "needs a drive"),
        ([header(id=3, op="measure", dtype="float32", shape=[2, 6]), b"\x00" * 7], 3,
         "ProtocolError", "needs 48"),
        ([header(id=4, op="measure", dtype="int64", shape=[1, 6]), b"\x00" * 48], 4,
         "ProtocolError", "dtype"),
        (encode({"id": 5, "op": "measure"}, np.zeros((300, 6), np.float32)), 5,
         "ProtocolError", "exceeds the limit of 4,096"),
        (encode({"id": 6, "op": "measure"}, np.zeros((2, 5), np.float32)), 6,
         "DriveError", "[batch ≥ 1, 6]"),
        (encode({"id": 7, "op": "measure"}, np.full((2, 6), np.nan, np.float32)), 7,
         "DriveError", "NaN or inf"),
    ]  # fmt: skip
    for frames, rid, kind, message in bad_requests:
        head, data = decode(raw_request(server.address, frames))
        assert (head["ok"], head["id"], head["error"]) == (False, rid, kind)
        assert message in head["message"] and data is None
        head, data = decode(raw_request(server.address, good))  # still serving
        assert head["ok"] and head["id"] == 99 and data.shape == (2, 4)
    assert server.refused == len(bad_requests)
    # only the valid requests drove the system
    assert server.system.queries == server.samples == 2 * len(bad_requests)


def test_server_refuses_out_of_range_drive_when_the_system_says_raise(serve):
    strict = CallableSystem(lambda d: d[:, :2] ** 2, 3, 2, out_of_range="raise")
    server = serve(strict)
    request = encode({"id": 1, "op": "measure"}, np.full((1, 3), 1.5, np.float32))
    head, _ = decode(raw_request(server.address, request))
    assert head["error"] == "DriveError" and "outside" in head["message"]
    client = RemoteSystem(server.address, timeout_s=5)
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
    client = RemoteSystem(server.address, timeout_s=5)
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
        assert sock.poll(5000)
        head, _ = decode(sock.recv_multipart())
        assert head["ok"] and head["n_inputs"] == 2
    finally:
        sock.close()


def test_client_takes_its_shape_and_range_from_the_handshake_and_refuses_locally(serve):
    server = serve(CallableSystem(lambda d: d[:, :2] * 2, 5, 2, drive_range=(-1.0, 1.0)))
    client = RemoteSystem(server.address, timeout_s=5)
    assert (client.n_inputs, client.n_outputs, client.drive_range) == (5, 2, (-1.0, 1.0))
    assert not client.differentiable
    with pytest.raises(DriveError, match=r"\[batch, 5\]"):
        client(torch.rand(2, 4))
    out = client(torch.full((3, 5), 2.0))  # clipped to the declared range, like a local system
    assert torch.allclose(out, torch.full((3, 2), 2.0))
    assert client.queries == 3 and client.server_queries() == 3


def test_large_batches_are_split_to_fit_the_servers_limit(serve):
    server = serve(numpy_square_law(8, 8), max_bytes=64 * 1024)
    client = RemoteSystem(server.address, timeout_s=5)
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
    remeasure = RemoteSystem(server.address, timeout_s=5, nonfinite="remeasure")
    out = remeasure(torch.rand(4, 3))
    assert torch.isfinite(out).all()
    assert remeasure.remeasured == 4 and remeasure.queries == 8  # the wasted batch is counted
    assert remeasure.server_queries() == 8
    bursts["left"] = 1
    strict = RemoteSystem(server.address, timeout_s=5, nonfinite="raise")
    with pytest.raises(NonFiniteMeasurementError, match="NaN/inf in 1 of 4 samples"):
        strict(torch.rand(4, 3))
    bursts["left"] = 10
    with pytest.raises(NonFiniteMeasurementError, match="after 2 re-measurements"):
        remeasure(torch.rand(4, 3))


HELLO = {"ok": True, "n_inputs": 2, "n_outputs": 3, "drive_range": [0.0, 1.0],
         "out_of_range": "clip", "power_w": 0.0, "instance": "x",
         "server_queries": 0, "max_bytes": 1 << 20}  # fmt: skip


class FakeServer:
    """A scripted server: ``respond(header, array) -> list of reply frame lists``."""

    def __init__(self, respond) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.respond, self.stop = respond, threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.stop.is_set():
            if self.sock.poll(20):
                identity, *frames = self.sock.recv_multipart()
                head, array = decode(frames)
                if head["op"] == "hello":
                    replies = [encode({"id": head["id"], **HELLO})]
                else:
                    replies = self.respond(head, array)
                for reply in replies:
                    self.sock.send_multipart([identity, *reply])
        self.sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(respond) -> FakeServer:
        servers.append(FakeServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def ok(head, rows, value=1.0, dtype=np.float32):
    return encode({"id": head["id"], "ok": True}, np.full((rows, 3), value, dtype))


def test_client_refuses_malformed_and_mismatched_replies(fake):
    garbage = fake(lambda head, a: [[b"\x00garbage"]])
    with pytest.raises(RemoteProtocolError, match=r"malformed reply.*JSON"):
        RemoteSystem(garbage.address, timeout_s=5)(torch.rand(1, 2))
    shape = fake(lambda head, a: [encode({"id": head["id"], "ok": True}, np.ones((1, 5)))])
    with pytest.raises(RemoteProtocolError, match=r"shape \[1, 5\], expected \[1, 3\]"):
        RemoteSystem(shape.address, timeout_s=5)(torch.rand(1, 2))
    big = fake(lambda head, a: [ok(head, 4000)])
    client = RemoteSystem(big.address, timeout_s=5, max_bytes=8192)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 8,192"):
        client(torch.rand(1, 2))


def test_client_drops_stale_replies_and_matches_ids(fake):
    server = fake(lambda head, a: [ok({"id": head["id"] + 1000}, len(a), 7.0),
                                   ok(head, len(a), 2.0)])  # fmt: skip
    out = RemoteSystem(server.address, timeout_s=5)(torch.rand(2, 2))
    assert torch.equal(out, torch.full((2, 3), 2.0))


def test_nan_in_a_reply_follows_the_policy(fake):
    sent = {"n": 0}

    def respond(head, a):
        sent["n"] += 1
        return [ok(head, len(a), np.nan if sent["n"] == 1 else 3.0)]

    client = RemoteSystem(fake(respond).address, timeout_s=5)
    assert torch.equal(client(torch.rand(2, 2)), torch.full((2, 3), 3.0))
    assert client.remeasured == 2
    always_nan = fake(lambda head, a: [ok(head, len(a), np.inf)])
    with pytest.raises(NonFiniteMeasurementError, match="policy: raise"):
        RemoteSystem(always_nan.address, timeout_s=5, nonfinite="raise")(torch.rand(2, 2))


def test_silence_ends_in_a_clear_timeout_after_bounded_retries(fake):
    server = fake(lambda head, a: [])  # greets, then never answers a measurement
    client = RemoteSystem(server.address, timeout_s=0.2, retries=2)
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
    with pytest.raises(ValueError, match="has no class or function"):
        load_system("phyll.systems:Nope", {})
    with pytest.raises(ValueError, match="not a phyll PhysicalSystem"):
        load_system("numpy:zeros", {"shape": 3})
    with pytest.raises(ValueError, match="cannot build"):
        load_system("acoustic", {"n_inputs": 3})


def test_server_and_registry_misuse_are_clear_errors(serve):
    server = serve(numpy_square_law(2, 2))
    with pytest.raises(ValueError, match="cannot listen on"):
        DeviceServer(numpy_square_law(2, 2), server.address)
    with pytest.raises(ValueError, match="needs --system-param address"):
        make_system("remote", 2, 2)
    with pytest.raises(ValueError, match="unknown remote system parameter"):
        make_system("remote", 2, 2, address=server.address, timeout=3)
    with pytest.raises(ValueError, match="needs ≥ 3 and exactly 2"):
        make_system("remote", 3, 2, address=server.address)
    assert make_system("remote", 1, 2, address=server.address).n_inputs == 2

"""phyll serve bounds the bytes it queues: per client and in total, whatever clients send ahead;
refusals keep each client's replies in request order; a client that never reads its replies
does not make the server hold them."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from phyll.errors import ConfigError
from phyll.remote import DeviceServer
from phyll.remote.protocol import MIN_MAX_BYTES, decode_reply, encode
from phyll.systems import CallableSystem
from tests.test_remote_protocol import PATIENCE_S, serve  # noqa: F401 (fixture)

N_INPUTS = 4096  # one request of 8 rows: 128 KiB + header, two of them fill a client's share


def slow_square(drive):
    time.sleep(0.05)  # a device that takes its time: requests pile up behind it
    return drive[:, :3] ** 2


def measure_frames(rid: int, rows: int = 3) -> list[bytes]:
    drive = np.full((rows, N_INPUTS), 0.5, dtype=np.float32)
    return encode({"op": "measure", "id": rid}, drive)


def dealer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    return sock


def replies(sock: zmq.Socket, n: int) -> list[dict]:
    heads = []
    for _ in range(n):
        assert sock.poll(int(PATIENCE_S * 1000)), "the server stopped answering"
        heads.append(decode_reply(sock.recv_multipart(), 2**24)[0])
    return heads


@pytest.fixture
def server(serve):  # noqa: F811
    system = CallableSystem(slow_square, N_INPUTS, 3)
    return serve(system, max_bytes=MIN_MAX_BYTES * 2)  # 128 KiB: 256 KiB per client, 1 MiB all


def test_a_client_sending_ahead_is_refused_past_its_share_in_order(server):
    sock = dealer(server.address)
    try:
        for rid in range(40):
            sock.send_multipart(measure_frames(rid))
        heads = replies(sock, 40)
    finally:
        sock.close()
    assert [h["id"] for h in heads] == list(range(40))  # every request answered, in order
    refused = [h for h in heads if not h["ok"]]
    assert refused and all("queue is full" in h["message"] for h in refused)
    assert heads[0]["ok"] and sum(h["ok"] for h in heads) >= 2
    assert server.peak_queued_bytes <= server.max_queued_per_client


def test_many_clients_together_stay_under_the_total(server):
    socks = [dealer(server.address) for _ in range(8)]
    try:
        for rid in range(10):
            for sock in socks:
                sock.send_multipart(measure_frames(rid))
        answered = [replies(sock, 10) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert all([h["id"] for h in heads] == list(range(10)) for heads in answered)
    assert server.peak_queued_bytes <= server.max_queued_total
    assert any("for all clients" in h.get("message", "") for hs in answered for h in hs)


def test_a_client_that_never_reads_costs_no_memory_and_others_are_served(server):
    mute = dealer(server.address)
    mute.setsockopt(zmq.RCVHWM, 1)
    mute.setsockopt(zmq.RCVBUF, 4096)
    try:
        for rid in range(200):
            mute.send_multipart(measure_frames(rid, rows=1))
        time.sleep(1)
        other = dealer(server.address)
        try:
            other.send_multipart(measure_frames(7))
            (head,) = replies(other, 1)
        finally:
            other.close()
    finally:
        mute.close()
    assert head["ok"] and head["id"] == 7
    assert server.peak_queued_bytes <= server.max_queued_total


@pytest.mark.parametrize("value", [0, 1000, -1, True, 2.5])
def test_queue_limits_are_checked(value):
    system = CallableSystem(slow_square, N_INPUTS, 3)
    with pytest.raises(ConfigError, match="max_queued_total"):
        DeviceServer(system, "tcp://127.0.0.1:*", max_queued_total=value, log=lambda s: None)


def test_the_serve_command_takes_the_total(tmp_path):
    from phyll.cli import build_parser

    args = build_parser().parse_args(["serve", "optical", "--max-queued-bytes", "1000000"])
    assert args.max_queued_bytes == 1_000_000
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "optical", "--max-queued-bytes", "10"])

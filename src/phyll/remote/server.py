"""Serve one physical system over TCP (ZeroMQ ROUTER socket): what ``phyll serve`` runs.

The server drives its system one request at a time (a device measures one batch at a time),
in request order. Every request is answered: a measurement, or a refusal naming what was wrong
(:mod:`phyll.remote.protocol`, whose limits are checked before anything is parsed deeply or
allocated). A refused or failed request never stops the server. Only a message over 4× the
message limit goes unanswered: ZeroMQ drops it (and the connection) unread.

Memory is bounded whatever clients send: ZeroMQ holds at most :data:`SOCKET_HWM` messages per
client and direction, and the server's own queue at most ``max_queued_per_client`` bytes for
one client (default 2 messages of the limit) and ``max_queued_total`` bytes for all of them
(default 8). A request that breaks the wire format is refused as it arrives (its bytes are not
kept); a well-formed one beyond either limit is refused with a ``ProtocolError``. A refusal
waits in the queue only behind the same client's earlier requests, so that each client gets
its replies in order; in the one case where even that refusal would take the client over its
limit (a flood behind a slow measurement), the request goes unanswered, like one ZeroMQ drops.
Replies are not hoarded either: one to a client that does not read them is dropped once no room
is left towards it (:data:`SEND_WAIT_MS`).

Accounting: the server's own counter (:attr:`DeviceServer.samples`, and the served system's
``queries``) counts every sample the device was driven with, *including* requests whose reply
the client never received (it timed out and retried) and requests of every connected client.
The client-side :class:`~phyll.remote.client.RemoteSystem` counts the samples it obtained
measurements for plus its NaN/inf re-measurements, which is what a run's cost reports use. The
difference is the physical work lost to faults.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import zmq

from phyll.errors import ConfigError
from phyll.remote.protocol import (
    DEFAULT_MAX_BYTES,
    MIN_MAX_BYTES,
    ProtocolError,
    best_effort_id,
    check_greeting,
    check_max_bytes,
    decode_reply,
    decode_request,
    encode,
    error_reply,
)
from phyll.systems import build_system, find_factory
from phyll.systems.base import DriveError, NonFiniteMeasurementError, PhysicalSystem

#: requests queued for one client (in messages of the limit): a client may send ahead
QUEUED_PER_CLIENT = 2
#: requests queued for all clients together (in messages of the limit)
QUEUED_TOTAL = 8
#: messages ZeroMQ itself holds per client and direction before it stops reading (or, for
#: replies, before :data:`SEND_WAIT_MS` runs out and the reply is dropped)
SOCKET_HWM = 16
#: how long a reply waits for room towards its client; a client that does not read its
#: replies then has them dropped at once until it reads again (its replies are never held)
SEND_WAIT_MS = 200
#: most requests taken into the queue per turn, so that a flood cannot starve the answers
RECEIVE_BATCH = 1000


@dataclass(frozen=True)
class Queued:
    """A request waiting in the server's queue: the client's identity and envelope, the
    request's frames, or its refusal when it was refused on arrival, and its bytes."""

    identity: bytes
    envelope: list[bytes]
    frames: list[bytes]
    reply: list[bytes] | None
    size: int


def load_system(target: str, params: dict[str, Any]) -> PhysicalSystem:
    """Build the system to serve from a registered name or ``MODULE:NAME`` (a class or a
    factory), as every system is built (:mod:`phyll.systems.contract`): ``n_inputs``,
    ``n_outputs``, ``seed`` and the other parameters come from ``params`` (``--param``); a
    name it does not take is refused, one it needs and lacks is named."""
    return build_system(find_factory(target), target, params=params)


class DeviceServer:
    """Answers ``hello`` and ``measure`` requests for ``system`` on ``address``.

    Args:
        system: the physical system to expose.
        address: ZeroMQ endpoint to bind, e.g. ``tcp://127.0.0.1:5555`` (``:*`` = a free port;
            :attr:`address` then holds the one bound).
        max_bytes: largest accepted request (and reply) in bytes, 64 KiB..2 GiB; larger
            requests are refused with an error reply. ZeroMQ itself drops messages over 4× this
            without reading them.
        log: where one-line events (refusals, start, stop) go.

    Raises:
        ValueError: ``max_bytes`` is out of range, the address cannot be bound, or the system's
            greeting (its ``describe()`` included) would break the wire format's limits, so
            that no client could accept it.
    """

    def __init__(
        self,
        system: PhysicalSystem,
        address: str = "tcp://127.0.0.1:5555",
        max_bytes: int = DEFAULT_MAX_BYTES,
        log: Callable[[str], None] | None = None,
        *,
        max_queued_per_client: int | None = None,
        max_queued_total: int | None = None,
    ) -> None:
        self.system = system
        self.max_bytes = check_max_bytes(max_bytes)
        self.max_queued_per_client = queue_limit(
            max_queued_per_client, QUEUED_PER_CLIENT * self.max_bytes, "max_queued_per_client"
        )
        self.max_queued_total = queue_limit(
            max_queued_total, QUEUED_TOTAL * self.max_bytes, "max_queued_total"
        )
        self.log = log or (lambda line: print(f"phyll serve: {line}", file=sys.stderr, flush=True))
        self.instance = secrets.token_hex(8)  # changes when the server restarts
        self.requests = self.samples = self.refused = 0
        #: what is received and not yet answered, oldest first
        self._queue: deque[Queued] = deque()
        self._queued: dict[bytes, int] = {}  # bytes queued per client
        self.unanswered = 0  # refusals that could not be queued (see the module docstring)
        self.queued_bytes = self.peak_queued_bytes = 0
        self._check_greeting()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_bytes + 65536)
        # ZeroMQ's own queues hold a few messages per client; the server's queue holds the
        # rest, counted in bytes (below): memory stays bounded however much clients send
        self._socket.setsockopt(zmq.RCVHWM, SOCKET_HWM)
        self._socket.setsockopt(zmq.SNDHWM, SOCKET_HWM)
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full pipe is told, not silent
        self._socket.setsockopt(zmq.SNDTIMEO, SEND_WAIT_MS)
        self._stalled: set[bytes] = set()  # clients whose last reply found no room
        try:
            self._socket.bind(address)
        except zmq.ZMQError as exc:
            self.close()
            raise ConfigError(f"cannot listen on {address}: {exc}") from None
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def info(self) -> dict[str, Any]:
        """The ``hello`` reply: what a client needs to act as the system."""
        s = self.system
        return {
            "n_inputs": s.n_inputs,
            "n_outputs": s.n_outputs,
            "drive_range": list(s.drive_range),
            "out_of_range": s.out_of_range,
            "power_w": s.power_w,
            "measurement_time_s": s.measurement_time_s,
            "describe": s.describe(),
            "server_queries": s.queries,
            "max_bytes": self.max_bytes,
            "instance": self.instance,
        }

    def _check_greeting(self) -> None:
        """Refuse to serve a system whose greeting its clients would refuse."""
        try:
            head, _ = decode_reply(encode({"id": 0, "ok": True, **self.info()}), self.max_bytes)
            check_greeting(head)
        except ValueError as exc:  # a ProtocolError, or NaN/inf in describe()
            raise ConfigError(
                f"cannot serve {type(self.system).__name__}: its greeting breaks the wire "
                f"format ({exc}); make describe() small plain data"
            ) from None

    # ------------------------------------------------------------------ one request
    def handle(self, frames: list[bytes]) -> list[bytes]:
        """The reply frames for one request's frames (never raises).

        A request that breaks the wire format is refused before the system sees it; a reply
        the server cannot build (a failing driver, a describe() grown too big) is a refusal of
        kind ``SystemError``.
        """
        self.requests += 1
        try:
            header, array = decode_request(frames, self.max_bytes)
        except ProtocolError as exc:
            return self._refuse(best_effort_id(frames), "ProtocolError", str(exc))
        rid = header.get("id")
        try:
            if header["op"] == "hello":
                return self._hello(rid, array)
            return self._measure(rid, array)
        except Exception as exc:  # a user's driver may fail in any way; keep serving
            return self._refuse(rid, "SystemError", f"{type(exc).__name__}: {exc}")

    def _hello(self, rid: int | None, array: np.ndarray | None) -> list[bytes]:
        if array is not None:
            return self._refuse(rid, "ProtocolError", "hello takes no array frame")
        return encode({"id": rid, "ok": True, **self.info()})

    def _measure(self, rid: int | None, drive: np.ndarray | None) -> list[bytes]:
        system = self.system
        if drive is None:
            return self._refuse(rid, "ProtocolError", "measure needs a drive array frame")
        if drive.shape[1] != system.n_inputs or drive.shape[0] == 0:
            return self._refuse(
                rid,
                "DriveError",
                f"drive shape {list(drive.shape)}; this system takes [batch ≥ 1, "
                f"{system.n_inputs}]",
            )
        reply_bytes = drive.shape[0] * system.n_outputs * 4
        if reply_bytes > self.max_bytes - 1024:
            return self._refuse(
                rid,
                "ProtocolError",
                f"the measurement would need {reply_bytes:,} bytes, over the limit of "
                f"{self.max_bytes:,} bytes: send smaller batches",
            )
        try:
            out = system(torch.from_numpy(drive))
        except DriveError as exc:
            return self._refuse(rid, "DriveError", str(exc))
        except NonFiniteMeasurementError as exc:
            self.samples += drive.shape[0]
            return self._refuse(rid, "NonFiniteMeasurement", str(exc))
        self.samples += drive.shape[0]
        measurement = out.detach().cpu().numpy().astype(np.float32)
        reply = {"id": rid, "ok": True, "instance": self.instance, "server_queries": system.queries}
        return encode(reply, measurement)

    def _refuse(self, rid: int | None, kind: str, message: str) -> list[bytes]:
        self.refused += 1
        self.log(f"refused request {rid}: {kind}: {message}")
        return error_reply(rid, kind, message)

    # ------------------------------------------------------------------ loop
    def serve(self, should_stop: Callable[[], bool] = lambda: False, poll_ms: int = 100) -> None:
        """Answer requests until ``should_stop()`` (checked every ``poll_ms``) returns True.

        Every turn first takes what has arrived into the server's queue (module docstring:
        its limits), then sends the refusals at its head and answers its oldest request. A
        client that floods the server gets refusals, not memory.
        """
        sock = self._socket
        started = time.monotonic()
        try:
            while not should_stop():
                if sock.poll(0 if self._queue else poll_ms, zmq.POLLIN):
                    self._receive()
                while self._queue:
                    item = self._queue.popleft()
                    self._forget(item.identity, item.size)
                    reply = item.reply if item.reply is not None else self.handle(item.frames)
                    self._send(item.identity, [*item.envelope, *reply])
                    if item.reply is None:
                        break  # one measurement per turn: new arrivals are taken in between
        finally:
            self.log(
                f"stopped after {time.monotonic() - started:.1f} s: {self.requests} requests, "
                f"{self.samples} samples, {self.refused} refused"
            )
            self.close()

    def _receive(self) -> None:
        """Take the requests that have arrived (at most :data:`RECEIVE_BATCH`) into the queue:
        a well-formed one within the limits as it is, any other as its refusal."""
        for _ in range(RECEIVE_BATCH):
            try:
                identity, *body = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            envelope: list[bytes] = []
            if body and body[0] == b"":  # a REQ client: keep its delimiter
                envelope, body = [b""], body[1:]
            item = Queued(identity, envelope, body, None, sum(len(frame) for frame in body))
            try:
                decode_request(body, self.max_bytes)
            except ProtocolError:
                item = self._refused(item, self.handle(body))
            else:
                over = self._over_limit(identity, item.size)
                if over:
                    self.requests += 1
                    message = (
                        f"the server's queue is full ({item.size:,} more bytes would exceed "
                        f"{over}): wait for the replies before sending more"
                    )
                    item = self._refused(
                        item, self._refuse(best_effort_id(body), "ProtocolError", message)
                    )
            if item is None:
                continue
            if not self._queued.get(identity) and item.reply is not None:
                self._send(identity, [*envelope, *item.reply])  # nothing queued before it
                continue
            self._queue.append(item)
            self._queued[identity] = self._queued.get(identity, 0) + item.size
            self.queued_bytes += item.size
            self.peak_queued_bytes = max(self.peak_queued_bytes, self.queued_bytes)

    def _over_limit(self, identity: bytes, size: int) -> str:
        """Which limit ``size`` more bytes from ``identity`` would exceed ("" if none)."""
        if self._queued.get(identity, 0) + size > self.max_queued_per_client:
            return f"{self.max_queued_per_client:,} bytes per client"
        if self.queued_bytes + size > self.max_queued_total:
            return f"{self.max_queued_total:,} bytes for all clients"
        return ""

    def _refused(self, item: Queued, reply: list[bytes]) -> Queued | None:
        """``item`` answered by ``reply`` (its request's bytes dropped), or None when the
        client has requests queued and even the refusal would take it over a limit."""
        size = sum(len(frame) for frame in reply)
        if self._queued.get(item.identity) and self._over_limit(item.identity, size):
            self.unanswered += 1
            return None
        return Queued(item.identity, item.envelope, [], reply, size)

    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        """Send a reply; drop it (counted in :attr:`unanswered`) when its client has gone or
        does not read its replies (no room within :data:`SEND_WAIT_MS`)."""
        flags = zmq.NOBLOCK if identity in self._stalled else 0
        try:
            self._socket.send_multipart([identity, *frames], flags)
        except zmq.Again:
            if len(self._stalled) > 100_000:
                self._stalled.clear()  # bounded: a flood of connections that never read
            self._stalled.add(identity)
            self.unanswered += 1
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.unanswered += 1  # the client disconnected before its reply
            return
        self._stalled.discard(identity)

    def _forget(self, identity: bytes, size: int) -> None:
        """An entry leaves the queue: its bytes no longer count."""
        self.queued_bytes -= size
        left = self._queued.get(identity, 0) - size
        if left > 0:
            self._queued[identity] = left
        else:
            self._queued.pop(identity, None)

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()


def queue_limit(value: int | None, default: int, name: str) -> int:
    """A limit of queued bytes: ``value`` (at least one message of 64 KiB), else ``default``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_MAX_BYTES:
        raise ConfigError(f"{name} must be an integer >= {MIN_MAX_BYTES:,} bytes, got {value!r}")
    return value

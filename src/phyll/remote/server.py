"""Serve one physical system over TCP (ZeroMQ ROUTER socket): what ``phyll serve`` runs.

The server drives its system one request at a time (a device measures one batch at a time),
in request order. Every request is answered: a measurement, or a refusal naming what was wrong
(:mod:`phyll.remote.protocol`, whose limits are checked before anything is parsed deeply or
allocated). A refused or failed request never stops the server. Only a message over 4× the
message limit goes unanswered: ZeroMQ drops it (and the connection) unread.

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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import zmq

from phyll.errors import ConfigError
from phyll.remote.protocol import (
    DEFAULT_MAX_BYTES,
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
    ) -> None:
        self.system = system
        self.max_bytes = check_max_bytes(max_bytes)
        self.log = log or (lambda line: print(f"phyll serve: {line}", file=sys.stderr, flush=True))
        self.instance = secrets.token_hex(8)  # changes when the server restarts
        self.requests = self.samples = self.refused = 0
        self._check_greeting()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_bytes + 65536)
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
        """Answer requests until ``should_stop()`` (checked every ``poll_ms``) returns True."""
        sock = self._socket
        started = time.monotonic()
        try:
            while not should_stop():
                if not sock.poll(poll_ms, zmq.POLLIN):
                    continue
                identity, *body = sock.recv_multipart()
                envelope: list[bytes] = []
                if body and body[0] == b"":  # a REQ client: keep its delimiter
                    envelope, body = [b""], body[1:]
                sock.send_multipart([identity, *envelope, *self.handle(body)])
        finally:
            self.log(
                f"stopped after {time.monotonic() - started:.1f} s: {self.requests} requests, "
                f"{self.samples} samples driven, {self.refused} refused"
            )
            self.close()

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()

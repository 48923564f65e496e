"""A physical system on another machine, driven over TCP: ``RemoteSystem("tcp://host:port")``.

It is a :class:`~phyll.systems.base.PhysicalSystem` like any other: its channel counts, drive
range, out-of-range policy, power, declared measurement time and calibration drives come from
the server's ``hello`` reply, so a served device's device time, energy and setup queries are
those it has in-process; a device that declares no measurement time is timed by its measured
round trips. The base class validates drives and measurements as for a local system. Never
differentiable.

Faults it survives (lazy-pirate pattern on a DEALER socket):

* **no reply** within ``timeout_s``: the socket is closed (dropping queued messages), a new one
  connects, the server is greeted again and the request resent, at most ``retries`` times; then
  :class:`RemoteTimeoutError` says where nothing answered. Replies to abandoned requests are
  recognised by their id and dropped.
* **server restart**: noticed by the instance token every reply carries; the client continues
  only if the restarted server is the same device: its whole greeting, ``describe()`` included,
  must equal the one this client first adopted (see :func:`identity`), else a one-line
  :class:`RemoteSystemError` names what differs (``seed: 0 → 1``). Checkpoints carry that
  identity too, so resuming a run against a different device is refused the same way.
* **refusals** (malformed request, drive of the wrong shape or out of range) raise a
  :class:`~phyll.systems.base.DriveError` or :class:`RemoteProtocolError` with the server's
  message; a malformed, oversized or out-of-bounds *reply* (see :mod:`phyll.remote.protocol`)
  is refused here the same way, before anything is allocated for it.
* **NaN/inf measurements** (``nonfinite`` policy): ``"remeasure"`` drives the batch again up to
  ``remeasure_attempts`` times (each wasted batch counts as physical queries), ``"raise"``
  reports at once; either way a persistent fault ends in a
  :class:`~phyll.systems.base.NonFiniteMeasurementError`.

Accounting: :attr:`queries` counts the samples whose measurement this client received plus the
NaN/inf batches it re-measured; the server counts every sample it drove (see
:mod:`phyll.remote.server`), which :meth:`server_queries` reports.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import zmq
from torch import Tensor

from phyll.accounting import physical_call
from phyll.errors import ConfigError, printable
from phyll.params import as_plain, check, param
from phyll.remote.protocol import (
    DEFAULT_MAX_BYTES,
    ProtocolError,
    check_greeting,
    check_max_bytes,
    decode_reply,
    encode,
    one_line,
    shorten,
)
from phyll.systems.base import (
    DriveError,
    NonFiniteMeasurementError,
    PhysicalSystem,
    PhysicalSystemError,
)

log = logging.getLogger("phyll.remote")

NonFinitePolicy = Literal["remeasure", "raise"]
#: greeting fields that change while the device stays the same: not part of its identity
VOLATILE = ("v", "id", "ok", "server_queries", "max_bytes", "instance")
#: longest accepted ``timeout_s`` (one day)
MAX_TIMEOUT_S = 86400.0


class RemoteSystemError(PhysicalSystemError):
    """The remote system could not be reached or failed."""


class RemoteTimeoutError(RemoteSystemError):
    """No reply after every retry."""


class RemoteProtocolError(RemoteSystemError):
    """A message broke the wire format (either side's refusal)."""


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys: ``{"inner": {"seed": 0}}`` → ``{"inner.seed": 0}``
    (the keys a difference is reported by)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def identity(greeting: dict[str, Any]) -> dict[str, Any]:
    """What makes a served device itself: its ``describe()`` (flattened) and the greeting's
    channels, range, policy and energy; not the :data:`VOLATILE` fields.

    State that :meth:`~phyll.systems.base.PhysicalSystem.perturb` moves (an acoustic cavity's
    ``temperature_c``) is part of it: a server restarted in another physical state is another
    device for the trained weights. It is compared only across a restart (a new instance token),
    against the greeting first adopted, so a server whose system drifts while it runs is fine.
    """
    fields = {k: v for k, v in greeting.items() if k not in (*VOLATILE, "describe")}
    return {**flatten(greeting.get("describe", {})), **fields}


def identity_changes(was: dict[str, Any], now: dict[str, Any], shown: int = 6) -> str:
    """``"seed: 0 → 1, t60_s: 0.6 → 0.5"``: the first ``shown`` differences ("" if none)."""
    keys = [*was, *(k for k in now if k not in was)]
    changed = [k for k in keys if k not in was or k not in now or was[k] != now[k]]

    def show(data: dict[str, Any], key: str) -> str:
        return shorten(data[key], 40) if key in data else "(absent)"

    parts = [f"{k}: {show(was, k)} → {show(now, k)}" for k in changed[:shown]]
    if len(changed) > shown:
        parts.append(f"and {len(changed) - shown} more")
    return ", ".join(parts)


def check_timeout(value: Any) -> float:
    """``value`` in seconds if finite, positive and at most :data:`MAX_TIMEOUT_S`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT_S  # False for NaN too
    ):
        raise ConfigError(
            f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {shorten(value)}"
        )
    return float(value)


def served_calibration(greeting: dict[str, Any], address: str) -> int:
    """The calibration drives the served device declares (its ``describe()``), checked."""
    value = greeting.get("describe", {}).get("calibration_queries", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise RemoteProtocolError(
            f"malformed reply from {address}: calibration_queries must be a non-negative "
            f"integer, got {shorten(value)}"
        )
    return value


def check_count(name: str, value: Any) -> int:
    """``value`` if it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {shorten(value)}")
    return value


class RemoteSystem(PhysicalSystem):
    """Client of a ``phyll serve`` server (see module docstring).

    Args:
        address: the server's endpoint, e.g. ``"tcp://lab-pc:5555"``.
        timeout_s: seconds to wait for each reply (finite, in (0, 86400]).
        retries: resend attempts after a timeout (with a fresh connection each).
        nonfinite: ``"remeasure"`` or ``"raise"`` for NaN/inf measurements.
        remeasure_attempts: re-measurements of a NaN/inf batch before giving up.
        max_bytes: largest message sent or accepted, 64 KiB..2 GiB; larger batches are split
            to fit both this and the server's limit.
        device: torch device of the returned measurements.

    Raises:
        ValueError: an argument is out of range or the address is not ``tcp://HOST:PORT``.
        RemoteSystemError: the server cannot be reached, refuses, or its greeting breaks the
            wire format (:class:`RemoteProtocolError`).
    """

    differentiable = False

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        nonfinite: NonFinitePolicy = "remeasure",
        remeasure_attempts: int = 2,
        max_bytes: int = DEFAULT_MAX_BYTES,
        device: str | torch.device = "cpu",
    ) -> None:
        if nonfinite not in ("remeasure", "raise"):
            raise ConfigError(f"nonfinite must be 'remeasure' or 'raise', got {nonfinite!r}")
        self.address = address
        self.timeout_s = check_timeout(timeout_s)
        self.retries = check_count("retries", retries)
        self.nonfinite: NonFinitePolicy = nonfinite
        self.remeasure_attempts = check_count("remeasure_attempts", remeasure_attempts)
        self.max_bytes = check_max_bytes(max_bytes)
        self.timeouts = self.reconnects = self.server_restarts = self.remeasured = 0
        self._ids = itertools.count()
        self._context = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self.server_info: dict[str, Any] = {}
        self._identity: dict[str, Any] = {}  # of the first greeting: what restarts must match
        info = self._hello()
        super().__init__(
            info["n_inputs"],
            info["n_outputs"],
            tuple(info["drive_range"]),
            info["out_of_range"],
            power_w=info["power_w"],
            measurement_time_s=info.get("measurement_time_s"),  # None: measured round trips
            device=device,
        )
        self.calibration_queries = served_calibration(info, address)

    # ------------------------------------------------------------------ transport
    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            self._socket = self._context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_bytes + 65536)
            try:
                self._socket.connect(self.address)
            except zmq.ZMQError as exc:
                self._drop_connection()
                raise ConfigError(
                    f"cannot connect to {self.address!r} ({exc}); expected tcp://HOST:PORT"
                ) from None
        return self._socket

    def _drop_connection(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _exchange(self, header: dict[str, Any], array: np.ndarray | None) -> tuple[dict, Any]:
        """Send once and wait ``timeout_s`` for the reply with our id (``({}, None)`` if none)."""
        rid = next(self._ids)
        frames = encode({**header, "id": rid}, array)
        sock = self._connect()
        sock.send_multipart(frames, copy=False)
        deadline = time.monotonic() + self.timeout_s
        while True:
            # past the deadline, one last look without waiting: this process may itself have
            # been descheduled (a loaded machine) while the reply arrived in time
            remaining = deadline - time.monotonic()
            if not sock.poll(max(0, math.ceil(remaining * 1000)), zmq.POLLIN):
                return {}, None
            try:
                head, data = decode_reply(sock.recv_multipart(), self.max_bytes)
            except ProtocolError as exc:
                raise RemoteProtocolError(f"malformed reply from {self.address}: {exc}") from None
            if head.get("id") == rid:
                return head, data
            log.debug("dropped a stale reply (id %s, waiting for %s)", head.get("id"), rid)
            if remaining <= 0:
                return {}, None

    def _request(self, header: dict[str, Any], array: np.ndarray | None = None) -> tuple[dict, Any]:
        """Send with retries; reconnect (and greet the server again) after each timeout."""
        attempts = 1 + self.retries
        for attempt in range(attempts):
            if attempt > 0:
                self._drop_connection()
                self.reconnects += 1
                if header["op"] != "hello" and not self._greet_again():
                    continue
            head, data = self._exchange(header, array)
            if head:
                return head, data
            self.timeouts += 1
            log.warning(
                "no reply from %s within %.1f s (attempt %d/%d)%s",
                self.address,
                self.timeout_s,
                attempt + 1,
                attempts,
                "; reconnecting" if attempt + 1 < attempts else "",
            )
        self._drop_connection()
        raise RemoteTimeoutError(
            f"no reply from {self.address} after {attempts} attempts of {self.timeout_s:g} s: "
            "is `phyll serve` running there and reachable?"
        )

    def _hello(self) -> dict[str, Any]:
        head, _ = self._request({"op": "hello"})
        return self._adopt_greeting(head)

    def _greet_again(self) -> bool:
        """After a reconnect: True once the (possibly restarted) server has answered hello."""
        head, _ = self._exchange({"op": "hello"}, None)
        if not head:
            self.timeouts += 1
            log.warning("no reply from %s within %.1f s; retrying", self.address, self.timeout_s)
            return False
        self._adopt_greeting(head)
        return True

    def _adopt_greeting(self, head: dict[str, Any]) -> dict[str, Any]:
        """Check a hello reply; refuse a restarted server that is not the same device."""
        self._check_reply(head)
        try:
            check_greeting(head)
        except ProtocolError as exc:
            raise RemoteProtocolError(f"malformed reply from {self.address}: {exc}") from None
        if not self._identity:
            self._identity = identity(head)
        elif head["instance"] != self.server_info["instance"]:
            self._check_identity(head, "restarted as a different device")
            self.server_restarts += 1
            log.warning("%s restarted (same device); continuing", self.address)
        self.server_info = head
        return head

    def _check_identity(self, head: dict[str, Any], what: str) -> None:
        changes = identity_changes(self._identity, identity(head))
        if changes:
            raise RemoteSystemError(
                f"the server at {self.address} {what} ({changes}); serve the original device "
                "again (same class and parameters), or start a new run"
            )

    def _check_reply(self, head: dict[str, Any]) -> None:
        if head.get("ok") is True:
            return
        kind = head.get("error")
        message = printable(one_line(head.get("message", "(no message)")))
        if kind == "DriveError":
            raise DriveError(f"{self.address} refused the drive: {message}")
        if kind == "NonFiniteMeasurement":
            raise NonFiniteMeasurementError(f"{self.address}: {message}")
        if kind == "ProtocolError":
            raise RemoteProtocolError(f"{self.address} refused the request: {message}")
        raise RemoteSystemError(f"{self.address} failed: {kind}: {message}")

    # ------------------------------------------------------------------ physics
    def _measure(self, drive: Tensor) -> Tensor:
        array = drive.detach().cpu().numpy()
        limit = min(self.max_bytes, int(self.server_info.get("max_bytes", self.max_bytes)))
        row_bytes = 4 * max(self.n_inputs, self.n_outputs) * (2 if array.dtype == np.float64 else 1)
        rows = (limit - 8192) // row_bytes
        if rows < 1:
            raise RemoteProtocolError(
                f"one sample ({row_bytes:,} bytes) does not fit the message limit of "
                f"{limit:,} bytes: raise max_bytes here and --max-bytes on the server"
            )
        parts = [self._measure_chunk(array[i : i + rows]) for i in range(0, len(array), rows)]
        return torch.from_numpy(np.concatenate(parts)).to(self.device)

    def _measure_chunk(self, drive: np.ndarray) -> np.ndarray:
        attempts = 1 + (self.remeasure_attempts if self.nonfinite == "remeasure" else 0)
        problem = ""
        for attempt in range(attempts):
            head, data = self._request({"op": "measure"}, drive)
            try:
                self._check_reply(head)
                if (
                    head.get("instance", self.server_info["instance"])
                    != self.server_info["instance"]
                ):
                    self._hello()  # ZeroMQ reconnected to a restarted server: same system?
                if data is None or data.shape != (len(drive), self.n_outputs):
                    shape = None if data is None else list(data.shape)
                    raise RemoteProtocolError(
                        f"{self.address} replied with measurement shape {shape}, expected "
                        f"[{len(drive)}, {self.n_outputs}]"
                    )
                if np.isfinite(data).all():
                    return data
                rows = int((~np.isfinite(data)).any(axis=1).sum())
                problem = f"{self.address} returned NaN/inf in {rows} of {len(drive)} samples"
            except NonFiniteMeasurementError as exc:
                problem = str(exc)
            if attempt + 1 < attempts:  # the wasted batch was physical work: count it
                with physical_call(
                    len(drive), self.power_w, functools.partial(self.device_time, len(drive))
                ):
                    self._queries += len(drive)
                self.remeasured += len(drive)
                log.warning("%s; re-measuring (%d/%d)", problem, attempt + 1, attempts - 1)
        policy = (
            f"after {self.remeasure_attempts} re-measurements"
            if self.nonfinite == "remeasure"
            else "(policy: raise)"
        )
        raise NonFiniteMeasurementError(f"{problem} {policy}")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The counter and the device's identity (a resumed run checks it is the same device)."""
        return {**super().state_dict(), "identity": self._identity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("identity"):
            self._identity = state["identity"]
            self._check_identity(self.server_info, "is not the device this run was trained on")
        super().load_state_dict(state)

    # ------------------------------------------------------------------ reports
    @property
    def device_key(self) -> Hashable:
        """The served device (its address and server instance): blocks that share it count
        its calibration once."""
        return ("remote", self.address, self.server_info.get("instance"))

    def server_queries(self) -> int:
        """The server's own count of samples driven (all clients, lost replies included)."""
        return int(self._hello()["server_queries"])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "address": self.address,
            "nonfinite": self.nonfinite,
            "served": self.server_info.get("describe", {}),
        }

    def close(self) -> None:
        """Close the connection (it reopens on the next call)."""
        self._drop_connection()

    def __del__(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self._drop_connection()


@dataclass(frozen=True)
class RemoteParams:
    """Parameters of the registry's remote system (``--system remote``)."""

    address: str = param(
        "", "the server's endpoint, tcp://HOST:PORT (required); or one per block, comma-separated"
    )
    timeout_s: float = param(10.0, "seconds to wait for each reply", "s")
    retries: int = param(3, "resend attempts after a timeout, each on a fresh connection")
    nonfinite: NonFinitePolicy = param("remeasure", "NaN/inf measurements: remeasure or raise")
    remeasure_attempts: int = param(2, "re-measurements of a NaN/inf batch before giving up")
    max_bytes: int = param(DEFAULT_MAX_BYTES, "largest message sent or accepted", "bytes")

    def __post_init__(self) -> None:
        check(
            bool(self.address),
            "the remote system needs --system-param address=tcp://HOST:PORT",
        )


class RemoteBlockSystem(RemoteSystem):
    """Registry form (``--system remote --system-param address=tcp://host:port``).

    A fixed-size device (:mod:`phyll.systems.contract`): the network is sized around the
    served channels. One served device can serve every block of a network, as in a lab where
    one cavity is reused layer after layer (its calibration is counted once). Given
    ``n_inputs`` / ``n_outputs`` (from Python), the device must have at least that many drive
    channels (unused ones are driven at zero) and exactly that many measurements. ``seed`` is
    ignored: a device's noise is its own.
    """

    Params = RemoteParams
    fixed_size = True

    def __init__(
        self,
        n_inputs: int | None = None,
        n_outputs: int | None = None,
        params: RemoteParams | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **overrides: Any,
    ) -> None:
        del seed
        p: RemoteParams = self.resolve_params(params, overrides)
        options = {k: v for k, v in as_plain(p).items() if k != "address"}
        super().__init__(p.address, device=device, **options)
        if (n_inputs is not None and self.n_inputs < n_inputs) or (
            n_outputs is not None and self.n_outputs != n_outputs
        ):
            raise ConfigError(
                f"the system served at {p.address} has {self.n_inputs} drive channels and "
                f"{self.n_outputs} measurements; this block needs ≥ {n_inputs} and exactly "
                f"{n_outputs} (set --measurements {self.n_outputs}, or serve a wider system)"
            )

"""``phyll serve MODULE:CLASS``: expose a physical system on a TCP port until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from phyll.params import parse_params
from phyll.remote.protocol import DEFAULT_MAX_BYTES, MAX_MAX_BYTES, MIN_MAX_BYTES
from phyll.remote.server import DeviceServer, load_system


def integer_in(name: str, low: int, high: int, meaning: str) -> Any:
    """argparse type: an integer in ``[low, high]`` (``meaning`` says what the range is)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name} {text!r}: not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} {value} is outside {low}..{high} ({meaning})")
        return value

    return parse


def command_serve(args: argparse.Namespace) -> int:
    system = load_system(args.target, parse_params(args.param))
    port = "*" if args.port == 0 else str(args.port)
    server = DeviceServer(
        system,
        f"tcp://{args.host}:{port}",
        max_bytes=args.max_bytes,
        max_queued_total=args.max_queued_bytes,
    )
    stop = {"now": False}

    def request_stop(signum: int, frame: Any) -> None:
        del signum, frame
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # the first line on stdout names the bound endpoint (scripts and tests read it)
    print(
        f"serving {type(system).__name__} ({system.n_inputs} drive → {system.n_outputs} "
        f"measured channels) on {server.address}",
        flush=True,
    )
    server.serve(lambda: stop["now"])
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a physical system over TCP (drive it with RemoteSystem)",
        description="Expose a physical system on a TCP port so that training on another "
        "machine can drive it: `phyll train --system remote --system-param "
        "address=tcp://HOST:PORT`, or RemoteSystem('tcp://HOST:PORT') in Python. Stop with "
        "Ctrl-C or SIGTERM.",
    )
    p.add_argument(
        "target",
        metavar="MODULE:CLASS",
        help="a PhysicalSystem subclass (or a function returning one), e.g. "
        "phyll.systems.acoustic:AcousticCavity or mylab.driver:Speakers; a registered "
        "system name (acoustic) also works",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument, repeatable (e.g. n_inputs=64, n_outputs=128, seed=0)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default: %(default)s, this machine only; 0.0.0.0 for "
        "every interface: the protocol has no authentication, use a trusted lab network)",
    )
    p.add_argument(
        "--port",
        type=integer_in("port", 0, 65535, "0 = any free port"),
        default=5555,
        help="TCP port 0..65535, 0 = any free one (default: %(default)s)",
    )
    p.add_argument(
        "--max-bytes",
        type=integer_in("message limit", MIN_MAX_BYTES, MAX_MAX_BYTES, "64 KiB..2 GiB"),
        default=DEFAULT_MAX_BYTES,
        help="largest request/reply in bytes, 64 KiB..2 GiB; larger ones are refused "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-queued-bytes",
        type=integer_in("queue limit", MIN_MAX_BYTES, 2**40, "64 KiB..1 TiB"),
        default=None,
        metavar="BYTES",
        help="most bytes of requests waiting to be answered, all clients together; a request "
        "beyond it (or beyond 2 messages of --max-bytes from one client) is refused at once "
        "(default: 8 × --max-bytes)",
    )
    p.set_defaults(func=command_serve)

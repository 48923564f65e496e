"""``phyll report DIR``: write ``DIR/report.html``."""

from __future__ import annotations

import argparse
from typing import Any

from phyll.report import write_report


def command_report(args: argparse.Namespace) -> int:
    path = write_report(args.dir)
    print(f"report: {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


def register(sub: Any) -> None:
    """Add ``phyll report`` to the CLI."""
    p = sub.add_parser(
        "report",
        help="write DIR/report.html: one self-contained page for a run or an experiment",
        description="Render the run, comparison, robustness, depth or sweep folder DIR as one "
        "HTML file with its figures embedded (no scripts, opens offline): DIR/report.html.",
    )
    p.add_argument("dir", metavar="DIR", help="a folder written by phyll train, compare, "
                   "robustness, depth or sweep")  # fmt: skip
    p.set_defaults(func=command_report)

"""``phyll report DIR``: one self-contained HTML page (``DIR/report.html``) for a run, a
comparison, a robustness or depth experiment, or a sweep, with its figures embedded.

:mod:`~phyll.report.load` finds what DIR is and reads it, :mod:`~phyll.report.figures` draws
the figures, :mod:`~phyll.report.sections` says what each kind of page holds and
:mod:`~phyll.report.html` builds the page (plain HTML and CSS, every string escaped).
"""

from __future__ import annotations

import time
from importlib.metadata import version
from pathlib import Path

from phyll.atomic import atomic_write_bytes
from phyll.report.figures import figures
from phyll.report.html import page
from phyll.report.load import Experiment, ReportError, load
from phyll.report.sections import PAGES

KIND_NAMES = {
    "run": "run",
    "compare": "comparison",
    "robustness": "robustness experiment",
    "depth": "depth experiment",
    "sweep": "sweep",
    "frontier": "cost-accuracy frontier",
}


def render(exp: Experiment) -> str:
    """The report page of ``exp``."""
    title, body = PAGES[exp.kind](exp, figures(exp))
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    subtitle = (
        f"{KIND_NAMES[exp.kind]} · {exp.folder.resolve()} · phyll {version('phyll')} · {stamp}"
    )
    return page(f"phyll report: {title}", subtitle, body)


def write_report(folder: str | Path) -> Path:
    """Write ``folder/report.html`` (atomically) and return its path."""
    exp = load(folder)
    text = render(exp).encode("utf-8")
    path = exp.folder / "report.html"
    atomic_write_bytes(path, lambda f: f.write(text))
    return path


__all__ = ["ReportError", "load", "render", "write_report"]

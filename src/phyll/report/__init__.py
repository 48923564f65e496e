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

from phyll.atomic import write_text
from phyll.experiments.kinds import EXPERIMENT_KINDS
from phyll.report.figures import figures
from phyll.report.html import page
from phyll.report.load import Experiment, ReportError, load
from phyll.report.sections import PAGES, kind_page

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
    title, body = PAGES.get(exp.kind, kind_page)(exp, figures(exp))
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    what = KIND_NAMES.get(exp.kind) or EXPERIMENT_KINDS[exp.kind].folder.what
    subtitle = f"{what} · {exp.folder.resolve()} · phyll {version('phyll')} · {stamp}"
    return page(f"phyll report: {title}", subtitle, body)


def write_report(folder: str | Path) -> Path:
    """Write ``folder/report.html`` (atomically) and return its path."""
    exp = load(folder)
    path = exp.folder / "report.html"
    write_text(path, render(exp))
    return path


__all__ = ["ReportError", "load", "render", "write_report"]

"""phyll writes only into folders it made: an experiment's marker file, and its own names.

Every experiment kind (compare, depth, robustness, sweep, frontier) writes its *marker file*
into its ``--out`` folder before anything else, and writes only the names its kind declares
(:class:`FolderKind`). :func:`claim` refuses, in one line and before anything is written, an
``--out`` folder that holds anything else: a folder without the kind's marker (someone's
project, another kind's experiment), or one whose marker is there beside files the kind never
writes (a user's notes, a table of their own). Nothing of the user's is ever overwritten or
deleted, ``--overwrite`` included. A run folder (``phyll train``) is guarded the same way by
:class:`~phyll.experiments.run_folder.RunFolder`.

Temporary files of an atomic write that a kill interrupted (``.NAME.XXXX.tmp`` of the kind's
own names) are recognised as the kind's and removed when the folder is claimed again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from phyll.atomic import temporary_of
from phyll.experiments.run_folder import RunFolderError, check_name

#: written by ``phyll report DIR`` into every kind of folder
REPORT = "report.html"


class FolderOwnershipError(RunFolderError):
    """An output folder holds files phyll did not write there."""


@dataclass(frozen=True)
class FolderKind:
    """An experiment kind's folder: what it is called, its marker file, the names it writes
    at its top level (regular expressions, the marker and ``report.html`` included)."""

    what: str
    marker: str
    names: tuple[str, ...]

    def owns(self, name: str) -> bool:
        """Whether ``name`` (an entry of the folder) is one this kind writes."""
        if name in (self.marker, REPORT):
            return True
        written = temporary_of(name)
        if written is not None:
            return self.owns(written)
        return any(re.fullmatch(pattern, name) for pattern in self.names)


COMPARE = FolderKind(
    "comparison",
    "compare_config.json",
    (r"summary\.json", r"table\.md", r"accuracy_vs_(epoch|flops)\.png", "runs"),
)
DEPTH = FolderKind(
    "depth sweep", "depth_config.json", (r"depth\.json", r"depth\.png", r"blocks-\d+-seed-?\d+")
)
ROBUSTNESS = FolderKind(
    "robustness experiment",
    "robustness_config.json",
    (r"robustness\.json", r"robustness\.png", "runs"),
)
SWEEP = FolderKind(
    "sweep",
    "sweep_config.json",
    (r"sweep\.json", r"sweep_table\.md", r"sweep\.png", "trials", "ray"),
)
FRONTIER = FolderKind(
    "frontier", "frontier.json", (r"frontier_(inference|training|queries)\.png", "runs")
)


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def claim(out: Path, kind: FolderKind) -> None:
    """Refuse ``out`` in one line unless it is missing, empty, or a folder of this kind holding
    only the kind's names; remove the kind's leftover temporary files. Nothing is written."""
    check_name(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise FolderOwnershipError(f"{out} exists and is not a folder: choose another --out")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if kind.marker not in entries:
        raise FolderOwnershipError(
            f"{out} is not a {kind.what} folder: it holds files phyll did not write there "
            f"({_listed(entries)}; no {kind.marker}), and phyll writes only into folders it "
            "made; choose another --out"
        )
    foreign = [name for name in entries if not kind.owns(name)]
    if foreign:
        raise FolderOwnershipError(
            f"{out} holds files that are not the {kind.what}'s ({_listed(foreign)}): phyll "
            "never writes beside files of yours; move them, or choose another --out"
        )
    for name in entries:
        if temporary_of(name) is not None:
            (out / name).unlink(missing_ok=True)  # a write a kill interrupted

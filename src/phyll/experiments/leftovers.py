"""What a kill leaves in and beside a run folder, recognised and cleaned or completed.

* **Temporary files** ``.NAME.XXXX.tmp`` of an atomic write (:mod:`phyll.atomic`) that a kill
  interrupted: removed by the run's next writer, once it holds the run's lock (no other
  process can be writing them then).
* **Staging folders** of ``--overwrite`` (:meth:`RunFolder.create
  <phyll.experiments.run_folder.RunFolder.create>`): the new run is written in a sibling
  ``DIR.new-XXXX`` that holds the mark :data:`STAGING_MARK` until it is swapped in. After a
  kill, :func:`recover_overwrite` finds it on the next start:

  - marked: the new run never replaced the old one, which is intact in ``DIR``; the staging
    folder is removed (the overwrite did not happen);
  - not marked, a phyll run: the swap happened and this is the *old* run, which the user asked
    to replace; it is removed (the overwrite completes), and the mark left in ``DIR`` too;
  - ``DIR.old-XXXX`` (systems without an atomic exchange, which move the old run aside and
    the new one in): when ``DIR`` is missing the old run is moved back, else removed.

  A folder whose writer is still alive (its lock is held) is never touched, nor one that is
  not phyll's.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from phyll.atomic import temporary_of

#: in a staging folder until its run replaces the old one (its content: the target's name)
STAGING_MARK = ".staging"
#: a context manager holding a folder's lock, or None when another process holds it
TryLock = Callable[[Path], AbstractContextManager[object] | None]


def remove_temporaries(folder: Path) -> None:
    """Remove the temporary files of atomic writes a kill interrupted (the caller holds the
    folder's lock: nobody else is writing them)."""
    for entry in folder.iterdir():
        if temporary_of(entry.name) is not None and entry.is_file():
            entry.unlink(missing_ok=True)


def siblings(path: Path, kind: str) -> list[Path]:
    """The ``DIR.new-*`` (``kind="new"``) or ``DIR.old-*`` folders beside ``path``."""
    parent = path.absolute().parent
    pattern = f"{glob.escape(path.name)}.{kind}-*"
    return sorted(p for p in parent.glob(pattern) if p.is_dir() and not p.is_symlink())


def recover_overwrite(path: Path, is_run: Callable[[Path], bool], try_lock: TryLock) -> None:
    """Clean or complete what a killed ``--overwrite`` of ``path`` left (module docstring).

    ``is_run(folder)`` says whether a folder is a phyll run; ``try_lock(folder)`` returns a
    context holding its lock, or None when a live process holds it.
    """
    if not path.absolute().parent.is_dir():
        return
    guard: AbstractContextManager[object] | None = nullcontext()
    if path.is_dir() and is_run(path):
        guard = try_lock(path)
    if guard is None:  # a live process writes the run: its leftovers are its own
        return
    with guard:
        for aside in siblings(path, "old"):
            _settle(aside, is_run, try_lock, restore_to=None if path.exists() else path)
        for staged in siblings(path, "new"):
            _settle(staged, is_run, try_lock, restore_to=None)
        mark = path / STAGING_MARK
        if path.is_dir() and mark.is_file() and is_run(path):
            mark.unlink()  # the swap happened; the mark was all that was left to remove


def _settle(
    folder: Path, is_run: Callable[[Path], bool], try_lock: TryLock, restore_to: Path | None
) -> None:
    """Remove a leftover sibling (or move an old run back to ``restore_to``), if it is ours."""
    marked = (folder / STAGING_MARK).is_file()
    empty = not any(p.name not in (".lock", STAGING_MARK) for p in folder.iterdir())
    if not (marked or empty or is_run(folder)):
        return  # not phyll's: left alone
    guard = try_lock(folder)
    if guard is None:
        return  # its writer is alive
    with guard:
        if restore_to is not None and not marked:
            os.rename(folder, restore_to)  # the swap stopped half-way: the old run comes back
            (restore_to / ".lock").unlink(missing_ok=True)  # ours, taken above: not the run's
            return
        shutil.rmtree(folder)

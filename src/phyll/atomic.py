"""Atomic file writes: a file is either its old or its new version, never half-written."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: the temporary file :func:`atomic_write_bytes` writes for ``NAME``: ``.NAME.XXXXXXXX.tmp``
_TEMPORARY = re.compile(r"\.(.+)\.[A-Za-z0-9_]+\.tmp")


def temporary_of(name: str) -> str | None:
    """The file whose atomic write left the temporary file ``name`` (a kill interrupted it),
    or None when ``name`` is not such a temporary file."""
    match = _TEMPORARY.fullmatch(name)
    return match.group(1) if match else None


def atomic_write_bytes(
    path: Path,
    write: Callable[[IO[bytes]], object],
    before_rename: Callable[[Path], object] | None = None,
) -> None:
    """Call ``write(file_object)`` on a temporary file next to ``path``, fsync, then rename it.

    ``before_rename(temporary)`` runs once the temporary file is complete, before it replaces
    ``path`` (e.g. to record its checksum first). The file gets the mode a plain ``open``
    would give it (0666 less the umask, e.g. 0644), not ``mkstemp``'s private 0600: run
    folders are shared and read by other tools.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """A text file (UTF-8), written atomically."""
    data = text.encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def write_json(path: Path, data: object) -> None:
    """A JSON file (indented, a final newline; what JSON cannot hold written as its ``str``),
    written atomically: phyll's one JSON writer (run folders, experiments, manifests)."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")

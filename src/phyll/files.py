"""Reading a file a user hands over: a regular file, read with a bound, or one clear line.

A path can name a FIFO (reading it blocks until someone writes), a device (``/dev/zero`` never
ends) or a socket, directly or through a symbolic link. phyll reads only regular files: every
file it reads from the user (CSV, NPZ and IDX data, checkpoints, JSON records, metrics) goes
through :func:`regular_file` first, which looks at the file's type without opening it, so
nothing blocks and nothing endless is read. :func:`read_bounded` then reads at most a declared
number of bytes: a record that is far larger than any phyll writes is refused, not loaded.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from phyll.errors import UserError

#: the file kinds that are not regular files, as a message names them
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
#: largest JSON record phyll reads (config, summary, experiment records): theirs are kilobytes
MAX_JSON_BYTES = 64 * 2**20


class FileKindError(UserError, ValueError):
    """A path names something that is not a regular file, or a file too large to read."""


def regular_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` if it names a regular file (symbolic links followed); else one line saying what
    it is. A missing file raises :class:`FileNotFoundError`, for the caller to word."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FileKindError(f"{what} {path}: cannot read ({os_reason(exc)})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise FileKindError(f"{what} {path} is {kind}, not a regular file: phyll reads only files")
    return path


def read_bounded(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused in one line when it holds more than
    ``limit`` bytes (checked on its size, then again while reading: a file that grows)."""
    path = regular_file(path, what)
    size = path.stat().st_size
    if size > limit:
        raise FileKindError(
            f"{what} {path} holds {size:,} bytes, more than the {limit:,} phyll reads for it"
        )
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileKindError(f"{what} {path} grew past {limit:,} bytes while it was read")
    return data


#: OS errors that say something about the user's files or machine, not about phyll
USER_ERRNOS = frozenset(
    {
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EMFILE,
        errno.ENFILE,
    }
)


def os_reason(exc: OSError) -> str:
    """An OS error as a short reason: ``"Read-only file system"``, ``"File name too long"``."""
    return exc.strerror or str(exc) or type(exc).__name__

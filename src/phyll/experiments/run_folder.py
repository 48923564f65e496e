"""The run folder: config, per-epoch metrics, summary, checkpoints and figures of one run.

Layout (names are stable; other tools read them)::

    DIR/config.json       resolved configuration, with the format marker ("phyll-run/1")
    DIR/metrics.jsonl     one JSON object per epoch, appended, never rewritten
    DIR/summary.json      final figures (test_accuracy, physical_queries, digital_flops, ...)
    DIR/checkpoint.pt     latest training state (resume continues from here)
    DIR/model.pt          the selected (best-validation) weights and the config
    DIR/learning_curve.png
    DIR/records/blockI/   optional: every drive/measurement pair (``--record``)
    DIR/.lock             while a process writes the run: its PID, under an advisory flock

Checkpoints and JSON are written atomically (write to a temporary file, then rename), so an
interrupted run never leaves a half-written file behind. Only one process writes a run at a
time (:class:`RunLock`), phyll never writes into a folder that is not one of its runs, and
``--overwrite`` is transactional: the new run is written in a sibling ``DIR.new-XXXX`` and
swapped in only once its first checkpoint is on disk, so a failure before that leaves the old
run exactly as it was.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from phyll.atomic import atomic_write_bytes, temporary_of, umask, write_json
from phyll.errors import UserError
from phyll.experiments.config import FORMAT
from phyll.experiments.integrity import MANIFEST, IntegrityError, Manifest
from phyll.experiments.leftovers import STAGING_MARK, recover_overwrite, remove_temporaries
from phyll.files import MAX_JSON_BYTES, FileKindError, os_reason, read_bounded, regular_file

#: the lock file inside a run folder while a process writes it
LOCK_NAME = ".lock"
#: every name phyll writes in a run folder (``report.html``: ``phyll report``); anything else
#: is the user's, and a folder holding it is never written into
RUN_FILES = frozenset(
    {
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoint.pt",
        "model.pt",
        "learning_curve.png",
        "records",
        "report.html",
        MANIFEST,
        LOCK_NAME,
        STAGING_MARK,
    }
)
#: longest name of one path component most file systems allow (bytes)
NAME_MAX = 255
#: longest metrics file phyll reads (a line per epoch: megabytes for the longest runs)
MAX_METRICS_BYTES = 1024 * 2**20


class RunFolderError(UserError, ValueError):
    """The output folder cannot be used (missing parent, already holds a run...)."""


class RunLock:
    """An advisory ``flock`` on ``DIR/.lock``, which holds the writer's PID: one writer per run.

    The OS drops the lock when the process ends, however it ends (a crash leaves a stale file
    whose lock anyone can take); a clean release removes the file.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise RunFolderError(f"cannot lock {folder}: {os_reason(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderError(
                    f"{folder} is being written by another phyll process (PID {holder}, lock "
                    f"{self.path}): wait for it to finish or stop it"
                ) from None
            if self._is_current(fd):  # not a file a releasing writer just removed
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd: int | None = fd

    def _is_current(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and unlock."""
        if self.fd is None:
            return
        if self._is_current(self.fd):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None


class RunFolder:
    """Owns the files of one run; see the module docstring for the layout.

    ``path`` is where the run lives; ``root`` is where its files are written now: a staging
    sibling while ``--overwrite`` has not yet replaced the old run, else ``path``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_name(Path(path))
        self.staging: Path | None = None
        self.lock: RunLock | None = None
        self.old_lock: RunLock | None = None  # overwrite: the replaced run's, until the swap
        self.created = False

    @property
    def root(self) -> Path:
        return self.staging or self.path

    config_file = property(lambda self: self.root / "config.json")
    metrics_file = property(lambda self: self.root / "metrics.jsonl")
    summary_file = property(lambda self: self.root / "summary.json")
    checkpoint_file = property(lambda self: self.root / "checkpoint.pt")
    model_file = property(lambda self: self.root / "model.pt")
    curve_file = property(lambda self: self.root / "learning_curve.png")
    records_dir = property(lambda self: self.root / "records")

    def create(self, overwrite: bool = False) -> None:
        """Make the folder and lock it; refuse a bad place, a foreign folder, files of the user's
        beside a run, a symbolic link to overwrite or (without ``overwrite``) a folder that
        already holds a run. Overwriting stages the new run. What a killed write or overwrite
        left is cleaned or completed first (:mod:`phyll.experiments.leftovers`)."""
        parent = self.path.absolute().parent
        if not parent.is_dir():
            what = "is not a folder" if parent.exists() else "does not exist"
            raise RunFolderError(f"cannot create run folder {self.path}: parent {parent} {what}")
        if overwrite and self.path.is_symlink():
            raise RunFolderError(
                f"{self.path} is a symbolic link: --overwrite replaces only a real run folder; "
                f"give the folder it points to ({self.path.resolve()}) or another --out"
            )
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} exists and is not a folder")
        recover_overwrite(self.path, is_phyll_run, try_lock)
        if self.path.is_dir() and any(p.name != LOCK_NAME for p in self.path.iterdir()):
            self.check_is_run()
            self.check_own_files()
        holds_run = self.checkpoint_file.exists() or self.summary_file.exists()
        if holds_run and not overwrite:
            raise RunFolderError(
                f"{self.path} already holds a run: pass --resume to continue it or "
                "--overwrite to start over"
            )
        try:
            if holds_run:
                self.old_lock = RunLock(self.path)  # nobody else writes the run we replace
                self.staging = Path(tempfile.mkdtemp(prefix=f"{self.path.name}.new-", dir=parent))
                self.staging.chmod(0o777 & ~umask())
                (self.staging / STAGING_MARK).write_text(f"{self.path.name}\n")
                self.lock = RunLock(self.staging)
            else:
                self.created = not self.path.exists()
                self.path.mkdir(exist_ok=True)
                self.lock = RunLock(self.path)
                remove_temporaries(self.path)
        except OSError as exc:
            self.close()
            raise RunFolderError(f"cannot write run folder {self.path}: {os_reason(exc)}") from None
        except BaseException:
            self.close()
            raise

    def acquire(self) -> None:
        """Become the one writer of the existing run (resume); one line if another process is
        (or if the folder cannot be written: read-only, no permission). Leftover temporary
        files of a killed write are removed."""
        self.lock = RunLock(self.path)
        try:
            remove_temporaries(self.path)
        except OSError as exc:
            self.close()
            raise RunFolderError(f"cannot write run folder {self.path}: {os_reason(exc)}") from None

    def check_own_files(self) -> None:
        """Refuse a run folder that holds files phyll does not write there (the user's)."""
        foreign = sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in RUN_FILES and temporary_of(p.name) not in RUN_FILES
        )
        if foreign:
            shown = ", ".join(foreign[:4]) + (
                f", … ({len(foreign)} in all)" if len(foreign) > 4 else ""
            )
            raise RunFolderError(
                f"{self.path} holds files that are not the run's ({shown}): phyll never writes "
                "beside files of yours; move them, or choose another --out"
            )

    def check_is_run(self) -> None:
        """Refuse a folder phyll did not make (no ``config.json`` with the format marker)."""
        if not self.config_file.is_file():
            raise RunFolderError(
                f"{self.path} is not a phyll run folder (it has no config.json): phyll never "
                "writes into it; choose another folder"
            )
        if self.read_json(self.config_file).get("format") != FORMAT:
            raise RunFolderError(
                f"{self.config_file} lacks the format marker {FORMAT!r}: {self.path} is not a "
                "phyll run folder; phyll never writes into it"
            )

    def commit(self) -> None:
        """Replace the old run by the staged one (called once its first checkpoint is written):
        an atomic exchange where the OS has one, else two renames; then delete the old run."""
        if self.staging is None:
            return
        staged, self.staging = self.staging, None
        if not _exchange(staged, self.path):
            aside = staged.with_name(staged.name.replace(".new-", ".old-", 1))
            os.rename(self.path, aside)
            os.rename(staged, self.path)
            staged = aside
        if self.lock is not None:
            self.lock.path = self.path / LOCK_NAME
        (self.path / STAGING_MARK).unlink(missing_ok=True)  # the new run is the run now
        shutil.rmtree(staged)  # the old run
        if self.old_lock is not None:
            self.old_lock.release()
            self.old_lock = None

    def close(self) -> None:
        """End this process's writing: release the locks, discard a staged run that never
        reached its first checkpoint (the old run stays as it was) and a folder this process
        made but left empty."""
        for lock in (self.lock, self.old_lock):
            if lock is not None:
                lock.release()
        self.lock = self.old_lock = None
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        """A JSON file, atomically (:func:`phyll.atomic.write_json`); a full disk or a
        read-only folder is one line."""
        try:
            write_json(path, data)
        except OSError as exc:
            raise RunFolderError(f"cannot write {path}: {os_reason(exc)}") from None

    def read_json(self, path: Path) -> dict[str, Any]:
        """A JSON object file; anything else (missing, unreadable, not JSON) is one line."""
        try:
            data = json.loads(read_bounded(path, MAX_JSON_BYTES, "JSON file"))
        except FileNotFoundError:
            raise RunFolderError(f"{path} is missing") from None
        except FileKindError as exc:
            raise RunFolderError(str(exc)) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunFolderError(f"{path} is not a readable JSON file ({exc})") from None
        if not isinstance(data, dict):
            raise RunFolderError(f"{path} holds a {type(data).__name__}, not a JSON object")
        return data

    def append_metrics(self, record: dict[str, Any]) -> None:
        if self.metrics_file.exists():
            try:
                regular_file(self.metrics_file, "metrics file")
            except FileKindError as exc:
                raise RunFolderError(str(exc)) from None
        with self.metrics_file.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def cut_torn_metrics_line(self) -> None:
        """Drop a last line without its newline (a crash inside an append), so appending goes
        on after the last complete record; complete lines are never touched."""
        if not self.metrics_file.exists():
            return
        data = self._metrics_bytes()
        if data and not data.endswith(b"\n"):
            with self.metrics_file.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def _metrics_bytes(self) -> bytes:
        """The metrics file's bytes: a regular file of bounded size, else one line."""
        try:
            return read_bounded(self.metrics_file, MAX_METRICS_BYTES, "metrics file")
        except FileKindError as exc:
            raise RunFolderError(str(exc)) from None
        except OSError as exc:
            raise RunFolderError(
                f"{self.metrics_file} is not readable ({os_reason(exc)})"
            ) from None

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch records; a corrupt line is one error naming the file and the line (a
        torn last line, an append a crash cut short, is left out)."""
        if not self.metrics_file.exists():
            return []
        try:
            text = self._metrics_bytes().decode()
        except UnicodeDecodeError as exc:
            raise RunFolderError(f"{self.metrics_file} is not readable ({exc})") from None
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines):
                    break  # torn: no newline yet
                raise RunFolderError(
                    f"{self.metrics_file}: line {number} is corrupt ({exc.msg}): repair or "
                    "remove that line"
                ) from None
            if not isinstance(record, dict):
                raise RunFolderError(
                    f"{self.metrics_file}: line {number} holds a {type(record).__name__}, "
                    "not a JSON object"
                )
            records.append(record)
        return records

    def save(self, path: Path, state: dict[str, Any]) -> None:
        """A checkpoint or model file, its sha256 in the manifest (kept true through a kill at
        any moment: :mod:`phyll.experiments.integrity`)."""
        manifest = Manifest(path.parent)
        self._write(
            path, lambda f: torch.save(state, f), lambda tmp: manifest.expect(path.name, tmp)
        )
        try:
            manifest.settle(path.name)
        except OSError as exc:
            raise RunFolderError(f"cannot write {manifest.path}: {os_reason(exc)}") from None

    def _write(
        self,
        path: Path,
        write: Callable[[IO[bytes]], object],
        before_rename: Callable[[Path], object] | None = None,
    ) -> None:
        """Write ``path`` atomically; a full disk or a read-only folder is one line."""
        try:
            atomic_write_bytes(path, write, before_rename)
        except OSError as exc:
            raise RunFolderError(f"cannot write {path}: {os_reason(exc)}") from None

    def load(self, path: Path) -> dict[str, Any]:
        """A checkpoint or model file: plain tensors, lists, dicts and numbers only.

        ``weights_only=True``: nothing in the file is executed, so a run folder someone hands
        you cannot run code; a file holding anything else is refused in one line.
        """
        if not path.exists():
            raise RunFolderError(f"no checkpoint at {path}")
        try:
            regular_file(path, "checkpoint")
            Manifest(path.parent).verify(path)
        except (FileKindError, IntegrityError) as exc:
            raise RunFolderError(str(exc)) from None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, random, foreign or crafted: all one answer
            reason = " ".join(str(exc).split())[:200]
            raise RunFolderError(
                f"{path} is not a readable phyll checkpoint ({type(exc).__name__}: {reason})"
            ) from None
        if not isinstance(state, dict):
            raise RunFolderError(f"{path} is not a phyll checkpoint (holds {type(state).__name__})")
        return state


def is_phyll_run(folder: Path) -> bool:
    """Whether ``folder`` holds a ``config.json`` with phyll's format marker (nothing raised)."""
    try:
        config = json.loads(read_bounded(folder / "config.json", MAX_JSON_BYTES))
    except (OSError, ValueError, UserError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


@contextmanager
def _holding(lock: RunLock) -> Iterator[RunLock]:
    try:
        yield lock
    finally:
        lock.release()


def try_lock(folder: Path) -> AbstractContextManager[RunLock] | None:
    """A context holding ``folder``'s run lock, or None when a live process holds it (or the
    folder cannot be locked at all)."""
    try:
        return _holding(RunLock(folder))
    except RunFolderError:
        return None


def check_name(path: Path) -> Path:
    """``path``, or one line when one of its names is longer than file systems allow (a
    staging sibling adds 13 characters to the last one)."""
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise RunFolderError(
                f"the name {part[:40]}… is {len(os.fsencode(part))} bytes long; file systems "
                f"allow {NAME_MAX}: choose a shorter --out"
            )
    if len(os.fsencode(path)) > 4000:
        raise RunFolderError(f"the path {str(path)[:40]}… is too long: choose a shorter --out")
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the OS or
    the file system has no such call."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextmanager
def output_folder(path: Path) -> Iterator[Path]:
    """``mkdir -p path`` for an experiment's output (one line if it cannot be made); if the
    body fails, the folders made here and left empty are removed, so nothing empty stays."""
    check_name(path)
    try:
        made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise RunFolderError(f"cannot create folder {path}: {existing} is not a folder")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create folder {path}: {os_reason(exc)}") from None
    try:
        yield path
    except BaseException:
        for folder in made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise

"""Record every drive/measurement pair of a physical system, to audit or replay an experiment.

Any :class:`~phyll.systems.base.PhysicalSystem` can be recorded: :func:`record_systems` sets its
``recorder`` hook, which the base class calls with each validated drive (after clipping, as
actually applied) and the measurement returned to the learner. Pairs are buffered and written
as NumPy ``.npz`` chunks, float32, uncompressed (fast to write, read with NumPy alone)::

    FOLDER/NAME/000000000000.npz   drive [n, n_inputs], measurement [n, n_outputs], start
    FOLDER/NAME/000000001024.npz   ...   (file name = index of its first recorded pair)

Chunks are written atomically (temporary file, then rename). :meth:`SystemRecorder.truncate`
drops pairs recorded after a checkpoint, so a resumed run's records stay one contiguous series.
:func:`read_records` loads a series back; :func:`replay` drives a system with recorded drives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from phyll.atomic import atomic_write_bytes
from phyll.errors import UserError
from phyll.systems.base import PhysicalSystem


class RecordError(UserError, ValueError):
    """Records are missing, not contiguous or unreadable."""


def _write_chunk(path: Path, drive: np.ndarray, measurement: np.ndarray, start: int) -> None:
    atomic_write_bytes(
        path, lambda f: np.savez(f, drive=drive, measurement=measurement, start=np.int64(start))
    )


class SystemRecorder:
    """The ``recorder`` hook of one system: buffers pairs, writes ``.npz`` chunks.

    Args:
        folder: this system's record folder (created).
        chunk_samples: pairs per chunk; the buffer is also written by :meth:`flush`.
    """

    def __init__(self, folder: str | os.PathLike[str], chunk_samples: int = 65536) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.chunk_samples = int(chunk_samples)
        self.written = sum(len(np.load(p)["drive"]) for p in self._chunks())
        self._drives: list[np.ndarray] = []
        self._measurements: list[np.ndarray] = []

    def __call__(self, drive: Tensor, measurement: Tensor) -> None:
        self._drives.append(drive.detach().to("cpu", torch.float32).numpy().copy())
        self._measurements.append(measurement.detach().to("cpu", torch.float32).numpy().copy())
        if sum(len(d) for d in self._drives) >= self.chunk_samples:
            self.flush()

    @property
    def recorded(self) -> int:
        """Pairs recorded so far (written or buffered)."""
        return self.written + sum(len(d) for d in self._drives)

    def flush(self) -> None:
        """Write the buffered pairs as one chunk."""
        if not self._drives:
            return
        drive, measurement = np.concatenate(self._drives), np.concatenate(self._measurements)
        _write_chunk(self.folder / f"{self.written:012d}.npz", drive, measurement, self.written)
        self.written += len(drive)
        self._drives, self._measurements = [], []

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` recorded pairs only (those before a resumed checkpoint)."""
        self._drives, self._measurements = [], []
        for path in self._chunks():
            start = int(path.stem)
            if start >= n:
                path.unlink()
                continue
            with np.load(path) as chunk:
                drive, measurement = chunk["drive"], chunk["measurement"]
            if start + len(drive) > n:
                keep = n - start
                _write_chunk(path, drive[:keep], measurement[:keep], start)
        self.written = min(n, self.written)

    def _chunks(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9]*.npz"))


def record_systems(
    systems: Sequence[PhysicalSystem], folder: str | os.PathLike[str], chunk_samples: int = 65536
) -> list[SystemRecorder]:
    """Record each system to ``folder/block{i}``; returns the recorders (flush them)."""
    recorders = []
    for i, system in enumerate(systems):
        recorder = SystemRecorder(Path(folder) / f"block{i}", chunk_samples)
        system.recorder = recorder
        recorders.append(recorder)
    return recorders


@dataclass
class Records:
    """One system's recorded series, in query order."""

    drive: np.ndarray
    measurement: np.ndarray


def read_records(folder: str | os.PathLike[str]) -> Records:
    """Load one system's record folder (e.g. ``RUN/records/block0``); checks contiguity."""
    chunks = sorted(Path(folder).glob("[0-9]*.npz"))
    if not chunks:
        raise RecordError(f"no records in {folder}")
    drives, measurements, expected = [], [], 0
    for path in chunks:
        with np.load(path) as chunk:
            start = int(chunk["start"])
            if start != expected:
                raise RecordError(f"{path}: starts at pair {start}, expected {expected} (a gap)")
            drives.append(chunk["drive"])
            measurements.append(chunk["measurement"])
        expected += len(drives[-1])
    return Records(np.concatenate(drives), np.concatenate(measurements))


def replay(records: Records, system: PhysicalSystem, batch: int = 1024) -> np.ndarray:
    """Drive ``system`` with the recorded drives; its measurements (to compare, e.g. to audit a
    run or to look for drift: ``np.abs(replay(r, s) - r.measurement).max()``)."""
    parts = [
        system(torch.from_numpy(records.drive[i : i + batch])).cpu().numpy()
        for i in range(0, len(records.drive), batch)
    ]
    return np.concatenate(parts)

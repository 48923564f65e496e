"""The run folder: config, per-epoch metrics, summary, checkpoints and figures of one run.

Layout (names are stable; other tools read them)::

    DIR/config.json       resolved configuration
    DIR/metrics.jsonl     one JSON object per epoch, appended, never rewritten
    DIR/summary.json      final figures (test_accuracy, physical_queries, digital_flops, ...)
    DIR/checkpoint.pt     latest training state (resume continues from here)
    DIR/model.pt          the selected (best-validation) weights and the config
    DIR/learning_curve.png
    DIR/records/blockI/   optional: every drive/measurement pair (``--record``)

Checkpoints and JSON are written atomically (write to a temporary file, then rename), so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from phyll.atomic import atomic_write_bytes
from phyll.errors import UserError


class RunFolderError(UserError, ValueError):
    """The output folder cannot be used (missing parent, already holds a run...)."""


class RunFolder:
    """Owns the files of one run; see the module docstring for the layout."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    config_file = property(lambda self: self.path / "config.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    summary_file = property(lambda self: self.path / "summary.json")
    checkpoint_file = property(lambda self: self.path / "checkpoint.pt")
    model_file = property(lambda self: self.path / "model.pt")
    curve_file = property(lambda self: self.path / "learning_curve.png")
    records_dir = property(lambda self: self.path / "records")

    def create(self, overwrite: bool = False) -> None:
        """Make the folder; refuse a missing parent or a folder that already holds a run."""
        parent = self.path.resolve().parent
        if not parent.is_dir():
            raise RunFolderError(
                f"cannot create run folder {self.path}: parent {parent} does not exist"
            )
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} exists and is not a folder")
        if self.checkpoint_file.exists() or self.summary_file.exists():
            if not overwrite:
                raise RunFolderError(
                    f"{self.path} already holds a run: pass --resume to continue it or "
                    "--overwrite to start over"
                )
            for f in (self.metrics_file, self.summary_file, self.checkpoint_file, self.model_file):
                f.unlink(missing_ok=True)
            shutil.rmtree(self.records_dir, ignore_errors=True)
        self.path.mkdir(exist_ok=True)

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=False, default=str).encode()
        atomic_write_bytes(path, lambda f: f.write(text + b"\n"))

    def read_json(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_file.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def cut_torn_metrics_line(self) -> None:
        """Drop a last line without its newline (a crash inside an append), so appending goes
        on after the last complete record; complete lines are never touched."""
        if not self.metrics_file.exists():
            return
        data = self.metrics_file.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.metrics_file.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line]

    def save(self, path: Path, state: dict[str, Any]) -> None:
        atomic_write_bytes(path, lambda f: torch.save(state, f))

    def load(self, path: Path) -> dict[str, Any]:
        """A checkpoint or model file: plain tensors, lists, dicts and numbers only.

        ``weights_only=True``: nothing in the file is executed, so a run folder someone hands
        you cannot run code; a file holding anything else is refused in one line.
        """
        if not path.exists():
            raise RunFolderError(f"no checkpoint at {path}")
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

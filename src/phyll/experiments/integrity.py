"""Checksums of a run's checkpoint and model: corruption is refused, not trained on.

``DIR/manifest.json`` records the sha256 of ``checkpoint.pt`` and ``model.pt`` as phyll wrote
them. Loading either compares the file with it: a mismatch (bytes flipped on a disk, a copy
cut short, a file edited by hand) is one line naming the file, never a run that goes on from
damaged weights.

The manifest is kept true through a kill at any moment. A file is replaced in three atomic
steps (:meth:`Manifest.expect`, the rename, :meth:`Manifest.settle`): first the manifest
accepts both the file on disk and its replacement, then the replacement is renamed into
place, then the manifest keeps only the new checksum. Whichever step a kill interrupts, the
file on disk is one the manifest accepts. A folder without a manifest (a run of an older
phyll) loads unchecked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from phyll.atomic import write_json
from phyll.errors import UserError
from phyll.files import MAX_JSON_BYTES, read_bounded

MANIFEST = "manifest.json"
FORMAT = "phyll-manifest/1"


class IntegrityError(UserError, ValueError):
    """A file does not match the checksum phyll recorded when it wrote it."""


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


class Manifest:
    """The checksums of one folder's files (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST

    def read(self) -> dict[str, list[str]]:
        """File name → the checksums accepted for it ({} without a manifest)."""
        if not self.path.exists():
            return {}
        try:
            data: Any = json.loads(read_bounded(self.path, MAX_JSON_BYTES, "manifest"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IntegrityError(
                f"{self.path} is not a readable manifest ({exc}): phyll cannot check the run's "
                "checkpoint and model against it; restore it, or remove it to load unchecked"
            ) from None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or data.get("format") != FORMAT:
            raise IntegrityError(f"{self.path} is not a phyll manifest (format {FORMAT!r})")
        return {str(k): [str(h) for h in v] for k, v in files.items() if isinstance(v, list)}

    def _write(self, files: dict[str, list[str]]) -> None:
        write_json(self.path, {"format": FORMAT, "files": files})

    def expect(self, name: str, replacement: Path) -> None:
        """Before ``replacement`` is renamed onto ``name``: accept both checksums."""
        files = self.read()
        current = files.get(name, [])[:1]
        files[name] = [sha256_of(replacement), *current]
        self._write(files)

    def settle(self, name: str) -> None:
        """After the rename: only the new checksum of ``name`` is accepted."""
        files = self.read()
        if len(files.get(name, [])) > 1:
            files[name] = files[name][:1]
            self._write(files)

    def verify(self, path: Path) -> None:
        """Refuse ``path`` in one line when its checksum is not one recorded for it."""
        accepted = self.read().get(path.name)
        if not accepted:
            return
        actual = sha256_of(path)
        if actual not in accepted:
            raise IntegrityError(
                f"{path} is corrupt: its sha256 {actual[:16]}… is not the {accepted[0][:16]}… "
                f"phyll recorded in {self.path.name} when it wrote the file (damaged on disk, "
                "cut short or edited): restore it from a backup, or train the run again"
            )

"""README.md's Python snippets run verbatim, twice in a row, in a fresh folder.

A block preceded by ``<!-- no-test: REASON -->`` is skipped (it needs a served device or a
recorded run); keep that list short. Blocks run in order in one namespace per pass, as a
reader pasting them into one session would, and a second pass catches snippets that work only
once (e.g. writing into a run folder that already exists).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- no-test: [^>]*-->\s*)?```python\n(.*?)```", flags=re.DOTALL)


def readme_blocks() -> tuple[list[str], list[str]]:
    """(blocks to run, blocks marked no-test), in README order."""
    run, skipped = [], []
    for marker, code in BLOCK.findall(README.read_text()):
        (skipped if marker else run).append(code)
    return run, skipped


def test_only_a_few_blocks_are_skipped():
    run, skipped = readme_blocks()
    assert len(run) >= 4 and len(skipped) <= 2


def test_readme_python_blocks_run_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, _ = readme_blocks()
    for attempt in range(2):
        module = types.ModuleType("readme_example")  # dataclasses need a real module
        monkeypatch.setitem(sys.modules, "readme_example", module)
        for i, code in enumerate(run):
            try:
                exec(compile(code, f"README.md block {i}", "exec"), module.__dict__)
            except Exception as exc:
                pytest.fail(f"README python block {i} (pass {attempt + 1}) failed: {exc!r}")

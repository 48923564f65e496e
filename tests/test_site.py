"""The documentation: a short README, links that resolve, page snippets that run, a strict build.

The README is a landing page (at most 200 lines); every relative link of README.md and of the
pages under docs/ points to a file that exists; the ```python blocks of the pages (except
architecture.md, which tests/test_docs.py runs with its own checks) run in order in one
namespace per page, skipping a block marked ``<!-- no-test: REASON -->``; and, where the
``.[docs]`` extra is installed, ``mkdocs build --strict`` passes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
BLOCK = re.compile(r"(<!-- no-test: [^>]*-->\s*)?```python\n(.*?)```", flags=re.DOTALL)
FENCE = re.compile(r"```.*?```", flags=re.DOTALL)


def relative_links(path: Path) -> list[str]:
    """The relative link targets of a Markdown file (code blocks, URLs and anchors left out)."""
    text = FENCE.sub("", path.read_text())
    targets = [t.split("#")[0] for t in LINK.findall(text)]
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move the rest into docs/"


@pytest.mark.parametrize("path", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_point_to_files(path: Path):
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_check_sees_links():
    links = relative_links(ROOT / "README.md")
    assert "docs/getting-started.md" in links and "LICENSE" in links


SNIPPET_PAGES = [p for p in PAGES if p.name != "architecture.md" and "```python" in p.read_text()]


@pytest.mark.parametrize("path", SNIPPET_PAGES, ids=lambda p: p.name)
def test_page_python_blocks_run(path: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("docs_page_example")  # dataclasses need a real module
    monkeypatch.setitem(sys.modules, "docs_page_example", module)
    blocks = [code for marker, code in BLOCK.findall(path.read_text()) if not marker]
    assert blocks, f"{path.name}: every python block is marked no-test"
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{path.name} block {i}", "exec"), module.__dict__)
        except Exception as exc:
            pytest.fail(f"{path.name} python block {i} failed: {exc!r}")


def test_mkdocs_build_strict(tmp_path):
    for name in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f"{name} is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (site / "index.html").is_file()
    assert (site / "reference" / "systems" / "index.html").is_file()

"""A light start: the command line's help and version, and a lab machine's ``import
phyll.systems``, load neither plotting, scikit-learn, torch's FLOP counter nor the
experiments."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("matplotlib", "sklearn", "torch.utils.flop_counter")


def imported_modules(code: str, argv: tuple[str, ...] = ()) -> set[str]:
    """The modules a fresh interpreter holds when it leaves after running ``code`` with
    ``sys.argv[1:] = argv`` (read at exit: argparse's --version and --help exit)."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(*sys.modules, sep='\\n', file=sys.stderr))\n"
        f"sys.argv = ['phyll', *{list(argv)!r}]\n{code}"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stderr.split())


def heavy(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.startswith(prefixes))


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["train", "--help"]])
def test_the_command_lines_help_and_version_import_nothing_heavy(argv):
    modules = imported_modules("from phyll.cli import main; main()", tuple(argv))
    assert "phyll.cli" in modules
    assert heavy(modules, HEAVY) == []


def test_import_phyll_systems_loads_no_experiment_engine_or_plotting():
    modules = imported_modules("import phyll.systems")
    assert "phyll.systems.optical" in modules
    assert heavy(modules, (*HEAVY, "phyll.engine", "phyll.experiments")) == []
    assert "phyll.remote.client" not in modules  # the remote system loads when it is used


def test_the_package_names_load_on_first_use():
    modules = imported_modules("import phyll; phyll.TrainConfig")
    assert "phyll.experiments.config" in modules
    assert "phyll.experiments.train" not in modules


@pytest.mark.parametrize(
    ("argv", "code", "stream", "text"),
    [
        (["list"], 0, "stdout", "phyll"),  # the output reaches a pipe before the fast exit
        (["train", "--dataset", "csv:/no/such.csv", "--quiet"], 2, "stderr", "no/such.csv"),
    ],
)
def test_the_phyll_command_exits_with_mains_code_output_flushed_and_atexit_run(
    argv, code, stream, text
):
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
        f"sys.argv = ['phyll', *{argv!r}]\n"
        "from phyll.cli import run\nrun()"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == code
    assert text in getattr(done, stream)
    assert done.stderr.rstrip().endswith("atexit ran")

"""A run's memory is estimated before anything is allocated, refused over the budget in one line
naming what drives it, overridable with --max-memory; the estimate against measured peaks is
the slow test (three configurations, benchmarks/memory_estimate.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from phyll.cli import main
from phyll.memory import MemoryBudgetError, budget, check_fits, memory_limit, parse_size

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("text", "size"), [("8G", 8 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30))]
)
def test_sizes_parse(text, size):
    assert parse_size(text) == size


def test_max_memory_sets_the_budget_both_ways():
    with memory_limit(2**30):
        assert budget()[0] == 2**30
        with pytest.raises(MemoryBudgetError, match=r"--max-memory 1\.0 GB"):
            check_fits(2**31, "this", "less")
    with memory_limit(2**45):  # above what the machine has: the user says run anyway
        check_fits(2**44, "this", "less")


def test_a_run_too_big_names_the_option_before_allocating(tmp_path, capsys):
    argv = ["train", "--epochs", "1", "--quiet", "--width", "262144", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "--width 262,144" in line and "--max-memory" in line
    assert not (tmp_path / "r").exists()


def test_max_memory_lets_a_small_run_through_and_refuses_it_under_its_estimate(tmp_path):
    small = ["train", "--epochs", "1", "--quiet", "--width", "8", "--measurements", "8"]
    assert main([*small, "--max-memory", "64G", "--out", str(tmp_path / "a")]) == 0
    assert main([*small, "--max-memory", "1M", "--out", str(tmp_path / "b")]) == 2


@pytest.mark.slow
def test_the_estimate_is_within_30_percent_of_measured_peaks():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import memory_estimate
    finally:
        sys.path.remove(str(BENCHMARKS))
    errors = {}
    for name, options in memory_estimate.CONFIGS.items():
        result = memory_estimate.measure(options)
        errors[name] = result["estimate"] / result["peak"] - 1
    # measured (docs/reliability.md): +17 %, -5 %, -10 %
    assert all(-0.30 <= e <= 0.30 for e in errors.values()), errors

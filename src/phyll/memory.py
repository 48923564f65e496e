"""Memory before it is spent: what this process holds, what the machine has left, the budget.

An experiment estimates its peak from its resolved configuration before it allocates anything
(:mod:`phyll.experiments.memory_plan`); :func:`check_fits` compares an estimate with the
budget and refuses in one line naming what drives it. The budget is the memory available now
(Linux: ``MemAvailable``, lowered by a cgroup limit) on top of what this process already holds,
or what ``--max-memory`` / :func:`memory_limit` says. ``--max-memory`` both lowers the budget
(leave room for other work) and raises it (run anyway, e.g. when swap is configured).
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phyll.errors import ConfigError, UserError

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
#: the budget set by ``--max-memory`` (bytes), None: the memory available
_limit: int | None = None


class MemoryBudgetError(UserError, MemoryError):
    """What a run (or a file, or a served system) would need exceeds the memory it may use."""


def parse_size(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"2000000"`` (bytes) → bytes; one line otherwise."""
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise ConfigError(f"--max-memory: expected a size such as 8G, 512M or 1.5GB, got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if not 2**20 <= value <= 2**50:
        raise ConfigError(f"--max-memory must be between 1M and 1P, got {text!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``640 MB``, ``12 KB`` (powers of 1024, one decimal from GB up)."""
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f} {unit}" if unit in ("TB", "GB") else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``VmRSS``; elsewhere its peak so far)."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    return peak_resident_bytes()


def peak_resident_bytes() -> int:
    """This process's peak resident memory so far (``VmHWM``, else ``ru_maxrss``)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_left() -> int | None:
    """What the process's cgroup (v2, else v1) still allows, None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max":
                return None
            limit, usage = int(limit_text), int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:  # v1's "no limit"
            return None
        return max(0, limit - usage)
    return None


def available_bytes() -> int | None:
    """Memory the machine can still give this process (None where it cannot be told)."""
    values = [v for v in (_meminfo_available(), _cgroup_left()) if v is not None]
    return min(values) if values else None


def budget() -> tuple[int | None, str]:
    """The peak this process may reach, and how it was set: ``--max-memory``, or what it holds
    plus what is available (None where the platform does not say)."""
    if _limit is not None:
        return _limit, f"--max-memory {format_bytes(_limit)}"
    available = available_bytes()
    if available is None:
        return None, "unknown"
    held = resident_bytes()
    return held + available, f"{format_bytes(available)} available + {format_bytes(held)} held"


@contextmanager
def memory_limit(limit: int | None) -> Iterator[None]:
    """Inside, the budget is ``limit`` bytes (``--max-memory``; None: the memory available)."""
    global _limit
    before, _limit = _limit, limit
    try:
        yield
    finally:
        _limit = before


def check_fits(peak: int, what: str, remedy: str) -> None:
    """Refuse, in one line, a ``peak`` (bytes, of the whole process) over the budget.

    ``what`` says what needs it and what drives it (``"the run (network weights 40.0 GB,
    driven by --width 1048576)"``); ``remedy`` how to need less.
    """
    limit, source = budget()
    if limit is None or peak <= limit:
        return
    raise MemoryBudgetError(
        f"{what} would need about {format_bytes(peak)} of memory, more than the "
        f"{format_bytes(limit)} it may use ({source}): {remedy}, or pass --max-memory SIZE "
        "to run it anyway"
    )

"""The machine a run measures itself on: cores, load, torch's threads, the process's start.

Timings mean little without the machine's state: two torch threads on two busy cores ran a
training phase 8× slower than one thread. Every run summary records :func:`machine_info`, and
the command line chooses torch's thread count with :func:`choose_threads` (``--threads``):
``auto`` takes the cores that the load average leaves idle, at least one, so that phyll never
oversubscribes a machine that is already busy, and uses every core of an idle one.
"""

from __future__ import annotations

import os
import platform
import time
from functools import cache
from pathlib import Path
from typing import Any

import torch

from phyll.errors import ConfigError

#: when this module was first imported (perf_counter clock): the latest possible process start
_IMPORTED = time.perf_counter()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the CPU count elsewhere)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (None where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def choose_threads(requested: int | str | None) -> int:
    """torch's thread count for ``--threads``: a number as given; ``auto`` (or None) the
    available cores less the busy ones (the 1-minute load average, rounded), at least 1."""
    cores = available_cores()
    if requested is None or requested == "auto":
        load = load_average()
        busy = round(load[0]) if load else 0
        return max(1, min(cores, cores - busy))
    try:
        threads = int(requested)
    except (TypeError, ValueError):
        raise ConfigError(f"--threads must be a number >= 1 or 'auto', got {requested!r}") from None
    if threads < 1:
        raise ConfigError(f"--threads must be a number >= 1 or 'auto', got {threads}")
    return threads


def use_threads(requested: int | str | None) -> int:
    """Set torch's intra-op thread count (:func:`choose_threads`) and return it."""
    threads = choose_threads(requested)
    torch.set_num_threads(threads)
    return threads


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's processor)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def process_start() -> float:
    """When this process started, on the :func:`time.perf_counter` clock: from the kernel's
    record on Linux (``/proc/self/stat``), else when phyll was first imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5): start time after boot, in ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED
    return time.perf_counter() - max(age, 0.0)


def machine_info() -> dict[str, Any]:
    """What a summary records of the machine: CPU model, cores, torch threads, load."""
    return {
        "cpu_model": cpu_model(),
        "cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
    }

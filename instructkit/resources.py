"""Limits that keep a command from exhausting the machine: worker counts."""

from __future__ import annotations

import os

from instructkit.errors import OptionsError

WORKERS_PER_CORE = 4  # beyond this, more workers only add memory and context switches


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def max_workers() -> int:
    return max(8, WORKERS_PER_CORE * available_cores())


def check_num_proc(num_proc: int, option: str = "--num-proc") -> int:
    """Refuse worker counts below 1 or far above the core count, in one line."""
    if num_proc < 1:
        raise OptionsError(f"{option} must be at least 1, got {num_proc}.")
    limit = max_workers()
    if num_proc > limit:
        raise OptionsError(
            f"{option} {num_proc} is far above the {available_cores()} core(s) available: "
            f"use at most {limit} (the output is the same for any value)."
        )
    return num_proc


def workers_for(num_proc: int, jobs: int) -> int:
    """Never more workers than there are jobs (1: run in this process)."""
    return max(1, min(num_proc, jobs))

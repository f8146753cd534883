"""Phase profile of one command (``--profile``, ``INSTRUCTKIT_PROFILE=1``): where time goes.

Stages wrap their phases in :func:`phase`; nothing is recorded unless profiling is on, so the
wrappers cost one boolean test. The report gives each phase's wall time and CPU time (the whole
process's CPU for top-level phases, the calling thread's for phases marked ``thread=True``,
which may run beside others in a background thread), and the start-up before the command ran
(interpreter, imports, plugin loading), read from ``/proc`` where there is one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

ENV_VAR = "INSTRUCTKIT_PROFILE"

_enabled = os.environ.get(ENV_VAR, "") not in ("", "0", "false")
_lock = threading.Lock()
# name -> [wall seconds, cpu seconds, calls, overlapped, page faults]
_phases: dict[str, list[float]] = {}
# (perf_counter, process_time, page faults) at the command start
_started: tuple[float, float, int] | None = None
_startup: float | None = None


def enable(on: bool = True) -> None:
    """Turn profiling on (the ``--profile`` flag) and forget earlier figures."""
    global _enabled
    _enabled = on
    reset()


def enabled() -> bool:
    return _enabled


def reset() -> None:
    global _started, _startup
    with _lock:
        _phases.clear()
    _snapshots.clear()
    _started = None
    _startup = None


def command_started() -> None:
    """Mark the start of the command body: everything before it counts as start-up."""
    global _started, _startup
    if not _enabled:
        return
    _started = (time.perf_counter(), time.process_time(), _faults(thread=False))
    _startup = process_age()


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), else None."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        return max(0.0, uptime - int(fields[19]) / ticks)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def add(
    name: str, wall: float, cpu: float = 0.0, overlapped: bool = False, faults: int = 0
) -> None:
    """Add time to a phase (for timings taken by the caller)."""
    if not _enabled:
        return
    with _lock:
        entry = _phases.setdefault(name, [0.0, 0.0, 0, 0.0, 0])
        entry[0] += wall
        entry[1] += cpu
        entry[2] += 1
        entry[3] = max(entry[3], 1.0 if overlapped else 0.0)
        entry[4] += faults


# Page faults: a page the process touches for the first time costs a fault and a zeroed page.
# On virtual machines that is ~10 us a page when the host backs it afresh (0.3 GB/s where a
# copy runs at 10 GB/s), so the count tells where fresh memory, not work, is the cost.
try:
    import resource
except ImportError:  # Windows: no page-fault counts (the column shows 0)
    resource = None  # type: ignore[assignment]


def _faults(thread: bool) -> int:
    if resource is None:
        return 0
    who = getattr(resource, "RUSAGE_THREAD", None) if thread else resource.RUSAGE_SELF
    if who is None:
        return 0
    usage = resource.getrusage(who)
    return usage.ru_minflt + usage.ru_majflt


@contextmanager
def phase(name: str, thread: bool = False) -> Iterator[None]:
    """Time the block as phase ``name`` (summed over calls)."""
    if not _enabled:
        yield
        return
    clock = time.thread_time if thread else time.process_time
    wall, cpu, faults = time.perf_counter(), clock(), _faults(thread)
    try:
        yield
    finally:
        spent = time.perf_counter() - wall
        add(name, spent, clock() - cpu, overlapped=thread, faults=_faults(thread) - faults)


def report() -> str:
    """The phase table: start-up, each phase in first-use order, the rest, the total."""
    lines = [f"{'phase':<40} {'wall s':>8} {'cpu s':>8} {'calls':>6} {'faults':>8}"]
    if _startup is not None:
        cpu = _started[1] if _started is not None else 0.0
        before = f"{_started[2]:>8,}" if _started is not None else ""
        lines.append(
            f"{'startup (interpreter, imports)':<40} {_startup:8.3f} {cpu:8.3f} {1:>6} {before}"
        )
    with _lock:
        phases = {k: list(v) for k, v in _phases.items()}
    top_wall = 0.0
    for name, (wall, cpu, calls, overlapped, faults) in phases.items():
        label = f"{name} (thread)" if overlapped else name
        lines.append(f"{label:<40} {wall:8.3f} {cpu:8.3f} {int(calls):>6} {int(faults):>8,}")
        if not overlapped and not name.startswith("  "):
            top_wall += wall
    if _started is not None:
        wall = time.perf_counter() - _started[0]
        cpu = time.process_time() - _started[1]
        lines.append(
            f"{'other (command body)':<40} {max(0.0, wall - top_wall):8.3f} {'':>8} {'':>6}"
        )
        total = wall + (_startup or 0.0)
        lines.append(
            f"{'total (process)':<40} {total:8.3f} {time.process_time():8.3f} {'':>6} "
            f"{_faults(thread=False):>8,}"
        )
        lines.append(f"{'  of which command body':<40} {wall:8.3f} {cpu:8.3f} {'':>6}")
    lines.extend(f"{label}: {line}" for label, line in _snapshots.items())
    memory = memory_line()
    if memory:
        lines.append(f"at the end: {memory}")
    return "\n".join(lines)


_snapshots: dict[str, str] = {}  # the last line per label


def memory_snapshot(label: str) -> None:
    """Record the memory line now (printed with the report), e.g. while inputs are mapped."""
    if _enabled:
        line = memory_line()
        if line:
            _snapshots[label] = line


def memory_line() -> str | None:
    """Peak RSS and what the resident memory is now: anonymous (the process's own) vs file
    pages (memory-mapped inputs and outputs, shared with the page cache), from ``/proc``."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:
        return None
    mb = {k: int(v.split()[0]) / 1024 for k, v in fields.items() if v.strip().endswith("kB")}
    if "VmHWM" not in mb:
        return None
    return (
        f"peak RSS {mb['VmHWM']:,.0f} MB; RSS {mb.get('VmRSS', 0):,.0f} MB = "
        f"anonymous {mb.get('RssAnon', 0):,.0f} + file-backed (mapped files) "
        f"{mb.get('RssFile', 0):,.0f} + shared {mb.get('RssShmem', 0):,.0f}"
    )


def print_report(stream: TextIO | None = None) -> None:
    """Print the phase table (to stderr by default) when profiling is on."""
    if _enabled:
        print(report(), file=stream or sys.stderr, flush=True)

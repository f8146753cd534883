"""The mix interleaving schedule alone: rows x tasks at 3, 50 and 500 tasks (issue 17).

    python benchmarks/bench_mix_schedule.py                       # 1.2M rows
    python benchmarks/bench_mix_schedule.py --rows 1200000 --reference-rows 120000

For each task count, two quota shapes: equal weights (Webster's sequence passes the check)
and Zipf-like weights (it does not: the earliest-deadline schedule is built). Timed: the
schedule with its prefix check (`schedule_chunks`), then the written mixture's prefix
checker, in this process. `--reference-rows` also times the implementation before issue 17
(a per-row loop over every task for the deadline schedule, and a per-task scan for the prefix
error) on fewer rows, and checks that both give the same task ids.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from instructkit.mix import quotas as mix_quotas  # noqa: E402
from instructkit.rounding import largest_remainder  # noqa: E402


def reference_schedule(quotas: Sequence[int], chunk_rows: int) -> Iterator[np.ndarray]:
    """schedule_chunks as it was before issue 17 (same output, O(rows x tasks))."""
    webster = mix_quotas._webster_chunks
    if len(quotas) > 3 and reference_deviation(quotas, webster(quotas, chunk_rows)) > 1:
        yield from reference_deadline(quotas, chunk_rows)
        return
    yield from webster(quotas, chunk_rows)


def reference_deadline(quotas: Sequence[int], chunk_rows: int) -> Iterator[np.ndarray]:
    total = sum(quotas)
    taken = [0] * len(quotas)
    chunk = np.empty(min(chunk_rows, total), dtype=np.int32)
    filled = 0
    for position in range(1, total + 1):
        best, best_deadline = -1, total + 2
        for t, q in enumerate(quotas):
            j = taken[t]
            if j >= q or -(-j * total // q) > position:
                continue
            deadline = (j + 1) * total // q + 1
            if deadline < best_deadline:
                best, best_deadline = t, deadline
        taken[best] += 1
        chunk[filled] = best
        filled += 1
        if filled == len(chunk) or position == total:
            yield chunk[:filled].copy()
            filled = 0


def reference_deviation(quotas: Sequence[int], chunks: Iterator[np.ndarray]) -> float:
    total = sum(quotas)
    counts = np.zeros(len(quotas), dtype=np.int64)
    done, worst = 0, 0
    for chunk in chunks:
        positions = np.arange(done + 1, done + len(chunk) + 1, dtype=np.int64)
        for t, q in enumerate(quotas):
            running = counts[t] + np.cumsum(chunk == t)
            worst = max(worst, int(np.abs(running * total - positions * q).max(initial=0)))
            counts[t] = running[-1] if len(running) else counts[t]
        done += len(chunk)
    return worst / total if total else 0.0


def make_quotas(tasks: int, rows: int, shape: str) -> list[int]:
    weights = np.ones(tasks) if shape == "equal" else 1.0 / np.arange(1, tasks + 1) ** 0.8
    return largest_remainder(list(weights / weights.sum() * rows), rows)


def timed(quotas: Sequence[int], schedule, deviation) -> tuple[float, float, np.ndarray, float]:
    t0 = time.perf_counter()
    chunks = list(schedule(quotas, 65_536))
    t1 = time.perf_counter()
    error = deviation(quotas, iter(chunks))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, np.concatenate(chunks), error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--tasks", default="3,50,500")
    parser.add_argument("--reference-rows", type=int, default=0, help="0: skip the reference")
    parser.add_argument("--reference-max-tasks", type=int, default=50)
    args = parser.parse_args()
    print("| tasks | quotas | rows | path | schedule (s) | prefix check (s) | max error |")
    print("|--:|---|--:|---|--:|--:|--:|")
    for tasks in [int(t) for t in args.tasks.split(",")]:
        for shape in ("equal", "zipf"):
            quotas = make_quotas(tasks, args.rows, shape)
            fast = mix_quotas._sorted_deadlines_released(quotas, 65_536)
            s, c, ids, err = timed(
                quotas, mix_quotas.schedule_chunks, mix_quotas.max_prefix_deviation
            )
            webster = tasks <= 3 or mix_quotas.max_prefix_deviation(
                quotas, mix_quotas._webster_chunks(quotas, 65_536)) <= 1  # fmt: skip
            path = "webster" if webster else ("deadline, numpy" if fast else "deadline, heap")
            print(f"| {tasks} | {shape} | {args.rows:,} | {path} | {s:.2f} | {c:.2f} | {err:.2f} |")
            if args.reference_rows and tasks <= args.reference_max_tasks:
                small = make_quotas(tasks, args.reference_rows, shape)
                s2, c2, ids2, err2 = timed(small, reference_schedule, reference_deviation)
                s3, c3, ids3, err3 = timed(
                    small, mix_quotas.schedule_chunks, mix_quotas.max_prefix_deviation
                )
                same = bool(np.array_equal(ids2, ids3)) and err2 == err3
                print(
                    f"| {tasks} | {shape} | {args.reference_rows:,} | before (reference) | "
                    f"{s2:.2f} | {c2:.2f} | {err2:.2f} |  <- now {s3:.2f} / {c3:.2f}; "
                    f"identical: {same}"
                )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

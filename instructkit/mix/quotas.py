"""The arithmetic of a mixture: integer quotas, the interleaving schedule, the rows drawn per task.

Everything here is plain numpy on a handful of numbers per task, so it can be tested exhaustively
and reused by plugins. Nothing holds one Python object per output row: the schedule and the rows
are generated in chunks, so memory does not grow with the size of the mixture.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from instructkit.errors import MixError
from instructkit.mix.spec import MixSpec, TaskSpec
from instructkit.rounding import largest_remainder

# ---------------------------------------------------------------- quotas


@dataclass(frozen=True)
class Quota:
    """How many train rows one task gets, and the target it was rounded from."""

    rule: str  # "weight 3", "count 500", "epochs 2", "proportional", "temperature"
    target_rows: float  # before rounding
    rows: int


def compute_quotas(
    spec: MixSpec, names: Sequence[str], available: Sequence[int], tokens_per_row: Sequence[float]
) -> list[Quota]:
    """Turn the spec into integer row quotas per task (tokens_per_row is 1 for unit: examples)."""
    fixed = _fixed_rows(spec, available)
    sizes = [n * u for n, u in zip(available, tokens_per_row, strict=True)]  # in the spec's unit
    share = [i for i, rows in enumerate(fixed) if rows is None]
    if not share:
        if spec.total is not None and spec.total != sum(r or 0 for r in fixed):
            raise MixError(
                f"'total' is {spec.total} but the counts/epochs add up to "
                f"{sum(r or 0 for r in fixed)} rows: remove 'total' or make them agree."
            )
        return [
            Quota(_rule(spec, t), float(r or 0), r or 0)
            for t, r in zip(spec.tasks, fixed, strict=True)
        ]
    basis = _share_basis(spec, share, sizes, names)
    share_units = _share_units(spec, share, basis, sizes, fixed, tokens_per_row)
    weights = [basis[i] / sum(basis.values()) for i in share]
    targets = [w * share_units / tokens_per_row[i] for w, i in zip(weights, share, strict=True)]
    rounded = largest_remainder(targets, round(sum(targets)))
    quotas = [
        Quota(_rule(spec, t), float(r or 0), r or 0) for t, r in zip(spec.tasks, fixed, strict=True)
    ]
    for i, target, rows in zip(share, targets, rounded, strict=True):
        quotas[i] = Quota(_rule(spec, spec.tasks[i]), target, rows)
    return quotas


def _fixed_rows(spec: MixSpec, available: Sequence[int]) -> list[int | None]:
    rows: list[int | None] = []
    for task, n in zip(spec.tasks, available, strict=True):
        if task.count is not None:
            rows.append(task.count)
        elif task.epochs is not None:
            rows.append(math.floor(task.epochs * n + 0.5))
        else:
            rows.append(None)
    return rows


def _share_basis(
    spec: MixSpec, share: list[int], sizes: Sequence[float], names: Sequence[str]
) -> dict[int, float]:
    """Unnormalised shares of the tasks without a count or epochs."""
    basis: dict[int, float] = {}
    for i in share:
        task = spec.tasks[i]
        if spec.strategy == "weights":
            basis[i] = task.weight if task.weight is not None else 1.0
            continue
        if sizes[i] <= 0:
            raise MixError(f"Task '{names[i]}' has no train rows left: remove it or give a count.")
        cap = task.cap if task.cap is not None else spec.cap
        rate = min(sizes[i], cap) if cap is not None else sizes[i]
        temperature = spec.temperature or 1.0
        basis[i] = rate if spec.strategy == "proportional" else rate ** (1 / temperature)
    return basis


def _share_units(
    spec: MixSpec,
    share: list[int],
    basis: dict[int, float],
    sizes: Sequence[float],
    fixed: Sequence[int | None],
    tokens_per_row: Sequence[float],
) -> float:
    """How much of the total (rows or tokens) goes to the shared tasks."""
    fixed_units = sum((r or 0) * u for r, u in zip(fixed, tokens_per_row, strict=True))
    if spec.total is not None:
        left = spec.total - fixed_units
        if left <= 0:
            raise MixError(
                f"The counts/epochs already take {fixed_units:g} of 'total: {spec.total}': "
                f"raise 'total' or lower the counts."
            )
        return float(left)
    if spec.strategy == "weights":
        # The largest mixture in which no weighted task repeats a row.
        whole = sum(basis.values())
        return math.floor(min(sizes[i] * whole / basis[i] for i in share))
    caps = [spec.tasks[i].cap if spec.tasks[i].cap is not None else spec.cap for i in share]
    return float(
        sum(
            min(sizes[i], c) if c is not None else sizes[i]
            for i, c in zip(share, caps, strict=True)
        )
    )


def _rule(spec: MixSpec, task: TaskSpec) -> str:
    if task.count is not None:
        return f"count {task.count}"
    if task.epochs is not None:
        return f"epochs {task.epochs:g}"
    if spec.strategy == "weights":
        return f"weight {task.weight if task.weight is not None else 1.0:g}"
    return spec.strategy


# ---------------------------------------------------------------- schedule


def schedule_chunks(quotas: Sequence[int], chunk_rows: int = 65_536) -> Iterator[np.ndarray]:
    """Yield the task index of every train row, in chunks, keeping every prefix within one row.

    Row j of task t sits at (j + 1/2) / q_t of the way through the output (Webster's
    divisor sequence). For up to three tasks that keeps every prefix within one row of its
    target share (the error is at most 1/2 + f_t/2); for more tasks it is checked first and,
    if it would break the bound, an earliest-deadline schedule that always meets it is used.
    """
    if len(quotas) > 3 and max_prefix_deviation(quotas, _webster_chunks(quotas, chunk_rows)) > 1:
        yield from _deadline_chunks(quotas, chunk_rows)
        return
    yield from _webster_chunks(quotas, chunk_rows)


def _webster_chunks(quotas: Sequence[int], chunk_rows: int) -> Iterator[np.ndarray]:
    total = sum(quotas)
    start = [0] * len(quotas)
    for window_end in range(chunk_rows, total + chunk_rows, chunk_rows):
        end = min(window_end, total)
        ids, keys = [], []
        for t, q in enumerate(quotas):
            stop = _rows_before(end, q, total)
            j = np.arange(start[t], stop, dtype=np.int64)
            # Key relative to the window start keeps float64 exact enough for ~1e9 rows.
            origin = window_end - chunk_rows
            keys.append(((2 * j + 1) * total - 2 * origin * q) / q if q else j.astype(float))
            ids.append(np.full(len(j), t, dtype=np.int32))
            start[t] = stop
        task_ids, order_keys = np.concatenate(ids), np.concatenate(keys)
        if len(task_ids):  # a window can end up empty when the one before took a row more
            yield task_ids[np.lexsort((task_ids, order_keys))]


def _rows_before(position: int, quota: int, total: int) -> int:
    """How many rows j of a task have (j + 1/2) / quota < position / total (exact integers)."""
    if position >= total:
        return quota
    numerator = 2 * position * quota - total
    return min(quota, max(0, -(-numerator // (2 * total))))


def _deadline_chunks(quotas: Sequence[int], chunk_rows: int) -> Iterator[np.ndarray]:
    """Earliest-deadline-first over each row's window [release, deadline]; always within 1.

    Row j of task t is released at ceil(j Q / q_t) and due by floor((j + 1) Q / q_t) + 1; at
    each position the released row with the earliest deadline goes first (ties: lower task).
    Whenever the rows sorted by (deadline, task) are each released by the position that order
    gives them, EDF picks exactly that order, which numpy builds in windows in about
    O(rows log rows), whatever the number of tasks; that is checked first (a vectorised pass),
    and otherwise a heap-based EDF (O(rows log tasks)) gives the same rows one by one.
    """
    size = min(chunk_rows, sum(quotas))
    if _sorted_deadlines_released(quotas, chunk_rows):
        yield from _rechunk(_sorted_deadline_windows(quotas, chunk_rows), size)
    else:
        yield from _heap_deadline_chunks(quotas, size)


def _deadline_counts(limit: int, q: np.ndarray, total: int) -> np.ndarray:
    """Per task: how many rows j have deadline floor((j + 1) Q / q) + 1 < ``limit``."""
    # d <= X  <=>  (j + 1) Q <= X q - 1; with X = limit - 1
    counts = ((limit - 1) * q - 1) // total
    return np.clip(counts, 0, q)


def _sorted_deadline_windows(
    quotas: Sequence[int], chunk_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every row sorted by (deadline, task), in windows of deadlines: (task ids, releases)."""
    total = sum(quotas)
    q = np.asarray(quotas, dtype=np.int64)
    tasks = np.arange(len(q), dtype=np.int64)
    low = np.zeros(len(q), dtype=np.int64)
    limit = 0
    while int(low.sum()) < total:
        limit += max(1, chunk_rows)
        high = _deadline_counts(limit, q, total) if limit <= total + 1 else q
        counts = high - low
        task_ids = np.repeat(tasks, counts)
        starts = np.cumsum(counts) - counts
        j = low[task_ids] + np.arange(len(task_ids), dtype=np.int64) - starts[task_ids]
        qt = q[task_ids]
        deadline = (j + 1) * total // qt + 1
        order = np.lexsort((task_ids, deadline))
        release = -(-j * total // qt)
        yield task_ids[order], release[order]
        low = high


def _sorted_deadlines_released(quotas: Sequence[int], chunk_rows: int) -> bool:
    position = 0
    for _, release in _sorted_deadline_windows(quotas, chunk_rows):
        positions = np.arange(position + 1, position + len(release) + 1, dtype=np.int64)
        if (release > positions).any():
            return False
        position += len(release)
    return True


def _rechunk(windows: Iterator[tuple[np.ndarray, np.ndarray]], size: int) -> Iterator[np.ndarray]:
    """The task ids of the windows in chunks of exactly ``size`` rows (the last may be short)."""
    pending: list[np.ndarray] = []
    count = 0
    for task_ids, _ in windows:
        pending.append(task_ids.astype(np.int32))
        count += len(task_ids)
        if count >= size:
            joined = np.concatenate(pending)
            full = len(joined) - len(joined) % size
            yield from (joined[i : i + size] for i in range(0, full, size))
            pending, count = [joined[full:]], len(joined) - full
    if count:
        yield np.concatenate(pending)


def _heap_deadline_chunks(quotas: Sequence[int], size: int) -> Iterator[np.ndarray]:
    """EDF one row at a time, with heaps of released (deadline, task) and waiting rows."""
    total = sum(quotas)
    taken = [0] * len(quotas)
    ready: list[tuple[int, int]] = []
    waiting = [(0, t) for t, q in enumerate(quotas) if q > 0]  # (release, task)
    heapq.heapify(waiting)
    chunk = np.empty(size, dtype=np.int32)
    filled = 0
    for position in range(1, total + 1):
        while waiting and waiting[0][0] <= position:
            _, t = heapq.heappop(waiting)
            heapq.heappush(ready, ((taken[t] + 1) * total // quotas[t] + 1, t))
        if not ready:  # impossible: some task always has a released row
            raise AssertionError(f"no schedulable task at row {position} for quotas {quotas}")
        _, best = heapq.heappop(ready)
        taken[best] += 1
        if taken[best] < quotas[best]:
            heapq.heappush(waiting, (-(-taken[best] * total // quotas[best]), best))
        chunk[filled] = best
        filled += 1
        if filled == size or position == total:
            yield chunk[:filled].copy()
            filled = 0


def max_prefix_deviation(quotas: Sequence[int], chunks: Iterator[np.ndarray]) -> float:
    """The largest |count_t(p) - p * q_t / Q| over every prefix p and task t."""
    checker = PrefixChecker(quotas)
    for chunk in chunks:
        checker.update(chunk)
    return checker.worst / checker.total if checker.total else 0.0


class PrefixChecker:
    """The largest prefix error of a schedule fed chunk by chunk, in O(rows) per chunk.

    ``worst`` is max over p, t of |count_t(p) Q - p q_t| (divide by Q for rows) once the
    whole schedule was fed. Between two rows of a task its error only falls, so the extremes
    are at the positions of its rows (just after: up) and just before them (down); the end of
    the schedule (error 0) and tasks without rows add nothing.
    """

    def __init__(self, quotas: Sequence[int]) -> None:
        self.quotas = np.asarray(quotas, dtype=np.int64)
        self.total = int(self.quotas.sum())
        self.counts = np.zeros(len(self.quotas), dtype=np.int64)
        self.done, self.worst = 0, 0

    def update(self, task_ids: np.ndarray) -> None:
        n = len(task_ids)
        if n == 0:
            return
        task_ids = np.asarray(task_ids, dtype=np.int64)
        if len(self.quotas) <= 8:  # few tasks: one vectorised scan per task is cheaper
            self._update_per_task(task_ids)
            return
        order = np.argsort(task_ids, kind="stable")
        grouped = task_ids[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        rank = np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))
        before = np.empty(n, dtype=np.int64)
        before[order] = self.counts[grouped] + rank  # rows of the task before this one
        position = self.done + 1 + np.arange(n, dtype=np.int64)
        q = self.quotas[task_ids]
        after_error = np.abs((before + 1) * self.total - position * q).max()
        before_error = np.abs(before * self.total - (position - 1) * q).max()
        self.worst = max(self.worst, int(after_error), int(before_error))
        self.counts += np.bincount(task_ids, minlength=len(self.counts))
        self.done += n

    def _update_per_task(self, task_ids: np.ndarray) -> None:
        positions = np.arange(self.done + 1, self.done + len(task_ids) + 1, dtype=np.int64)
        for t, q in enumerate(self.quotas.tolist()):
            running = self.counts[t] + np.cumsum(task_ids == t)
            error = int(np.abs(running * self.total - positions * q).max(initial=0))
            self.worst = max(self.worst, error)
            self.counts[t] = running[-1]
        self.done += len(task_ids)


# ---------------------------------------------------------------- rows per task


class TaskDraw:
    """The source rows of one task in output order: seeded full passes plus a seeded remainder.

    Occurrence ``k`` is row ``perm_p[k % n]`` of pass ``p = k // n``; each pass is its own
    permutation, so a row repeats only once every row has been used (⌊q/n⌋ or ⌈q/n⌉ times).
    """

    def __init__(self, candidates: np.ndarray, quota: int, seed: int, epoch: int, name: str):
        self.candidates = candidates
        self.quota = quota
        self._seed = [seed, epoch, zlib.crc32(name.encode())]
        self._pass: tuple[int, np.ndarray] | None = None

    @property
    def repetition(self) -> float:
        """Average times each available row is used (quota / available rows)."""
        return self.quota / len(self.candidates) if len(self.candidates) else 0.0

    def permutation(self, pass_index: int) -> np.ndarray:
        if self._pass is None or self._pass[0] != pass_index:
            rng = np.random.default_rng([*self._seed, pass_index])
            self._pass = (pass_index, rng.permutation(len(self.candidates)))
        return self._pass[1]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Source row indices of occurrences ``start..stop-1``."""
        n = len(self.candidates)
        if stop > start and n == 0:
            raise MixError("A task with no rows left was given a quota: lower its count.")
        out = np.empty(stop - start, dtype=np.int64)
        k = start
        while k < stop:
            pass_index, offset = divmod(k, n)
            take = min(stop - k, n - offset)
            perm = self.permutation(pass_index)
            out[k - start : k - start + take] = self.candidates[perm[offset : offset + take]]
            k += take
        return out

    def use_counts(self) -> np.ndarray:
        """How often each available row is used (for the repetition report and tests)."""
        full, extra = divmod(self.quota, len(self.candidates)) if len(self.candidates) else (0, 0)
        counts = np.full(len(self.candidates), full, dtype=np.int64)
        counts[self.permutation(full)[:extra]] += 1
        return counts

"""The fast schedule and prefix checker against the original implementations, row for row.

The originals (a per-row EDF loop over every task, a per-task deviation scan) are copied here
as the reference: the mixture's bytes depend on the schedule and its chunk sizes, so the fast
versions must give the same task ids in the same chunks, at 3, 50 and 500 tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from instructkit.mix.quotas import (
    PrefixChecker,
    _deadline_chunks,
    _heap_deadline_chunks,
    _sorted_deadlines_released,
    max_prefix_deviation,
    schedule_chunks,
)


def reference_deadline_chunks(quotas: Sequence[int], chunk_rows: int) -> Iterator[np.ndarray]:
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
        assert best >= 0
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


def _quota_cases() -> list[list[int]]:
    rng = np.random.default_rng(17)
    cases = [[5, 3, 2], [1, 1, 1, 1], [7, 0, 3, 1, 9], [1000, 1, 1, 1, 1], [3] * 50]
    # the reference costs rows x tasks of Python: small quotas at many tasks
    for tasks, high in ((4, 400), (7, 200), (50, 20), (500, 3)):
        for _ in range(2):
            cases.append([int(x) for x in rng.integers(0, high, tasks)])
            cases.append([int(x) for x in rng.zipf(1.6, tasks).clip(1, high * 5)])
    return [c for c in cases if sum(c)]


@pytest.mark.parametrize("quotas", _quota_cases())
def test_deadline_schedule_matches_reference_chunk_for_chunk(quotas):
    for chunk_rows in (7, 65_536):
        ours = list(_deadline_chunks(quotas, chunk_rows))
        ref = list(reference_deadline_chunks(quotas, chunk_rows))
        assert [len(c) for c in ours] == [len(c) for c in ref]
        assert np.array_equal(np.concatenate(ours), np.concatenate(ref))
        heap = list(_heap_deadline_chunks(quotas, min(chunk_rows, sum(quotas))))
        assert np.array_equal(np.concatenate(heap), np.concatenate(ref))


@pytest.mark.parametrize("quotas", _quota_cases())
def test_prefix_checker_matches_reference(quotas):
    for chunk_rows in (97, 1000):
        chunks = list(schedule_chunks(quotas, chunk_rows))
        expected = reference_deviation(quotas, iter(chunks))
        assert max_prefix_deviation(quotas, iter(chunks)) == expected
        assert expected <= 1  # every prefix within one row of its share
        # an arbitrary (bad) schedule too: all of task 0, then task 1, ...
        naive = np.repeat(np.arange(len(quotas)), quotas).astype(np.int32)
        pieces = np.array_split(naive, 3)
        assert max_prefix_deviation(quotas, iter(pieces)) == reference_deviation(
            quotas, iter(pieces)
        )


def test_both_deadline_paths_are_exercised():
    cases = _quota_cases()
    fast = [c for c in cases if _sorted_deadlines_released(c, 64)]
    slow = [c for c in cases if not _sorted_deadlines_released(c, 64)]
    assert fast and slow, (len(fast), len(slow))


def test_schedule_at_500_tasks_is_exact_and_quick():
    quotas = [400] * 250 + [300] * 150 + [1200] * 100  # 280,000 rows
    checker = PrefixChecker(quotas)
    sizes = []
    for chunk in schedule_chunks(quotas, 65_536):
        checker.update(chunk)
        sizes.append(len(chunk))
    assert checker.worst / checker.total <= 1
    assert np.array_equal(checker.counts, quotas)
    assert sizes[:-1] == [65_536] * (len(sizes) - 1)


def test_row_tokens_are_counted_in_bounded_batches(monkeypatch):
    import pyarrow as pa

    from instructkit.artifacts.dataset import SCHEMA
    from instructkit.mix import run as mix_run
    from instructkit.mix import write as mix_write

    monkeypatch.setattr(mix_run, "TOKEN_BATCH_ROWS", 7)
    monkeypatch.setattr(mix_write, "MAPPED_BYTES", 0)  # hand back every batch once read
    prompts = [f"p{i} " * (i % 5) for i in range(40)]
    rows_of = {
        "prompt": prompts,
        "completion": ["c"] * 40,
        "references": [["c"]] * 40,
        "source_index": list(range(40)),
    }
    columns = {f.name: rows_of.get(f.name, ["x"] * 40) for f in SCHEMA}
    whole = pa.table(columns, schema=SCHEMA)
    # several record batches, as a task read from several shards: rows are taken per batch
    table = pa.Table.from_batches(whole.slice(i, 10).to_batches()[0] for i in range(0, 40, 10))
    sizes: list[int] = []
    released: list[int] = []
    releasers = [lambda b=b: released.append(b) for b in range(4)]

    def count(texts: list[str]) -> list[int]:
        sizes.append(len(texts))
        return [len(t.split()) for t in texts]

    rows = np.array([3, 1, 4, 15, 9, 2, 6, 5, 35, 8, 39, 0, 7, 11, 12], dtype=np.int64)
    tokens = mix_run._row_tokens(table, rows, count, releasers)
    assert max(sizes) == 7 and sum(sizes) == len(rows)
    expected = [len((f"p{i} " * (i % 5) + "\nc").split()) for i in rows]
    assert tokens.tolist() == expected
    # rows 0-15 (batches 0, 1) in the first two token batches, then 35, 39 (batch 3)...
    assert set(released) == {0, 1, 3}  # each batch read handed back; batch 2 never read

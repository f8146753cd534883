"""Mix reads only the rows it writes: gathering per batch, pages handed back per task."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_mix import _rows, spec_for, write_rendered

from instructkit.artifacts import dataset as artifact
from instructkit.mix.run import mix_datasets
from instructkit.mix.write import RowGatherer


def _task_table(task: str, rows: int, batch: int) -> pa.Table:
    whole = _rows(task, "train", [f"prompt {task} {i}" for i in range(rows)])
    return pa.Table.from_batches(whole.to_batches(max_chunksize=batch))


def test_gather_matches_a_whole_table_take_and_hands_back_each_batch_read(monkeypatch):
    from instructkit.mix import write as mix_write

    monkeypatch.setattr(mix_write, "MAPPED_BYTES", 0)  # hand back after every batch read
    tables = [_task_table("a", 25, 7), _task_table("b", 3, 2), _task_table("c", 40, 9)]
    released: list[tuple[int, int]] = []
    releasers = [
        [lambda t=t, b=b: released.append((t, b)) for b in range(len(table.to_batches()))]
        for t, table in enumerate(tables)
    ]
    gatherer = RowGatherer(tables, releasers)
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 25, 30), 28 + rng.integers(0, 40, 50)])
    rng.shuffle(rows)  # tasks a and c only, interleaved, with repeats
    got = gatherer.take(rows)
    whole = pa.concat_tables(tables).combine_chunks()
    assert got.equals(whole.take(pa.array(rows)).replace_schema_metadata(None))
    read = sorted(
        {(0, r // 7) for r in rows if r < 25} | {(2, (r - 28) // 9) for r in rows if r >= 28}
    )
    assert released == read  # each batch read handed back once, none of task b


def test_gather_keeps_inputs_under_the_budget_mapped():
    tables = [_task_table("a", 25, 7), _task_table("c", 40, 9)]
    released: list[int] = []
    gatherer = RowGatherer(
        tables, [[lambda: released.append(1)] * 5, [lambda: released.append(1)] * 5]
    )
    gatherer.take(np.arange(65))
    assert released == []  # far below MAPPED_BYTES: nothing is re-read later


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_mapped_split_release_hands_back_pages_and_keeps_the_rows(tmp_path):
    big = ["x" * 4000 + str(i) for i in range(8000)]  # ~32 MB of prompts
    path = write_rendered(tmp_path, "big", 8000, texts=big)
    mapped = artifact.map_split(path, "train")
    before = _rss_file_mb()
    length = pc.sum(pc.utf8_length(mapped.table["prompt"])).as_py()  # reads every prompt
    touched = _rss_file_mb()
    mapped.release()
    released = _rss_file_mb()
    assert touched - before > 20, (before, touched)
    assert touched - released > 20, (touched, released)
    # still valid: the pages come back when read
    assert pc.sum(pc.utf8_length(mapped.table["prompt"])).as_py() == length
    assert mapped.table.equals(artifact.open_split(path, "train"))
    pc.sum(pc.utf8_length(mapped.table["prompt"]))
    again = _rss_file_mb()
    for release in mapped.batch_releasers():  # the same pages, batch by batch
        release()
    assert again - _rss_file_mb() > 20


def test_an_empty_shard_is_a_dataset_error(tmp_path):
    path = write_rendered(tmp_path, "t", 5)
    next((path / "train").glob("*.arrow")).write_bytes(b"")
    with pytest.raises(artifact.DatasetDirError, match="cannot be read"):
        artifact.map_split(path, "train")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_many_tasks_mix_keeps_mapped_pages_to_about_one_task(tmp_path, monkeypatch):
    """Every chunk takes a few rows of every task: reading them from the mapped inputs chunk
    by chunk would leave the pages of all tasks counted. Past MAPPED_BYTES of inputs the
    drawn rows are staged, one task at a time, and each task's pages handed back after it."""
    from instructkit.mix import write as mix_write

    monkeypatch.setattr(mix_write, "MIN_CHUNK_ROWS", 64)
    monkeypatch.setattr(mix_write, "CHUNK_BYTES", 64 * 1024)
    monkeypatch.setattr(mix_write, "MAPPED_BYTES", 4 * 1024 * 1024)
    text = ["y" * 3000 + str(i) for i in range(1500)]  # ~4.5 MB per task
    paths = [write_rendered(tmp_path, f"t{i}", 1500, texts=text) for i in range(8)]
    mapped_mb: list[float] = []
    real = mix_write.RowGatherer.take

    def take(self: RowGatherer, rows: np.ndarray) -> pa.Table:
        chunk = real(self, rows)
        mapped_mb.append(_rss_file_mb())
        return chunk

    monkeypatch.setattr(mix_write.RowGatherer, "take", take)
    start = _rss_file_mb()
    spec = spec_for(*((p, {}) for p in paths), total=2400, dedup=False, decontaminate="off")
    mix_datasets(spec, tmp_path / "mix")
    assert len(mapped_mb) >= 8  # a take per task (staging), then chunks of the staged rows
    assert max(mapped_mb) - start < 15, (start, mapped_mb)  # 8 tasks x 4.5 MB without it

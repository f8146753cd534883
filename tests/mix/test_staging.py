"""Mixtures whose inputs cannot stay mapped: the drawn rows are staged first, same bytes."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from test_mix import _rows, spec_for, write_rendered

from instructkit.artifacts import dataset as artifact
from instructkit.cli import cli
from instructkit.mix import staging
from instructkit.mix import write as mix_write
from instructkit.mix.run import mix_datasets


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _tasks(root: Path, seed: int) -> list[tuple[Path, dict]]:
    rng = random.Random(seed)
    tasks = []
    for index in range(rng.randint(2, 6)):
        rows = rng.choice([1, 3, 40, 150])
        texts = [
            "".join(rng.choice("ab \n") for _ in range(rng.randint(0, 90))) for _ in range(rows)
        ]
        path = write_rendered(root, f"task{index}", rows, texts=texts)
        tasks.append((path, {"weight": rng.randint(1, 4)}))
    return tasks


@pytest.mark.parametrize("seed", range(6))
def test_staged_rows_write_the_bytes_of_rows_read_from_the_inputs(tmp_path, monkeypatch, seed):
    tasks = _tasks(tmp_path / "in", seed)
    total = random.Random(seed).choice([50, 400, 900])  # small tasks repeat their rows
    monkeypatch.setattr(mix_write, "MIN_CHUNK_ROWS", 16)
    monkeypatch.setattr(mix_write, "CHUNK_BYTES", 4096)  # many chunks
    staged_calls: list[int] = []
    real_stage = mix_write._stage

    def counting_stage(*args, **kwargs):
        staged_calls.append(1)
        return real_stage(*args, **kwargs)

    monkeypatch.setattr(mix_write, "_stage", counting_stage)
    spec = spec_for(*tasks, total=total, dedup=False, decontaminate="off", seed=seed)
    mix_datasets(spec, tmp_path / "mapped")
    assert staged_calls == []  # small inputs stay mapped
    monkeypatch.setattr(mix_write, "MAPPED_BYTES", 0)
    monkeypatch.setattr(staging, "STAGED_BATCH", 300)  # runs of several batches
    mix_datasets(spec, tmp_path / "staged")
    assert staged_calls == [1]
    assert _files(tmp_path / "staged") == _files(tmp_path / "mapped")


def test_a_run_reads_back_any_range_across_its_batches(monkeypatch):
    monkeypatch.setattr(staging, "STAGED_BATCH", 200)
    rows = {t: _rows(t, "train", [f"{t} prompt {i} " * (i % 7) for i in range(n)]) for t, n in
            (("a", 37), ("b", 1), ("c", 90))}  # fmt: skip
    staged = staging.StagedRows()
    for table in rows.values():
        staged.add_task()
        for start in range(0, table.num_rows, 25):  # appended in pieces, as a task is
            staged.append(table.slice(start, 25))
    assert len(staged.runs[2].offsets) > 3
    rng = np.random.default_rng(0)
    try:
        for task, table in enumerate(rows.values()):
            for _ in range(30):
                start = int(rng.integers(0, table.num_rows))
                stop = int(rng.integers(start + 1, table.num_rows + 1))
                got = pa.Table.from_batches(staged.read(task, start, stop))
                assert got.equals(table.slice(start, stop - start))
    finally:
        staged.close()


def test_no_room_to_stage_is_one_line_and_leaves_no_output(tmp_path, monkeypatch, runner):
    paths = [write_rendered(tmp_path / "in", f"t{i}", 30) for i in range(3)]
    monkeypatch.setattr(mix_write, "MAPPED_BYTES", 0)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(staging, "_pwrite", full)
    out = tmp_path / "mix"
    args = ["mix", *(a for p in paths for a in ("--task", str(p))), "--total", "60"]
    result = runner.invoke(cli, [*args, "--no-dedup", "--decontaminate", "off", "--out", str(out)])
    assert result.exit_code == 1
    message = result.output.strip().splitlines()
    assert len(message) == 1 and "Cannot stage the drawn rows" in message[0], result.output
    assert "No space left on device" in message[0] and "train split twice" in message[0]
    assert not out.exists()
    assert artifact.list_splits(paths[0]) == ["train", "validation", "test"]  # inputs untouched


def test_staging_runs_in_the_calling_thread(tmp_path, monkeypatch):
    """Ctrl-C reaches the main thread at once; staged in the gather's worker, it waited for
    the whole staging pass."""
    import threading

    paths = [write_rendered(tmp_path / "in", f"t{i}", 30) for i in range(3)]
    monkeypatch.setattr(mix_write, "MAPPED_BYTES", 0)
    threads = []
    real_stage = mix_write._stage

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_stage(*args, **kwargs)

    monkeypatch.setattr(mix_write, "_stage", recording)
    mix_datasets(spec_for(*((p, {}) for p in paths), total=60, dedup=False), tmp_path / "m")
    assert threads == [threading.main_thread()]


def test_a_run_of_another_string_type_is_read_back_as_its_values():
    staged = staging.StagedRows()
    try:
        first = _rows("a", "train", ["one", "two"])
        staged.add_task()
        staged.append(first)
        wide = pa.schema([f.with_type(pa.large_string()) if f.type == pa.string() else f
                          for f in first.schema])  # fmt: skip
        staged.add_task()
        staged.append(_rows("b", "train", ["hello", "world"]).cast(wide))
        got = pa.Table.from_batches(staged.read(1, 0, 2))
        assert got["prompt"].to_pylist() == ["hello", "world"]
    finally:
        staged.close()


@pytest.mark.parametrize("mapped", [1 << 40, 0])
def test_a_schedule_window_left_empty_is_skipped(tmp_path, monkeypatch, mapped):
    """Quotas whose total is just past a multiple of the chunk size could leave the last
    window empty, and gathering no rows failed in both paths."""
    paths = [write_rendered(tmp_path / "in", f"t{i}", 50) for i in range(3)]
    monkeypatch.setattr(mix_write, "CHUNK_BYTES", 1)  # chunks of MIN_CHUNK_ROWS (8,192)
    monkeypatch.setattr(mix_write, "MAPPED_BYTES", mapped)
    counts = [9496, 5565, 9516]
    spec = spec_for(*((p, {"count": c}) for p, c in zip(paths, counts, strict=True)),
                    dedup=False, decontaminate="off")  # fmt: skip
    result = mix_datasets(spec, tmp_path / "mix")
    assert result.splits["train"] == sum(counts)


def test_shards_with_empty_buffers_hand_their_pages_back(tmp_path):
    """All-empty strings and empty lists have zero-size buffers that may lie outside the
    mapping: releasing their batch must not fail."""
    path = write_rendered(tmp_path, "t", 3, texts=["", "", ""])
    split = artifact.map_split(path, "train")
    assert all(stop >= start >= 0 for _, start, stop in split.batch_ranges)
    for release in split.batch_releasers():
        release()
    split.release()

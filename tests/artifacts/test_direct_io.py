"""Shards written past the page cache (O_DIRECT) hold the bytes of ordinary writes, and a file
system that refuses direct writes gets ordinary ones."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from instructkit.artifacts import dataset

CHUNK = 4096  # the smallest size direct writes accept on common file systems


def _table(rows: int) -> pa.Table:
    return pa.table(
        {
            "prompt": [f"prompt {i} " + "x" * (i % 97) for i in range(rows)],
            "completion": [f"c{i}" for i in range(rows)],
            "references": [[f"c{i}"] for i in range(rows)],
            "task": ["t"] * rows,
            "template_id": ["a"] * rows,
            "example_id": [str(i) for i in range(rows)],
            "source_split": ["train"] * rows,
            "source_index": list(range(rows)),
        },
        schema=dataset.SCHEMA,
    )


def _write(directory: Path, table: pa.Table) -> tuple[dict[str, bytes], list[str]]:
    info = dataset.write_split(directory, "train", [table.slice(0, 700), table.slice(700)])
    files = {p.name: p.read_bytes() for p in sorted((directory / "train").iterdir())}
    return files, [s.sha256 for s in info.shards]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(dataset, "DIRECT_CHUNK", CHUNK)


def test_direct_and_buffered_shards_are_the_same_bytes(tmp_path, monkeypatch, small_chunks):
    table = _table(2000)
    opened = []
    real_open = dataset._open_direct
    monkeypatch.setattr(
        dataset, "_open_direct", lambda p: opened.append(real_open(p)) or opened[-1]
    )
    direct, direct_hashes = _write(tmp_path / "direct", table)
    monkeypatch.setenv(dataset.DIRECT_IO_ENV, "0")
    buffered, buffered_hashes = _write(tmp_path / "buffered", table)
    assert direct == buffered and direct_hashes == buffered_hashes
    shard = direct["data-00000-of-00001.arrow"]
    assert len(shard) > 3 * CHUNK and len(shard) % CHUNK  # whole chunks and a tail
    assert direct_hashes == [hashlib.sha256(shard).hexdigest()]
    if hasattr(os, "O_DIRECT") and opened[0] is None:
        pytest.skip("this file system refuses O_DIRECT: only the buffered path ran")


def test_the_staging_logic_without_o_direct(tmp_path, monkeypatch, small_chunks):
    # Any file system: an ordinary second descriptor stands in for the direct one.
    monkeypatch.setattr(dataset, "_open_direct", lambda p: os.open(p, os.O_WRONLY))
    table = _table(1500)
    staged, _ = _write(tmp_path / "staged", table)
    monkeypatch.setenv(dataset.DIRECT_IO_ENV, "0")
    plain, _ = _write(tmp_path / "plain", table)
    assert staged == plain


def test_a_refused_direct_write_falls_back_to_ordinary_writes(tmp_path, monkeypatch, small_chunks):
    direct_fds: list[int] = []

    def fake_direct(path):
        fd = os.open(path, os.O_WRONLY)
        direct_fds.append(fd)
        return fd

    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        if fd in direct_fds and offset >= 2 * CHUNK:  # two chunks go through, then EINVAL
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(dataset, "_open_direct", fake_direct)
    monkeypatch.setattr(dataset.os, "pwrite", pwrite)
    table = _table(1500)
    fallback, hashes = _write(tmp_path / "fallback", table)
    monkeypatch.setattr(dataset.os, "pwrite", real_pwrite)
    monkeypatch.setenv(dataset.DIRECT_IO_ENV, "0")
    plain, plain_hashes = _write(tmp_path / "plain", table)
    assert fallback == plain and hashes == plain_hashes


def test_other_direct_write_errors_are_raised(tmp_path, monkeypatch, small_chunks):
    monkeypatch.setattr(dataset, "_open_direct", lambda p: os.open(p, os.O_WRONLY))
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def pwrite(fd, data, offset):
        calls["n"] += 1
        if len(data) == CHUNK:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(dataset.os, "pwrite", pwrite)
    with pytest.raises(OSError, match="No space left"):
        _write(tmp_path / "full", _table(1500))


def _shard_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("instructkit-shard")]


def test_hashing_and_writing_threads_end_with_the_shard(tmp_path, small_chunks):
    table = _table(2000)
    files, hashes = _write(tmp_path / "a", table)
    assert not _shard_threads()
    # the digest covers every byte in order although a thread hashed the full pieces
    assert hashes == [hashlib.sha256(files["data-00000-of-00001.arrow"]).hexdigest()]


def test_a_hashing_error_reaches_the_writer(tmp_path, monkeypatch, small_chunks):
    class BrokenDigest:
        def __init__(self) -> None:
            self.calls = 0

        def update(self, data) -> None:
            self.calls += 1
            if self.calls == 3:
                raise MemoryError("hashing failed")

    monkeypatch.setattr(dataset.hashlib, "sha256", BrokenDigest)
    with pytest.raises(MemoryError, match="hashing failed"):
        _write(tmp_path / "broken", _table(3000))
    assert not _shard_threads()


def test_an_abandoned_writer_stops_its_threads(tmp_path, small_chunks):
    writer = dataset.SplitWriter(tmp_path, "train")
    with pytest.raises(RuntimeError, match="stop here"):
        with writer:
            writer.write(_table(3000))
            assert _shard_threads()  # full pieces went to the threads
            raise RuntimeError("stop here")
    assert not _shard_threads()


def test_a_write_error_with_a_full_spare_list_raises_the_error(tmp_path, monkeypatch, small_chunks):
    # the spare list full: buffers are closed, and none may still be viewed by the writer
    spares = [mmap.mmap(-1, CHUNK) for _ in range(dataset.MAX_SPARE_STAGES + dataset.STAGES + 1)]
    monkeypatch.setattr(dataset, "_spare_stages", spares)
    monkeypatch.setattr(dataset, "_open_direct", lambda p: os.open(p, os.O_WRONLY))
    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        if len(data) == CHUNK and offset >= CHUNK:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(dataset.os, "pwrite", pwrite)
    with pytest.raises(OSError, match="No space left"):
        _write(tmp_path / "full", _table(1500))
    assert not _shard_threads()

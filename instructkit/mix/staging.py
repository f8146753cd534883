"""The rows a mixture draws, copied task by task into a temporary file before they are mixed.

Each chunk of a mixture holds a few rows of every task. Read from the memory-mapped inputs, a
chunk of a 500-task mixture touched 500 inputs: past ``write.MAPPED_BYTES`` their pages were
handed back, and the next chunk mapped them again, a page fault or two for every row (1.2M
rows: 2.4 million faults, 16 of the mix's 20 s). Staged, every input is read once, all the rows
it gives in one pass over its pages, and each chunk then reads, for each task, the next rows of
that task's run in the staged file, with one ``pread`` per task: no mapping, so memory holds
one chunk and nothing of the inputs or the staged file.

The file is unnamed (gone when the process ends), inside the output folder being written: the
disk that will hold the train split anyway (``/tmp`` is often memory), written through the
page cache, so a mixture that fits in memory need not wait for the disk. It holds record
batches, each a self-contained Arrow IPC message, sized by the task's share of a chunk (16 to
256 KB): a chunk reads about one batch of each task and re-reads at most one. Their places in
the file are kept aside.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from instructkit.artifacts.dataset import pwrite as _pwrite
from instructkit.mix.plan import TaskInput

# Bytes per staged record batch, at most and at least; each task's are sized by its share.
STAGED_BATCH = 256 * 1024
MIN_STAGED_BATCH = 16 * 1024


@dataclass
class _Run:
    """One task's staged rows: where each of its batches starts (task-relative row), lies in
    the file, and how long it is."""

    batch_bytes: int
    first_rows: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    num_rows: int = 0


class StagedRows:
    """Every task's drawn rows in the order the mixture takes them (see the module)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.schema: pa.Schema | None = None
        self._file = tempfile.TemporaryFile(prefix=".instructkit-mix-", dir=folder)
        self._size = 0
        self.runs: list[_Run] = []

    def add_task(self, batch_bytes: int = STAGED_BATCH) -> None:
        """Start the next task's run (tasks are staged one after another, in order), in
        record batches of about ``batch_bytes``."""
        self.runs.append(_Run(batch_bytes))

    def append(self, table: pa.Table) -> None:
        """Add ``table``'s rows to the current task's run."""
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            # every run is read back with one schema (e.g. large_string -> string)
            table = table.cast(self.schema)
        run = self.runs[-1]
        for batch in table.to_batches(max_chunksize=_rows_for_bytes(table, run.batch_bytes)):
            message = batch.serialize()
            _write_all(self._file.fileno(), message, self._size)
            run.first_rows.append(run.num_rows)
            run.offsets.append(self._size)
            run.lengths.append(message.size)
            run.num_rows += batch.num_rows
            self._size += message.size

    def read(self, task: int, start: int, stop: int) -> list[pa.RecordBatch]:
        """Rows ``start..stop-1`` of ``task``'s run, as slices of the batches holding them."""
        run = self.runs[task]
        firsts = run.first_rows
        first = bisect.bisect_right(firsts, start) - 1
        last = bisect.bisect_right(firsts, stop - 1) - 1
        begin = run.offsets[first]
        end = run.offsets[last] + run.lengths[last]
        data = pa.py_buffer(_read_all(self._file.fileno(), end - begin, begin))
        assert self.schema is not None
        parts = []
        for index in range(first, last + 1):
            message = data.slice(run.offsets[index] - begin, run.lengths[index])
            batch = pa.ipc.read_record_batch(message, self.schema)
            low = max(start - firsts[index], 0)
            high = min(stop - firsts[index], batch.num_rows)
            parts.append(batch.slice(low, high - low))
        return parts

    def close(self) -> None:
        self._file.close()


def _rows_for_bytes(table: pa.Table, nbytes: int) -> int:
    return max(1, int(nbytes * table.num_rows / max(table.nbytes, 1)))


def _write_all(fd: int, data: pa.Buffer, offset: int) -> None:
    view = memoryview(data)
    while len(view):
        written = _pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _read_all(fd: int, size: int, offset: int) -> bytes:
    data = _pread(fd, size, offset)
    while len(data) < size:  # a short read: the rest, or the file ends early (a bug)
        more = _pread(fd, size - len(data), offset + len(data))
        if not more:
            raise OSError(f"the staged rows end early, at byte {offset + len(data)}")
        data += more
    return data


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def should_stage(inputs: Sequence[TaskInput], mapped_bytes: int) -> bool:
    """Stage when the inputs cannot all stay mapped (more than ``mapped_bytes``) and there
    is more than one task: one task's rows are read in order of its draw either way."""
    return len(inputs) > 1 and sum(i.train.nbytes for i in inputs) > mapped_bytes

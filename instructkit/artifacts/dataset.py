"""The instructkit dataset directory: the artifact every stage reads and writes.

Layout (``datasets.load_from_disk`` reads it as a ``DatasetDict``)::

    out/
      dataset_dict.json            {"splits": [...]}
      instructkit.json             the manifest (see artifacts/manifest.py)
      <split>/data-0000i-of-0000N.arrow   Arrow IPC stream shards
      <split>/dataset_info.json    features
      <split>/state.json           shard list and a content fingerprint

We write the layout ourselves instead of calling ``save_to_disk`` so that rows can be streamed
(memory bounded by the batch, not the dataset) and so that the same rows give the same bytes:
the fingerprint is derived from the shard hashes, never random.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import mmap
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from instructkit import output_guard, profiling
from instructkit.errors import DatasetDirError, OutputError

DATASET_DICT_NAME = "dataset_dict.json"

# The split names every stage uses: render writes them, mix blends train and carries the
# evaluation splits, train and evaluate read them.
SPLITS = ("train", "validation", "test")
EVAL_SPLITS = SPLITS[1:]

# The row contract shared by render, mix, train and evaluate (TRL's prompt/completion + provenance).
# `references` always holds every reference of the row (just the completion when there is one),
# so splits from different tasks share one schema and can be concatenated.
SCHEMA = pa.schema(
    [
        pa.field("prompt", pa.string()),
        pa.field("completion", pa.string()),
        pa.field("references", pa.list_(pa.string())),
        pa.field("task", pa.string()),
        pa.field("template_id", pa.string()),
        pa.field("example_id", pa.string()),
        pa.field("source_split", pa.string()),
        pa.field("source_index", pa.int64()),
    ]
)
# The conversational form (TRL's conversational prompt-completion): prompt and completion are
# lists of {role, content} messages. Fields sorted by name, as the datasets features JSON
# (written with sorted keys) lists them, so load_from_disk reads the same struct back.
MESSAGES = pa.list_(pa.struct([pa.field("content", pa.string()), pa.field("role", pa.string())]))
CONVERSATIONAL_SCHEMA = SCHEMA.set(0, pa.field("prompt", MESSAGES)).set(
    1, pa.field("completion", MESSAGES)
)
# The two row forms a dataset directory holds (the manifest's "form"): see instructkit/chat.py.
FORMS = ("text", "conversational")
REQUIRED_COLUMNS = ("prompt", "completion")


def schema_for(form: str) -> pa.Schema:
    """The row schema of a form: ``text`` (strings) or ``conversational`` (message lists)."""
    return CONVERSATIONAL_SCHEMA if form == "conversational" else SCHEMA


DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024


# ---------------------------------------------------------------- atomic output


@contextlib.contextmanager
def atomic_output_dir(
    out: str | os.PathLike[str],
    overwrite: bool = False,
    kind: str | None = None,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` only if the block finishes.

    Any exception (including Ctrl-C) removes the temporary directory, so a failed run leaves
    neither a half-written dataset nor a clobbered previous one. ``kind`` and ``inputs`` are
    for :func:`check_output_path`; an output that appears while the block runs is not replaced
    (without ``overwrite``), and temp folders of dead runs are removed first.
    """
    check_output_path(Path(out), overwrite, kind, inputs)
    target = output_guard.absolute_target(out)
    output_guard.remove_stale_temp_dirs(target)
    tmp = output_guard.temp_sibling(target)
    with _output_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    try:
        yield tmp
        with _output_errors(target):
            _replace_dir(tmp, target, overwrite, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_path(
    target: Path,
    overwrite: bool,
    kind: str | None = None,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> None:
    """Refuse an output that overlaps an input, exists without --overwrite, is a file, or is a
    folder --overwrite must not replace (see :mod:`instructkit.output_guard`)."""
    output_guard.check_output(target, overwrite, kind, inputs)


@contextlib.contextmanager
def _output_errors(target: Path) -> Iterator[None]:
    """Turn the file system's refusals into one line that names the path and the reason."""
    try:
        yield
    except OSError as ex:
        raise OutputError(f"Cannot create output '{target}': {why_unwritable(target, ex)}.") from ex


def why_unwritable(target: Path, ex: OSError) -> str:
    """The most useful reason an output path cannot be written: a file in the way, else errno."""
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"'{parent}' is a file"
            break
    return ex.strerror or str(ex)


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Fail early, in one line, when an output file's folder is a file or cannot be written."""
    target = Path(path)
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"Cannot write '{target}': '{parent}' is a file.")
            if not os.access(parent, os.W_OK):
                raise OutputError(f"Cannot write '{target}': '{parent}' is not writable.")
            break
    return target


def _replace_dir(tmp: Path, target: Path, overwrite: bool = True, kind: str | None = None) -> None:
    old = None
    if target.exists() or target.is_symlink():
        if not overwrite:  # it appeared while we were writing: another run's, never replaced
            output_guard.rename_no_replace(tmp, target)
        output_guard.check_replaceable(target, kind)
        old = output_guard.temp_sibling(target, "old")
        target.rename(old)
    output_guard.rename_no_replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- writing


def features_json(schema: pa.Schema) -> dict[str, Any]:
    """The ``datasets`` Features description of an Arrow schema (the types we write).

    Written in the form every ``datasets`` release we support (>=2.19) reads: a list is a
    ``Sequence`` (datasets 4+ reads it as ``List``, the same Arrow type), a list of structs is a
    one-element JSON list. datasets 4's own ``"_type": "List"`` is unknown below 4.0.
    """
    return {f.name: _feature(f.type) for f in schema}


def _feature(arrow_type: pa.DataType) -> Any:
    if pa.types.is_list(arrow_type):
        if pa.types.is_struct(arrow_type.value_type):  # Sequence(dict) means dict of lists
            return [_feature(arrow_type.value_type)]
        return {"feature": _feature(arrow_type.value_type), "_type": "Sequence"}
    if pa.types.is_large_list(arrow_type):  # newer datasets only; SCHEMA has no large lists
        return {"feature": _feature(arrow_type.value_type), "_type": "LargeList"}
    if pa.types.is_struct(arrow_type):
        return {f.name: _feature(f.type) for f in arrow_type}
    dtype = {
        pa.string(): "string",
        pa.large_string(): "large_string",
        pa.int64(): "int64",
        pa.int32(): "int32",
        pa.float64(): "float64",
        pa.float32(): "float32",
        pa.bool_(): "bool",
    }.get(arrow_type)
    if dtype is None:
        raise TypeError(f"unsupported column type {arrow_type}")
    return {"dtype": dtype, "_type": "Value"}


def _schema_with_hf_metadata(schema: pa.Schema) -> pa.Schema:
    info = json.dumps(
        {"info": {"features": features_json(schema)}}, sort_keys=True, allow_nan=False
    )
    return schema.with_metadata({"huggingface": info})


@dataclass
class ShardInfo:
    filename: str
    num_rows: int
    sha256: str


@dataclass
class SplitInfo:
    name: str
    num_rows: int = 0
    shards: list[ShardInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "num_rows": self.num_rows,
            "shards": [vars(s) for s in self.shards],
        }


# Shards bypass the page cache where the system allows it (Linux O_DIRECT): copying 1.1 GB of
# shards into the page cache was the largest cost of a render (DialogSum x8 with every
# template: 2.0 s of system time of 3.3 s; direct writes of the same bytes: under 0.1 s).
# INSTRUCTKIT_DIRECT_IO=0 writes through the page cache as before; the bytes are the same.
DIRECT_IO_ENV = "INSTRUCTKIT_DIRECT_IO"
DIRECT_CHUNK = 8 << 20  # a multiple of any block size O_DIRECT asks offsets and lengths to be


def _open_direct(path: Path) -> int | None:
    """A second descriptor on ``path`` that skips the page cache, or None where none can be."""
    flag = getattr(os, "O_DIRECT", None)
    if flag is None or os.environ.get(DIRECT_IO_ENV, "1").strip().lower() in ("0", "false", "no"):
        return None
    try:
        return os.open(path, os.O_WRONLY | flag | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # e.g. tmpfs refuses O_DIRECT: write through the page cache
        return None


def pwrite(fd: int, data: Any, offset: int) -> int:
    """``os.pwrite``, or a seek and a write where there is none (Windows: one writer a file)."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # systems without pwrite (Windows)
    return os.write(fd, data)


STAGES = 3  # staging buffers: one filling while one is hashed and written, one spare


class _HashingFile:
    """A binary file that hashes what is written through it: shards are never read back.

    Bytes are copied into ``DIRECT_CHUNK`` staging buffers. Each full buffer is hashed by one
    background thread and written by another (through a direct descriptor where the system
    allows it, at an aligned offset), while the caller fills the next: on DialogSum x8 the
    sha256 of 1.1 GB (0.63 s) and the disk writes (0.55 s) used to follow each other and the
    IPC serialisation in one thread. The last partial buffer, and every piece a file system
    refuses to write directly, goes through an ordinary descriptor. The file's bytes and the
    digest do not depend on which, nor on the threads: both threads take buffers in order.
    """

    def __init__(self, path: Path, hashed: bool = True) -> None:
        # closed by close(), as the IPC writer expects of a sink
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666)
        self._stages = _StagePipeline(fd, _open_direct(path), hashed)
        self._stage: mmap.mmap
        self._target: Any = None  # a numpy view of the staging buffer
        self._filled = 0  # bytes waiting in the staging buffer
        self._next_stage()
        self.closed = False

    @property
    def digest(self) -> Any:
        return self._stages.digest

    def write(self, data: Any) -> int:
        # numpy copies without the GIL (a slice assignment into the mmap held it: 1.1 GB of
        # copies during which the render and the hash thread could not run Python)
        view = np.frombuffer(data, dtype=np.uint8)
        done = 0
        while done < len(view):
            room = min(DIRECT_CHUNK - self._filled, len(view) - done)
            self._target[self._filled : self._filled + room] = view[done : done + room]
            self._filled += room
            done += room
            if self._filled == DIRECT_CHUNK:
                self._target = None  # no view left on a buffer that is not ours any more
                self._stages.submit(self._stage)
                self._next_stage()
        return len(view)

    def _next_stage(self) -> None:
        self._stage = self._stages.take_free()
        self._target = np.frombuffer(self._stage, dtype=np.uint8)
        self._filled = 0

    def flush(self) -> None:
        return None

    def close(self) -> None:
        """Wait for the full buffers, then hash and write the tail; raise what went wrong."""
        if self.closed:
            return
        self.closed = True
        self._stages.finish(memoryview(self._stage)[: self._filled])
        self._target = None  # the view must go before the buffer can be closed later
        _keep_stage(self._stage)

    def abort(self) -> None:
        """Stop the threads and close the descriptors without finishing the file."""
        self.closed = True
        self._stages.stop()

    def __del__(self) -> None:  # a writer dropped on an error must not leave its threads
        if not getattr(self, "closed", True):
            self.abort()


# Staging buffers outlive their shard: fresh ones cost a page fault per 4 KB (DialogSum x8 writes
# three shards: 18k faults for nine buffers), reused ones nothing.
_spare_stages: list[mmap.mmap] = []
_spare_lock = threading.Lock()
MAX_SPARE_STAGES = 2 * STAGES


def _spare_stage() -> mmap.mmap:
    with _spare_lock:
        for stage in reversed(_spare_stages):
            if len(stage) == DIRECT_CHUNK:  # tests change the size
                _spare_stages.remove(stage)
                return stage
    return mmap.mmap(-1, DIRECT_CHUNK)


def _keep_stage(stage: mmap.mmap) -> None:
    with _spare_lock:
        if len(_spare_stages) < MAX_SPARE_STAGES:
            _spare_stages.append(stage)
            return
    with contextlib.suppress(BufferError):  # still viewed: unmapped when the view goes
        stage.close()


class _StagePipeline:
    """The background half of a shard file: hashes and writes full buffers, each in order.

    A buffer returns to the free list when both threads are done with it. An error in either
    thread is kept and raised to the writer at its next buffer; the threads keep draining so
    that the writer never waits forever.
    """

    def __init__(self, fd: int, direct: int | None, hashed: bool = True) -> None:
        self.fd, self.direct = fd, direct
        self.hashed = hashed
        self.digest = hashlib.sha256()
        self.offset = 0  # where the next full buffer goes in the file
        self.error: BaseException | None = None
        self._free: queue.Queue = queue.Queue()
        for _ in range(STAGES):
            self._free.put(_spare_stage())
        self._owners: dict[int, int] = {}  # buffer -> threads still using it
        self._lock = threading.Lock()
        self._hash_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._write_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []  # started with the first full buffer
        self._closed = False

    def take_free(self) -> mmap.mmap:
        stage = self._free.get()
        self._raise_error()
        return stage

    def submit(self, stage: mmap.mmap) -> None:
        if not self._threads:
            self._start()
        with self._lock:
            self._owners[id(stage)] = 2 if self.hashed else 1
        if self.hashed:
            self._hash_queue.put(stage)
        self._write_queue.put((stage, self.offset))
        self.offset += DIRECT_CHUNK

    def finish(self, tail: memoryview) -> None:
        try:
            self._join()
            self._raise_error()
            if self.hashed:
                with profiling.phase("  checksums (shards)", thread=True):
                    self.digest.update(tail)
            self._write_ordinary(tail, self.offset)
        finally:
            self._close_files()

    def stop(self) -> None:
        self.error = self.error or RuntimeError("shard writing stopped")
        try:
            self._join()
        finally:
            self._close_files()

    # ------------------------------------------------------------ the threads

    def _start(self) -> None:
        loops = [(self._write_loop, "write")]
        if self.hashed:
            loops.append((self._hash_loop, "hash"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"instructkit-shard-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _hash_loop(self) -> None:
        while (stage := self._hash_queue.get()) is not None:
            if self.error is None:
                try:
                    with profiling.phase("  checksums (shards)", thread=True):
                        self.digest.update(stage)
                except BaseException as ex:  # raised in the writer's thread
                    self.error = ex
            self._release(stage)

    def _write_loop(self) -> None:
        while (item := self._write_queue.get()) is not None:
            stage, offset = item
            if self.error is None:
                try:
                    with profiling.phase("  disk writes (shards)", thread=True):
                        self._write_full(stage, offset)
                except BaseException as ex:
                    self.error = ex
            self._release(stage)

    def _release(self, stage: mmap.mmap) -> None:
        with self._lock:
            self._owners[id(stage)] -= 1
            done = self._owners[id(stage)] == 0
        if done:
            self._free.put(stage)

    def _write_full(self, stage: mmap.mmap, offset: int) -> None:
        written = 0
        if self.direct is not None:
            try:
                written = os.pwrite(self.direct, stage, offset)
            except OSError as ex:
                if ex.errno != errno.EINVAL:
                    raise
            if written == DIRECT_CHUNK:
                return
            os.close(self.direct)  # the file system takes no direct writes after all
            self.direct = None
        self._write_ordinary(memoryview(stage)[written:], offset + written)

    def _write_ordinary(self, view: memoryview, at: int) -> None:
        while len(view):
            count = pwrite(self.fd, view, at)
            view, at = view[count:], at + count

    # ------------------------------------------------------------ ending

    def _join(self) -> None:
        if self._threads:
            self._hash_queue.put(None)
            self._write_queue.put(None)
            for thread in self._threads:
                thread.join()
            self._threads = []

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _close_files(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.direct is not None:
            os.close(self.direct)
            self.direct = None
        os.close(self.fd)
        while not self._free.empty():
            _keep_stage(self._free.get_nowait())


def direct_file(path: Path) -> Any:
    """A binary sink for large files written once (e.g. by ``pa.ipc.new_file``): past the
    page cache where the system allows it, in a background thread, like shards (no digest)."""
    return _HashingFile(path, hashed=False)


class SplitWriter:
    """Stream record batches of one split into Arrow shards.

    Shards roll over by row count (``rows_per_shard``, e.g. from ``--num-shards``) or by size
    (``max_shard_bytes``). Shard names get their ``-of-N`` suffix when the split is closed.
    """

    def __init__(
        self,
        dataset_dir: Path,
        split: str,
        schema: pa.Schema = SCHEMA,
        rows_per_shard: int | None = None,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    ) -> None:
        self.dir = Path(dataset_dir) / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.schema = _schema_with_hf_metadata(schema)
        self.rows_per_shard = rows_per_shard
        self.max_shard_bytes = max_shard_bytes
        self.info = SplitInfo(name=split)
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._file: _HashingFile | None = None
        self._shard_rows = 0
        self._shard_bytes = 0
        self._parts: list[tuple[Path, int, _HashingFile]] = []

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()

    def abort(self) -> None:
        """Stop after an error: the open shard's threads end and its descriptors close."""
        if self._file is not None:
            self._file.abort()
        self._writer, self._file = None, None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows; the batch's columns must match the split's schema."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        table = table.select(self.schema.names).cast(self.schema)
        offset = 0
        while offset < table.num_rows:
            room = self._room_in_shard()
            piece = table.slice(offset, room if room is not None else table.num_rows - offset)
            self._write_piece(piece)
            offset += piece.num_rows

    def _room_in_shard(self) -> int | None:
        if self.rows_per_shard is None:
            return None
        if self._writer is not None and self._shard_rows >= self.rows_per_shard:
            self._close_shard()
        return self.rows_per_shard - self._shard_rows

    def _write_piece(self, piece: pa.Table) -> None:
        if self._writer is not None and self._shard_bytes >= self.max_shard_bytes:
            self._close_shard()
        if self._writer is None:
            self._open_shard()
        assert self._writer is not None
        for record_batch in piece.to_batches(max_chunksize=10_000):
            self._writer.write_batch(record_batch)
        self._shard_rows += piece.num_rows
        self._shard_bytes += piece.nbytes
        path, rows, file = self._parts[-1]
        self._parts[-1] = (path, rows + piece.num_rows, file)

    def _open_shard(self) -> None:
        path = self.dir / f".shard-{len(self._parts):05d}.arrow"
        self._file = _HashingFile(path)
        self._writer = pa.ipc.new_stream(self._file, self.schema)
        self._parts.append((path, 0, self._file))

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()  # writes the end-of-stream marker, leaves the file open
        if self._file is not None:
            self._file.close()
        self._writer = None
        self._file = None
        self._shard_rows = 0
        self._shard_bytes = 0

    def close(self) -> SplitInfo:
        """Finish the split: name the shards, write state.json and dataset_info.json."""
        self._close_shard()
        if not self._parts:  # an empty split still needs one (empty) shard to load
            self._open_shard()
            self._close_shard()
        total = len(self._parts)
        for index, (path, rows, file) in enumerate(self._parts):
            final = self.dir / f"data-{index:05d}-of-{total:05d}.arrow"
            path.rename(final)
            self.info.shards.append(ShardInfo(final.name, rows, file.digest.hexdigest()))
            self.info.num_rows += rows
        self._write_metadata()
        return self.info

    def _write_metadata(self) -> None:
        fingerprint = hashlib.sha256(
            "".join(s.sha256 for s in self.info.shards).encode()
        ).hexdigest()[:16]
        state: dict[str, Any] = {
            "_data_files": [{"filename": s.filename} for s in self.info.shards],
            "_fingerprint": fingerprint,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": self.info.name,
        }
        info = {
            "citation": "",
            "description": "",
            "features": features_json(self.schema),
            "homepage": "",
            "license": "",
        }
        write_json(self.dir / "state.json", state)
        write_json(self.dir / "dataset_info.json", info)


def rows_per_shard(num_rows: int, num_shards: int | None) -> int | None:
    """Rows per shard so that ``num_shards`` shards hold ``num_rows`` (None: roll by size)."""
    if not num_shards:
        return None
    return max(1, -(-num_rows // num_shards))


def write_split(
    dataset_dir: Path,
    split: str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    schema: pa.Schema = SCHEMA,
    rows_per_shard: int | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> SplitInfo:
    """Write one split from an iterable of batches and return what was written."""
    with SplitWriter(dataset_dir, split, schema, rows_per_shard, max_shard_bytes) as writer:
        for batch in batches:
            writer.write(batch)
        return writer.close()


def write_dataset_dict(dataset_dir: Path, splits: Iterable[str]) -> None:
    write_json(Path(dataset_dir) / DATASET_DICT_NAME, {"splits": list(splits)})


def write_json(path: Path, data: Any) -> None:
    """Sorted keys, no timestamps: the same data gives the same bytes. Strict JSON (no NaN)."""
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    )


# ---------------------------------------------------------------- reading


def check_dataset_dir(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` if it is a dataset directory, else raise a DatasetDirError saying why."""
    root = Path(path)
    if not root.exists():
        raise DatasetDirError(f"Dataset directory '{root}' does not exist.")
    if not (root / DATASET_DICT_NAME).is_file():
        raise DatasetDirError(
            f"'{root}' is not an instructkit dataset (no {DATASET_DICT_NAME}): "
            f"create one with 'instructkit render' or 'instructkit mix'."
        )
    return root


def list_splits(path: str | os.PathLike[str]) -> list[str]:
    root = check_dataset_dir(path)
    try:
        return list(json.loads((root / DATASET_DICT_NAME).read_text())["splits"])
    except (ValueError, KeyError) as ex:
        raise DatasetDirError(f"'{root / DATASET_DICT_NAME}' is corrupt: {ex}.") from ex


def open_split(path: str | os.PathLike[str], split: str) -> pa.Table:
    """Memory-map one split's shards as a single Arrow table (no copy into RAM)."""
    tables = [_read_shard(shard) for shard in _shard_paths(path, split)]
    return pa.concat_tables(tables)


@dataclass
class MappedSplit:
    """One split memory-mapped, with a way to hand back the pages the process touched.

    A page read through a mapping stays counted in the process's memory (and the kernel maps
    the neighbours of every page read, up to a whole large folio) until the mapping goes:
    reading a few rows from each of many inputs ends up holding all of them. ``release``
    (the whole split) and ``batch_releasers`` (one record batch each) drop mapped pages; they
    stay in the page cache, and the table stays valid and maps again whatever is read next.
    """

    table: pa.Table
    maps: list[mmap.mmap]
    # per record batch of ``table`` (``to_batches()`` order): (map, first byte, end byte)
    batch_ranges: list[tuple[int, int, int]] = field(default_factory=list)

    def release(self) -> None:
        for pages in self.maps:
            _drop_pages(pages, 0, len(pages))

    def batch_releasers(self) -> list[Callable[[], None]]:
        """One callable per record batch of ``table`` that drops the pages of that batch."""
        return [
            functools.partial(_drop_pages, self.maps[index], start, stop)
            for index, start, stop in self.batch_ranges
        ]


def _drop_pages(pages: mmap.mmap, start: int, stop: int) -> None:
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None or stop <= start:  # no madvise here: the pages go with the mapping
        return
    start -= start % mmap.PAGESIZE
    pages.madvise(advice, start, stop - start)


def map_split(path: str | os.PathLike[str], split: str) -> MappedSplit:
    """Like ``open_split``, for a reader that releases the pages it read (``MappedSplit``)."""
    tables: list[pa.Table] = []
    maps: list[mmap.mmap] = []
    ranges: list[tuple[int, int, int]] = []
    for shard in _shard_paths(path, split):
        try:
            with open(shard, "rb") as handle:
                pages = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            whole = pa.py_buffer(pages)
            table = pa.ipc.open_stream(pa.BufferReader(whole)).read_all()
        except (OSError, ValueError, pa.ArrowInvalid) as ex:  # ValueError: an empty file
            raise DatasetDirError(f"Shard '{shard}' cannot be read: {ex}.") from ex
        ranges += [(len(maps), *_byte_range(b, whole.address)) for b in table.to_batches()]
        tables.append(table)
        maps.append(pages)
    return MappedSplit(pa.concat_tables(tables), maps, ranges)


def _byte_range(batch: pa.RecordBatch, base: int) -> tuple[int, int]:
    """Where a batch's buffers lie in its mapped shard, as offsets from the start."""
    # A zero-size buffer (all-empty strings, all nulls) may sit anywhere, even outside the map.
    buffers = [b for c in batch.columns for b in c.buffers() if b is not None and b.size > 0]
    if not buffers:
        return 0, 0
    return (
        min(b.address for b in buffers) - base,
        max(b.address + b.size for b in buffers) - base,
    )


def _shard_paths(path: str | os.PathLike[str], split: str) -> list[Path]:
    splits = list_splits(path)
    if split not in splits:
        raise DatasetDirError(
            f"Split '{split}' not found in '{path}': it has {', '.join(splits) or 'no splits'}."
        )
    split_dir = Path(path) / split
    state = json.loads((split_dir / "state.json").read_text())
    shards = [split_dir / f["filename"] for f in state["_data_files"]]
    if not shards:
        raise DatasetDirError(f"Split '{split}' of '{path}' has no shards.")
    return shards


def _read_shard(path: Path) -> pa.Table:
    try:
        source = pa.memory_map(str(path))
        return pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowInvalid) as ex:
        raise DatasetDirError(f"Shard '{path}' cannot be read: {ex}.") from ex


def require_columns(table: pa.Table, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DatasetDirError(
            f"{where} has no {', '.join(repr(c) for c in missing)} column: "
            f"it has {', '.join(table.column_names)}. Render it with 'instructkit render'."
        )

"""Sources: resolve a name (preset, hub id, files, saved dataset) to raw splits of Arrow rows.

Nothing here rewrites a value: text reaches the templates exactly as the files hold it
(SAMSum's mixed ``\\r\\n``/``\\n`` turn separators included). Presets only *name* things: which
file is which split, which column is the example's stable key, which columns hold the several
references of a test split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from instructkit import profiling
from instructkit.artifacts.dataset import SPLITS
from instructkit.checksums import hash_file
from instructkit.errors import PluginError, SourceError
from instructkit.render.templates import utf8_error

SPLIT_ALIASES = {"val": "validation", "dev": "validation", "valid": "validation"}
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".arrow")


@dataclass
class RawSplit:
    """One split of raw rows, read in batches.

    Parquet is streamed from its file, large JSON Lines files from a temporary Arrow copy
    (:class:`Spill`); the rest is held in memory as a table.
    """

    name: str
    origin: str
    table: pa.Table | None = None
    parquet: Path | None = None
    spill: Spill | None = None
    key_column: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # field name -> column read from
    references: dict[str, list[str]] = field(default_factory=dict)  # field -> variant columns

    @property
    def num_rows(self) -> int:
        if self.table is not None:
            return self.table.num_rows
        if self.spill is not None:
            return self.spill.num_rows
        import pyarrow.parquet as pq

        return pq.ParquetFile(str(self.parquet)).metadata.num_rows

    @property
    def column_names(self) -> list[str]:
        if self.table is not None:
            names = list(self.table.column_names)
        elif self.spill is not None:
            names = list(self.spill.schema.names)
        else:
            import pyarrow.parquet as pq

            names = list(pq.ParquetFile(str(self.parquet)).schema_arrow.names)
        return names + [a for a in self.aliases if a not in names]

    def batches(self, batch_size: int, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Yield tables of at most ``batch_size`` rows with aliases applied."""
        wanted = None if columns is None else self._source_columns(columns)
        for batch in self._raw_batches(batch_size, wanted):
            yield self._apply_aliases(pa.Table.from_batches([batch]))

    @property
    def in_memory(self) -> bool:
        return self.table is not None

    def rows_at(self, start: int, length: int, columns: list[str] | None = None) -> pa.Table:
        """Rows ``start`` to ``start + length`` of a split held in memory, as :meth:`batches`
        yields them when it yields that batch."""
        assert self.table is not None
        wanted = None if columns is None else self._source_columns(columns)
        table = self.table if wanted is None else self.table.select(wanted)
        return self._apply_aliases(pa.Table.from_batches(table.slice(start, length).to_batches()))

    def _raw_batches(self, batch_size: int, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        if self.table is not None:
            table = self.table if columns is None else self.table.select(columns)
            yield from table.to_batches(max_chunksize=batch_size)
            return
        if self.spill is not None:
            for batch in self.spill.batches():  # one parsed JSON block at a time
                batch = batch if columns is None else batch.select(columns)
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
            return
        import pyarrow.parquet as pq

        # One row group at a time, single-threaded: iter_batches reads ahead and its memory
        # grew with the file; this stays flat (bounded by the largest row group).
        parquet = pq.ParquetFile(str(self.parquet))
        for group in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(group, columns=columns, use_threads=False)
            yield from table.to_batches(max_chunksize=batch_size)

    def _source_columns(self, columns: list[str]) -> list[str]:
        present = set(self.column_names) - set(self.aliases)
        wanted = {self.aliases.get(c, c) for c in columns}
        return [c for c in self.column_names if c in wanted and c in present]

    def _apply_aliases(self, table: pa.Table) -> pa.Table:
        for name, column in self.aliases.items():
            if column not in table.column_names or name == column:
                continue
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, table.column(column))
        return table


@dataclass
class RawDataset:
    """What a source loaded: its splits and fingerprints of every input."""

    splits: dict[str, RawSplit]
    inputs: list[dict[str, Any]]
    source: str


class Source:
    """A named way to load a dataset; presets subclass it and register via register_sources."""

    name: str = ""
    description: str = ""

    def load(self, data_dir: str | None = None, revision: str | None = None) -> RawDataset:
        """Load the raw splits: from ``data_dir`` when given, else from the hub."""
        raise NotImplementedError


# ---------------------------------------------------------------- registry

_registry: dict[str, Source] | None = None


def sources() -> dict[str, Source]:
    """Every registered source by name (built-ins and plugins), collected once."""
    global _registry
    if _registry is None:
        from instructkit.plugins import load_plugins

        found: dict[str, Source] = {}

        def register(source: Source) -> None:
            if source.name in found:
                raise PluginError(f"Two plugins register the source '{source.name}': remove one.")
            found[source.name] = source

        load_plugins().hook.register_sources(register=register)
        _registry = found
    return _registry


def reset_sources() -> None:
    """Forget the collected sources (after registering or unregistering a plugin)."""
    global _registry
    _registry = None


def get_source(name: str) -> Source | None:
    return sources().get(name)


# ---------------------------------------------------------------- generic loading


def canonical_split(name: str) -> str:
    """train/validation/test for the usual spellings (val, dev), else the name itself."""
    return SPLIT_ALIASES.get(name, name)


def load_generic(
    spec: str,
    data_files: dict[str, str] | None = None,
    revision: str | None = None,
    key_column: str | None = None,
) -> RawDataset:
    """Load a file, a directory of split files, a saved dataset, explicit files or a hub id."""
    if data_files:
        return from_files({canonical_split(k): Path(v) for k, v in data_files.items()}, spec)
    path = Path(spec)
    if path.is_file():
        return from_files({_split_from_stem(path): path}, spec, key_column)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return from_saved_dataset(path, key_column)
        return from_files(discover_split_files(path), spec, key_column)
    if path.exists():
        raise SourceError(_not_a_regular_file(path))
    if _looks_like_path(spec):
        presets = ", ".join(sorted(sources())) or "none"
        raise SourceError(f"'{spec}' does not exist: check the path (presets: {presets}).")
    return from_hub(spec, revision, key_column)


def _not_a_regular_file(path: Path) -> str:
    # A pipe (<(zcat ...)) or a device: the input is hashed, cached and read more than once.
    kind = "a folder" if path.is_dir() else "a pipe or a device"
    return f"'{path}' is {kind}, not a data file: write the data to a file and pass that file."


def _looks_like_path(spec: str) -> bool:
    # Hub ids are 'name' or 'owner/name'; anything else is meant as a local path.
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith(FILE_SUFFIXES)


def _split_from_stem(path: Path) -> str:
    stem = path.name.split(".")[0]
    split = canonical_split(stem)
    return split if split in SPLITS else "train"


def discover_split_files(directory: Path) -> dict[str, Path]:
    """Files named after their split (train.jsonl, val.json, dev.csv, ...) in a directory."""
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in FILE_SUFFIXES:
            continue
        split = canonical_split(path.name[: -len(path.suffix)])
        if split in SPLITS and split not in found:
            found[split] = path
    if not found:
        preset = _preset_layout(directory)
        if preset is not None:
            raise SourceError(
                f"No split files in '{directory}', but it holds the official {preset} files: "
                f"run 'instructkit render {preset} --data-dir {directory}'."
            )
        raise SourceError(
            f"No split files in '{directory}': name them train/validation/test "
            f"with one of {', '.join(FILE_SUFFIXES)}, or pass --data-file SPLIT=PATH."
        )
    return found


def _preset_layout(directory: Path) -> str | None:
    """The preset whose official file names (e.g. dialogsum.train.jsonl) the folder holds."""
    for name, source in sorted(sources().items()):
        layout: dict[str, tuple[str, ...]] = getattr(source, "files", None) or {}
        if any((directory / f).is_file() for names in layout.values() for f in names):
            return name
    return None


def from_files(files: dict[str, Path], origin: str, key_column: str | None = None) -> RawDataset:
    """One split per file; the fingerprint of each file goes into the manifest."""
    splits, inputs = {}, []
    for split, path in files.items():
        if path.exists() and not path.is_file():
            raise SourceError(_not_a_regular_file(path))
        if not path.is_file():
            raise SourceError(f"Data file '{path}' for split '{split}' does not exist.")
        splits[split], sha256 = _read_file_split_cached(path, split, key_column)
        inputs.append({"split": split, "path": str(path), "sha256": sha256})
    return RawDataset(splits=splits, inputs=inputs, source=origin)


def _read_file_split_cached(path: Path, split: str, key_column: str | None) -> tuple[RawSplit, str]:
    """:func:`read_file_split` and the file's sha256; JSON Lines read whole go through the
    input cache (:mod:`instructkit.render.input_cache`)."""
    from instructkit.render import input_cache

    size = path.stat().st_size
    cacheable = path.suffix == ".jsonl" and input_cache.MIN_BYTES <= size < SPILL_BYTES
    if cacheable and (hit := input_cache.load(path, JSON_BLOCK_BYTES)) is not None:
        table, sha256 = hit
        return RawSplit(split, str(path), table=table, key_column=key_column), sha256
    digest = hashlib.sha256()
    raw = read_file_split(path, split, key_column, digest)
    if cacheable and raw.table is not None:
        input_cache.save(path, JSON_BLOCK_BYTES, raw.table, digest.hexdigest())
    return raw, digest.hexdigest()


def read_file_split(
    path: Path, split: str, key_column: str | None = None, digest: Any = None
) -> RawSplit:
    """A RawSplit from one jsonl/json/csv/parquet/arrow file.

    ``digest`` (a hashlib object), when given, is fed the file's bytes: JSON Lines files are
    hashed as they are parsed, so the file is read once.
    """
    readers: dict[str, Callable[[Path], pa.Table]] = {
        ".json": read_json,
        ".csv": read_csv,
        ".arrow": read_arrow,
    }
    if path.suffix == ".jsonl":
        if path.stat().st_size >= SPILL_BYTES:
            spill = spill_jsonl(path, digest)
            if spill is not None:
                return RawSplit(split, str(path), spill=spill, key_column=key_column)
            digest = None  # the streaming attempt hashed every byte already
        return RawSplit(split, str(path), table=read_jsonl(path, digest), key_column=key_column)
    if path.suffix == ".parquet":
        raw = RawSplit(split, str(path), parquet=path, key_column=key_column)
    elif path.suffix in readers:
        raw = RawSplit(split, str(path), table=readers[path.suffix](path), key_column=key_column)
    else:
        raise SourceError(
            f"Cannot read '{path}': use one of {', '.join(FILE_SUFFIXES)} files, "
            f"or a dataset saved with save_to_disk."
        )
    if digest is not None:
        hash_file(path, digest)
    return raw


def check_utf8(path: Path, chunk_bytes: int = 1 << 24) -> None:
    """Raise a SourceError naming the line of the first byte that is not UTF-8.

    Arrow's JSON reader lets such bytes through into string columns, where they break later.
    Blocks end at a newline, which never falls inside a multi-byte character.
    """
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            block += handle.readline()
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as ex:
                at = line + block.count(b"\n", 0, ex.start)
                raise SourceError(utf8_error(path, at, block[ex.start], offset + ex.start)) from ex
            offset += len(block)
            line += block.count(b"\n")


# JSON Lines files from this size on are parsed block by block into a temporary Arrow file
# instead of one table in memory: render reads its rows twice (scan, then render), and
# holding the parsed table made peak memory grow with the file (DialogSum x80: 1.9 GB).
# Below it the table stays in memory: the spill's writes and reads cost more than the
# rendering they feed (DialogSum x8, 97 MB: +0.55 s of system time on a 2.9 s run).
SPILL_BYTES = 256 << 20
JSON_BLOCK_BYTES = 1 << 24  # also the chunking of the in-memory read: the same batches


class Spill:
    """Parsed rows in an unnamed temporary Arrow IPC stream, read back one batch at a time.

    The file has no name (removed when closed or when the process ends); each pass opens it
    again (Linux: through /proc/self/fd, natively), so passes have their own positions.
    """

    def __init__(self, schema: pa.Schema) -> None:
        import tempfile

        self.schema = schema
        self.num_rows = 0
        self._file = tempfile.TemporaryFile(prefix="instructkit-rows-")
        alias = f"/proc/self/fd/{self._file.fileno()}"
        self._alias = alias if os.path.exists(alias) else None
        self._sink = pa.OSFile(self._alias, "wb") if self._alias else self._file
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.num_rows += batch.num_rows

    def finish(self) -> Spill:
        self._writer.close()
        self._sink.flush()
        if self._alias:
            self._sink.close()
        return self

    def close(self) -> None:
        self._file.close()

    def batches(self) -> Iterator[pa.RecordBatch]:
        source = pa.OSFile(self._alias) if self._alias else _PositionalReader(self._file.fileno())
        with source, pa.ipc.open_stream(source) as reader:
            yield from reader


class _PositionalReader:
    """A read-only file over a descriptor with its own position (``os.pread``)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = os.fstat(self._fd).st_size - self._pos
        data = os.pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> _PositionalReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def spill_jsonl(path: Path, digest: Any = None) -> Spill | None:
    """Parse JSON Lines block by block into a :class:`Spill`, hashing the bytes as read.

    None when the streaming parser cannot give the table :func:`read_jsonl` would (a column
    whose type changes after the first block, a new column, a date-like string, a parse
    error): the caller then reads the file whole, which also reports errors by line. The
    file's bytes have all gone through ``digest`` either way.
    """
    import pyarrow.json as pj

    with open(path, "rb") as handle:
        source = _PacedReader(handle, digest)
        options = pj.ReadOptions(block_size=JSON_BLOCK_BYTES, use_threads=False)
        spill = None
        try:
            reader = pj.open_json(source, read_options=options)
            if any(pa.types.is_timestamp(f.type) for f in reader.schema):
                raise pa.ArrowInvalid("date-like text: read whole, as text")
            spill = Spill(reader.schema)
            for batch in reader:
                source.consumed()
                _check_parsed_utf8(path, pa.Table.from_batches([batch]))
                spill.write(batch)
            return spill.finish()
        except pa.ArrowInvalid:
            if spill is not None:
                spill.close()
            source.read_rest()  # the rest of the file through the digest
            return None
        finally:
            source.stop()


class _HashingReader:
    """A binary file that hashes what is read through it (Arrow reads each byte once)."""

    def __init__(self, handle: Any, digest: Any = None) -> None:
        self._handle = handle
        self._digest = digest
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        return self._read(size)

    def _read(self, size: int) -> bytes:
        block = self._handle.read(size)
        if self._digest is not None:
            with profiling.phase("  hash inputs", thread=True):
                self._digest.update(block)
        return block

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class _PacedReader(_HashingReader):
    """A hashing file for Arrow's streaming JSON reader that stays a few blocks ahead of its
    consumer.

    The reader's background thread otherwise reads ahead as fast as it can: DialogSum x80
    (970 MB) held 800 MB of read-ahead blocks at its peak, x8 in memory 600 MB; paced, the
    spill stays under 300 MB. Each read waits until the consumer has taken enough batches
    (``consumed``); after ``stop`` Arrow sees the end of the file, and ``read_rest`` takes
    what is left itself, so the digest gets every byte once, in order.
    """

    AHEAD = 4  # blocks read before the consumer takes a batch (a line may span blocks)
    PATIENCE_S = 2.0  # never wait longer: a batch needing more blocks must not deadlock

    def __init__(self, handle: Any, digest: Any = None) -> None:
        super().__init__(handle, digest)
        self._permits = threading.Semaphore(self.AHEAD)
        self._lock = threading.Lock()
        self._stopped = False

    def read(self, size: int = -1) -> bytes:
        self._permits.acquire(timeout=self.PATIENCE_S)
        with self._lock:
            if self._stopped:
                return b""
            return self._read(size)

    def consumed(self) -> None:
        self._permits.release()

    def read_rest(self) -> None:
        with self._lock:
            self._stopped = True
            while self._read(1 << 20):
                pass

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        for _ in range(self.AHEAD + 1):
            self._permits.release()  # a read waiting for a permit returns at once


def read_jsonl(path: Path, digest: Any = None) -> pa.Table:
    """JSON Lines through Arrow's parser; a bad line or byte is reported with its number.

    ``digest`` (a hashlib object), when given, is fed the file's bytes as Arrow reads them.
    """
    import pyarrow.json as pj

    if path.stat().st_size < 64 and not path.read_bytes().strip():
        if digest is not None:
            digest.update(path.read_bytes())
        return pa.table({})
    options = pj.ReadOptions(block_size=JSON_BLOCK_BYTES)
    try:
        with open(path, "rb") as handle:
            mapped = _map_file(handle)
            if mapped is None:  # not a regular file: read through, hashing each block
                table = pj.read_json(_HashingReader(handle, digest), read_options=options)
            else:
                table = _read_mapped_json(mapped, digest, options)
    except pa.ArrowInvalid as ex:
        check_utf8(path)  # a stray byte is the likelier cause: name its line
        _raise_bad_json_line(path, ex)
    _check_parsed_utf8(path, table)
    return _keep_text_as_text(path, table)


def _map_file(handle: Any) -> mmap.mmap | None:
    try:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # a pipe, or a file system that maps nothing
        return None


def _read_mapped_json(mapped: mmap.mmap, digest: Any, options: Any) -> pa.Table:
    """Parse a memory-mapped file while another thread hashes it (both release the GIL).

    Hashing each block as Arrow read it held the parser back: DialogSum x8 (97 MB) took
    0.21-0.27 s to read, 0.17 s like this. The parsed table holds no reference to the map.
    """
    import pyarrow.json as pj

    hasher = None
    if digest is not None:
        hasher = threading.Thread(target=_hash_mapped, args=(mapped, digest), daemon=True)
        hasher.start()
    try:
        return pj.read_json(pa.BufferReader(pa.py_buffer(mapped)), read_options=options)
    finally:
        if hasher is not None:
            hasher.join()


def _hash_mapped(mapped: mmap.mmap, digest: Any) -> None:
    with profiling.phase("  hash inputs", thread=True):
        digest.update(mapped)


def _check_parsed_utf8(path: Path, table: pa.Table) -> None:
    """Arrow's JSON parser lets bytes that are not UTF-8 into string values: find any.

    Validating the parsed table is much cheaper than decoding the file; only when it finds
    something is the file scanned again, for the line and offset of the first bad byte.
    """
    try:
        table.validate(full=True)
        _ = table.column_names  # keys that are not UTF-8 fail to decode here
    except (pa.ArrowInvalid, UnicodeDecodeError) as ex:
        check_utf8(path)
        raise SourceError(f"{path}: not valid UTF-8 ({ex}): re-encode the file as UTF-8.") from ex


def _keep_text_as_text(path: Path, table: pa.Table) -> pa.Table:
    # Arrow turns date-like strings into timestamps; text must reach templates unchanged.
    converted = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if not converted:
        return table
    import pyarrow.json as pj

    schema = pa.schema([(name, pa.string()) for name in converted])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    return pj.read_json(str(path), parse_options=options)


def _raise_bad_json_line(path: Path, ex: Exception) -> Any:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError as bad:
                raise SourceError(
                    f"{path}:{number}: not valid JSON ({bad.msg}): fix or remove that line."
                ) from ex
    raise SourceError(f"{path}: cannot be read as JSON Lines ({ex}).") from ex


def read_json(path: Path) -> pa.Table:
    """A JSON array of objects (SAMSum's original files), or JSON Lines named .json."""
    check_utf8(path)
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        return read_jsonl(path)
    try:
        rows = json.loads(text)
    except ValueError as ex:
        line = getattr(ex, "lineno", "?")
        raise SourceError(f"{path}:{line}: not valid JSON ({ex}): fix the file.") from ex
    if not rows:
        return pa.table({})
    return pa.Table.from_pylist(rows)


def read_csv(path: Path) -> pa.Table:
    """CSV with every column read as text, so ids like '0012' stay as written."""
    import pyarrow.csv as pcsv

    check_utf8(path)
    with open(path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise SourceError(f"{path} is empty: a CSV file needs a header row.")
    options = pcsv.ConvertOptions(column_types={name: pa.string() for name in header})
    try:
        return pcsv.read_csv(str(path), convert_options=options)
    except pa.ArrowInvalid as ex:
        raise SourceError(f"{path}: cannot be read as CSV ({ex}).") from ex


def read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file or stream (e.g. a shard written by datasets), memory-mapped."""
    source = pa.memory_map(str(path))
    try:
        return pa.ipc.open_file(source).read_all()
    except pa.ArrowInvalid:
        source.seek(0)
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid as ex:
            raise SourceError(f"{path}: not an Arrow IPC file or stream ({ex}).") from ex


def from_saved_dataset(path: Path, key_column: str | None = None) -> RawDataset:
    """A directory written by ``save_to_disk`` (Dataset or DatasetDict)."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    parts = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    splits = {
        canonical_split(name): RawSplit(
            canonical_split(name), str(path), table=_arrow_table(ds), key_column=key_column
        )
        for name, ds in parts.items()
    }
    inputs = [
        {"split": name, "path": str(path), "fingerprint": ds._fingerprint}
        for name, ds in parts.items()
    ]
    return RawDataset(splits=splits, inputs=inputs, source=str(path))


def _arrow_table(ds: Any) -> pa.Table:
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    if ds._indices is not None:  # a shuffled/selected dataset keeps an indices mapping
        table = ds.flatten_indices().data.table
    return table


def from_hub(
    hub_id: str,
    revision: str | None = None,
    key_column: str | None = None,
    local_hint: str = "pass local files (see 'instructkit render --help')",
) -> RawDataset:
    """Load a hub dataset with ``datasets.load_dataset`` (needs the network or a cache).

    ``local_hint`` says how to use local files instead when the hub cannot be reached.
    """
    import datasets

    try:
        loaded = datasets.load_dataset(hub_id, revision=revision)
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as ex:
        raise SourceError(
            f"Cannot load '{hub_id}' from the Hugging Face hub ({type(ex).__name__}): "
            f"check the name or your connection, or {local_hint}{_offline_note()}."
        ) from ex
    splits = {
        canonical_split(name): RawSplit(
            canonical_split(name), hub_id, table=_arrow_table(ds), key_column=key_column
        )
        for name, ds in loaded.items()
    }
    inputs = [{"hub_id": hub_id, "revision": revision or "main", "split": n} for n in loaded]
    return RawDataset(splits=splits, inputs=inputs, source=hub_id)


def _offline_note() -> str:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"; {name} is set, so only the local cache is read (unset it to download)"
    return ""


def apply_column_map(dataset: RawDataset, column_map: dict[str, str]) -> None:
    """Make each field read from another column (``--column-map summary=highlights``)."""
    for split in dataset.splits.values():
        for field_name, column in column_map.items():
            if column not in split.column_names:
                raise SourceError(
                    f"--column-map {field_name}={column}: split '{split.name}' has no column "
                    f"'{column}' (it has {', '.join(split.column_names)})."
                )
            split.aliases[field_name] = column

"""Tokenize a split once: ``datasets.map`` into Arrow, cached on disk and shared by every rank.

A training run encodes each split with the convention in :mod:`instructkit.modeling`
(:func:`encode_rows` is the one place that calls it) through ``Dataset.map`` (batched fast
tokenizer, ``num_proc`` workers) straight into Arrow files, so memory stays flat in the row
count. The result is cached under ``cache_root()/tokenized/<key>/``: the key hashes the split's
content fingerprint (``state.json`` and its shard files), the tokenizer's content, the encoding
options and lengths, and the encoding code itself, so any change that could change the ids
misses, and everything else hits. The first process to need an entry builds it under a file
lock (the other ranks of ``accelerate launch`` wait, then read it), in a temporary directory
renamed into place when complete: a reader never sees half an entry, and two builders on a file
system without locks still end with one entry.

Rows: ``input_ids``, ``labels`` (-100 where no loss), ``length`` (= len(input_ids)) and
``task``. Rows whose completion exceeds ``max_target_length`` are dropped unless
``truncate_completions``; every cut is counted in :class:`TokenizedSplit`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Bump when the cached layout or the meaning of a column changes. Changes to the encoding code
# (this module, instructkit/modeling.py and chat.py) change the key by themselves (source hashed).
CACHE_FORMAT = 1
INDEX_NAME = "index.json"
BATCH_ROWS = 1000
CHUNK_ROWS = 20_000
COLUMNS = ("input_ids", "labels", "length", "task")


@dataclass(frozen=True)
class EncodingSpec:
    """Everything besides the data and the tokenizer that decides the token ids of a row."""

    seq2seq: bool
    max_source_length: int
    max_target_length: int
    completion_only: bool = True
    truncate_completions: bool = False
    chat: bool = False  # rows go through the tokenizer's chat template (modeling.encode_pairs)

    @classmethod
    def from_options(cls, options: Any, seq2seq: bool, chat: bool = False) -> EncodingSpec:
        return cls(
            seq2seq=seq2seq,
            chat=chat,
            max_source_length=options.max_source_length,
            max_target_length=options.max_target_length,
            completion_only=options.completion_only,
            truncate_completions=options.truncate_completions,
        )


@dataclass
class TokenizedSplit:
    """An encoded split (a memory-mapped ``datasets.Dataset``) and what the budget did to it."""

    dataset: Any
    rows: int = 0
    truncated_prompts: int = 0
    truncated_completions: int = 0
    dropped: int = 0
    longest_completion: int = 0
    cache: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- the seam with modeling.py


def encode_rows(
    tokenizer: Any,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    spec: EncodingSpec,
) -> list[tuple[Any, int]]:
    """Encode a batch of pairs with :func:`instructkit.modeling.encode_pairs` (TRL's ids).

    This is the only call into modeling's encoding. Prompts and completions are strings, or
    lists of messages for conversational rows. Returns, per row, a ``modeling.Encoded``
    (``input_ids``, ``labels``, ``prompt_truncated``, ``completion_truncated``) and the
    completion's token count before any cut, less its end token (for the "longest completion"
    message, which adds it back).
    """
    from instructkit.modeling import encode_pairs

    pairs = encode_pairs(
        tokenizer, prompts, completions, spec.seq2seq, spec.max_source_length,
        spec.max_target_length, spec.completion_only, spec.chat,
    )  # fmt: skip
    return [(p, p.completion_length - 1) for p in pairs]


# ---------------------------------------------------------------- public entry points


def tokenize_split(
    tokenizer: Any,
    dataset_dir: str | os.PathLike[str],
    split: str,
    spec: EncodingSpec,
    limit: int | None = None,
    num_proc: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> TokenizedSplit:
    """The encoded ``split`` of a dataset directory, from the cache or built (and cached).

    :param limit: encode only the first ``limit`` rows (``max_eval_samples``).
    :param cache_dir: the cache root; default :func:`cache_root` (``$INSTRUCTKIT_CACHE``).
    """
    started = time.monotonic()
    source = SourceSplit(Path(dataset_dir), split, limit)
    parts = key_parts(tokenizer, source, spec)
    key = hash_json(parts)[:24]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    entry = root / "tokenized" / key
    hit = _is_complete(entry)
    if not hit:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(entry.parent / f"{key}.lock"):
            hit = _is_complete(entry)  # another process (rank) built it while we waited
            if not hit:
                _build_entry(entry, source, tokenizer, spec, parts, num_proc)
    result = load_entry(entry)
    result.cache.update(
        key=key, hit=hit, path=str(entry), seconds=round(time.monotonic() - started, 3)
    )
    return result


def tokenize_table(
    tokenizer: Any, table: Any, spec: EncodingSpec, num_proc: int | None = None
) -> TokenizedSplit:
    """Encode an in-memory Arrow table (no cache: it has no fingerprint)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    dataset = Dataset(InMemoryTable(table))
    encoded = _map(dataset, tokenizer, spec, num_proc, cache_file=None)
    stats = _stats(encoded, spec)
    if stats["dropped"]:
        with datasets_bars_disabled():
            encoded = encoded.filter(
                lambda cut: [not c for c in cut],
                input_columns="completion_truncated",
                batched=True,
                keep_in_memory=True,
            )
    return TokenizedSplit(encoded.select_columns(list(COLUMNS)), **stats, cache={"hit": False})


def cache_root() -> Path:
    """instructkit's cache (shared with ``models get``): ``$INSTRUCTKIT_CACHE``, else
    ``$XDG_CACHE_HOME/instructkit``, else ~/.cache/instructkit."""
    from instructkit.pretrained import cache_dir

    return cache_dir()


# ---------------------------------------------------------------- the key


class SourceSplit:
    """One split of a dataset directory, identified by content (``state.json``'s fingerprint)."""

    def __init__(self, dataset_dir: Path, split: str, limit: int | None) -> None:
        from instructkit.artifacts.dataset import list_splits

        if split not in list_splits(dataset_dir):
            from instructkit.errors import DatasetDirError

            raise DatasetDirError(f"Split '{split}' not found in '{dataset_dir}'.")
        self.dir = dataset_dir / split
        self.split = split
        self.limit = limit
        state = json.loads((self.dir / "state.json").read_text())
        self.files = [self.dir / f["filename"] for f in state["_data_files"]]
        self.fingerprint = {
            "split": split,
            "state_fingerprint": state.get("_fingerprint"),
            # sizes catch a shard rewritten without a new state.json (cheap: no hashing)
            "shards": [[p.name, p.stat().st_size] for p in self.files],
            "limit": limit,
        }

    def chunks(self, rows: int) -> Iterator[Any]:
        """The split's prompt, completion and task columns as Arrow tables of about ``rows``.

        Read with plain file reads, not a memory map: the pages of a mapped file stay resident
        (and count in RSS) once touched, so mapping a large split would grow with it.
        """
        import pyarrow as pa

        pending: list[Any] = []
        count, left, schema = 0, self.limit, None
        for path in self.files:
            with pa.OSFile(str(path)) as handle:
                reader = pa.ipc.open_stream(handle)
                names = [c for c in ("prompt", "completion", "task") if c in reader.schema.names]
                for batch in reader:
                    if left is not None:
                        batch = batch.slice(0, left)
                        left -= batch.num_rows
                    batch = batch.select(names)
                    schema = batch.schema
                    pending.append(batch)
                    count += batch.num_rows
                    if count >= rows:
                        yield pa.Table.from_batches(pending)
                        pending, count = [], 0
                    if left == 0:
                        break
            if left == 0:
                break
        if pending:
            yield pa.Table.from_batches(pending, schema=schema)


def key_parts(tokenizer: Any, source: SourceSplit, spec: EncodingSpec) -> dict[str, Any]:
    """What the cache key hashes (also written, readable, in the entry's index.json)."""
    import tokenizers
    import transformers

    return {
        "format": CACHE_FORMAT,
        "code": code_fingerprint(),
        "data": source.fingerprint,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "encoding": asdict(spec),
        "libraries": {
            "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__,
        },
    }


def code_fingerprint() -> str:
    """Hash of the encoding code: this module, instructkit/modeling.py and instructkit/chat.py
    (any edit misses)."""
    import instructkit.chat as chat
    import instructkit.modeling as modeling

    digest = hashlib.sha256()
    for path in (Path(__file__), Path(modeling.__file__), Path(chat.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides a tokenizer's ids: its full serialisation plus special tokens.

    Content, not ``name_or_path``: the same tokenizer copied elsewhere still hits, and a
    retrained one at the same path misses.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        body = backend.to_str()
    else:  # a slow tokenizer: its vocabulary is what we can see
        body = json.dumps(sorted(tokenizer.get_vocab().items()), allow_nan=False)
    extra = {
        "class": type(tokenizer).__name__,
        "special": {
            name: getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad")
        },
        "added": {str(k): str(v) for k, v in sorted(tokenizer.added_tokens_decoder.items())},
        "chat_template": getattr(tokenizer, "chat_template", None),
    }
    digest = hashlib.sha256(body.encode())
    digest.update(json.dumps(extra, sort_keys=True, default=str, allow_nan=False).encode())
    return digest.hexdigest()[:16]


def hash_json(data: Any) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, default=str, allow_nan=False).encode()
    ).hexdigest()


# ---------------------------------------------------------------- building and loading entries


def _is_complete(entry: Path) -> bool:
    return (entry / INDEX_NAME).is_file()


def _build_entry(
    entry: Path,
    source: SourceSplit,
    tokenizer: Any,
    spec: EncodingSpec,
    parts: dict[str, Any],
    num_proc: int | None,
) -> None:
    """Encode into a temporary sibling directory and rename it to ``entry`` when complete.

    The split goes through in chunks of ``CHUNK_ROWS`` rows (one Arrow file each, or one per
    worker), so memory is bounded by a chunk, whatever the row count.
    """
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        files: list[str] = []
        totals = {"rows": 0, "truncated_prompts": 0, "truncated_completions": 0, "dropped": 0}
        longest = 0
        for number, chunk in enumerate(source.chunks(CHUNK_ROWS)):
            if chunk.num_rows == 0:
                continue
            name = f"part-{number:05d}"
            encoded = _map(
                Dataset(InMemoryTable(chunk)), tokenizer, spec, num_proc, tmp / f"{name}.arrow"
            )
            stats = _stats(encoded, spec)
            del encoded, chunk
            written = sorted(p.name for p in tmp.glob(f"{name}*.arrow"))
            if stats["dropped"]:
                written = [_write_kept_rows(tmp, written, f"{name}-kept.arrow")]
            files.extend(written)
            pa.default_memory_pool().release_unused()  # hand the chunk's buffers back
            longest = max(longest, stats.pop("longest_completion"))
            for key, value in stats.items():
                totals[key] += value
        if not files:
            files = [_write_empty(tmp / "empty.arrow")]
        index = {
            "files": files,
            "stats": {**totals, "longest_completion": longest},
            "key_parts": parts,
            "tokenizer_name_or_path": str(getattr(tokenizer, "name_or_path", "")),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / INDEX_NAME).write_text(
            json.dumps(index, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
        try:
            tmp.rename(entry)
        except OSError:
            if not _is_complete(entry):  # not "another builder won the race"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _features() -> Any:
    from datasets import Features, List, Value

    return Features(
        {
            "input_ids": List(Value("int32")),
            "labels": List(Value("int32")),
            "length": Value("int32"),
            "task": Value("string"),
            "prompt_truncated": Value("bool"),
            "completion_truncated": Value("bool"),
            "completion_length": Value("int32"),
        }
    )


def _write_empty(path: Path) -> str:
    """An Arrow file with the encoded schema and no rows (an empty split)."""
    from datasets.arrow_writer import ArrowWriter

    with ArrowWriter(features=_features(), path=str(path)) as writer:
        writer.finalize()
    return path.name


def _map(
    dataset: Any, tokenizer: Any, spec: EncodingSpec, num_proc: int | None, cache_file: Any
) -> Any:
    """``Dataset.map`` of :func:`encode_rows` over batches: Arrow in, Arrow out."""
    procs = num_proc if num_proc and num_proc > 1 and dataset.num_rows > BATCH_ROWS else None
    with datasets_bars_disabled():
        return dataset.map(
            _encode_batch,
            batched=True,
            batch_size=BATCH_ROWS,
            fn_kwargs={"tokenizer": tokenizer, "spec": spec},
            remove_columns=dataset.column_names,
            features=_features(),
            num_proc=procs,
            keep_in_memory=cache_file is None,
            cache_file_name=str(cache_file) if cache_file is not None else None,
            load_from_cache_file=False,
            new_fingerprint=uuid.uuid4().hex,  # never hash the tokenizer (slow, noisy)
            writer_batch_size=BATCH_ROWS,
        )


@contextlib.contextmanager
def datasets_bars_disabled() -> Iterator[None]:
    """No ``datasets`` progress bars: the trainer's own bar is the one to watch."""
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar
    from datasets.utils.logging import is_progress_bar_enabled as bars_enabled

    bars = bars_enabled()
    disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            enable_progress_bar()


def _encode_batch(batch: dict[str, list[Any]], tokenizer: Any, spec: EncodingSpec) -> dict:
    rows = encode_rows(tokenizer, batch["prompt"], batch["completion"], spec)
    tasks = batch.get("task") or [None] * len(rows)
    return {
        "input_ids": [r.input_ids for r, _ in rows],
        "labels": [r.labels for r, _ in rows],
        "length": [len(r.input_ids) for r, _ in rows],
        "task": tasks,
        "prompt_truncated": [bool(r.prompt_truncated) for r, _ in rows],
        "completion_truncated": [bool(r.completion_truncated) for r, _ in rows],
        "completion_length": [n for _, n in rows],
    }


def _stats(encoded: Any, spec: EncodingSpec) -> dict[str, int]:
    """Counts of cuts over every row (read from Arrow columns, no Python rows)."""
    import pyarrow.compute as pc

    table = encoded.data.table if hasattr(encoded.data, "table") else encoded.data
    rows = encoded.num_rows

    def total(name: str) -> int:
        return int(pc.sum(table.column(name).cast("int64")).as_py() or 0) if rows else 0

    truncated_completions = total("completion_truncated")
    longest = pc.max(table.column("completion_length")).as_py() if rows else 0
    return {
        "rows": rows,
        "truncated_prompts": total("prompt_truncated"),
        "truncated_completions": truncated_completions,
        "dropped": 0 if spec.truncate_completions else truncated_completions,
        "longest_completion": int(longest or 0),
    }


def _write_kept_rows(tmp: Path, files: list[str], name: str) -> str:
    """Copy the rows whose completion fits into one file, batch by batch; return its name."""
    import pyarrow as pa
    import pyarrow.compute as pc

    writer = None
    try:
        for file in files:
            with pa.OSFile(str(tmp / file)) as source:  # not mapped: see SourceSplit.chunks
                reader = pa.ipc.open_stream(source)
                if writer is None:
                    writer = pa.ipc.new_stream(str(tmp / name), reader.schema)
                for batch in reader:
                    kept = batch.filter(pc.invert(batch.column("completion_truncated")))
                    if kept.num_rows:
                        writer.write_batch(kept)
    finally:
        if writer is not None:
            writer.close()
    for file in files:
        (tmp / file).unlink()
    return name


def load_entry(entry: Path) -> TokenizedSplit:
    """A complete cache entry as a memory-mapped dataset plus its counts."""
    from datasets import Dataset, concatenate_datasets

    index = json.loads((entry / INDEX_NAME).read_text())
    parts = [Dataset.from_file(str(entry / name)) for name in index["files"]]
    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    return TokenizedSplit(dataset.select_columns(list(COLUMNS)), **index["stats"])


# ---------------------------------------------------------------- the lock


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (blocking); a no-op where flock is unavailable.

    Correctness never depends on it (entries appear by atomic rename); it only saves the other
    ranks from repeating the work.
    """
    try:
        import fcntl
    except ImportError:  # Windows: builders may race, the rename keeps one entry
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

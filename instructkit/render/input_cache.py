"""Parsed JSON Lines inputs kept between runs, as Arrow files in instructkit's cache.

Rendering the same data again (a template edited, another ``--assignment``, a second task on
the same source) parsed and hashed the whole file every time: DialogSum x8 (97 MB) spent
0.2 s of a 1.6 s render there. The parsed table is kept under ``<cache>/inputs/<key>/``
(``$INSTRUCTKIT_CACHE``, as the tokenization cache and ``models get``), keyed by the file's
identity (resolved path, size, modification and change times, inode) and by what parsed it
(pyarrow's version, the block size that sets the table's chunks, this format). A hit maps the
table from the file (no copy) and takes the sha256 recorded with it; its chunks are those the
parser made, so the batches and every output byte are the same as after parsing.

Only files read whole into memory are kept (from ``MIN_BYTES`` up to the streaming threshold;
larger ones are streamed block by block and stay so). Entries are written in a background
thread past the page cache and appear by an atomic rename; a newer entry for the same path
replaces the older ones. ``INSTRUCTKIT_INPUT_CACHE=0`` turns the cache off; deleting the
folder is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from instructkit import profiling
from instructkit.pretrained import cache_dir

ENV = "INSTRUCTKIT_INPUT_CACHE"
FORMAT = 1
MIN_BYTES = 4 << 20  # smaller files parse in a few milliseconds: not worth an entry
TABLE = "table.arrow"
META = "meta.json"


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _folder() -> Path:
    return cache_dir() / "inputs"


def _identity(path: Path, block_bytes: int) -> dict[str, Any]:
    stat = path.stat()
    return {
        "format": FORMAT,
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,  # changes on any write, even one that restores mtime
        "inode": stat.st_ino,
        "device": stat.st_dev,
        "pyarrow": pa.__version__,
        "block_bytes": block_bytes,
    }


def _entry(identity: dict[str, Any]) -> Path:
    text = json.dumps(identity, sort_keys=True, allow_nan=False)
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    return _folder() / key


def load(path: Path, block_bytes: int) -> tuple[pa.Table, str] | None:
    """The cached table of ``path`` and the file's sha256, or None (absent or damaged)."""
    if not enabled():
        return None
    entry = _entry(_identity(path, block_bytes))
    if not (entry / META).exists():
        return None
    try:
        meta = json.loads((entry / META).read_text())
        with profiling.phase("  map cached input"):
            table = pa.ipc.open_file(pa.memory_map(str(entry / TABLE))).read_all()
            table.validate()
        if table.num_rows != meta["num_rows"] or not meta["sha256"]:
            raise ValueError("row count or digest missing")
    except (OSError, ValueError, KeyError, pa.ArrowException):
        shutil.rmtree(entry, ignore_errors=True)  # damaged: parse again, and keep a new one
        return None
    return table, str(meta["sha256"])


def save(path: Path, block_bytes: int, table: pa.Table, sha256: str) -> threading.Thread | None:
    """Keep ``table`` (the parse of ``path``) in the background; the thread, if one started.

    Best effort: a cache that cannot be written (read-only, full) never fails a render.
    """
    if not enabled() or table.num_rows == 0:
        return None
    identity = _identity(path, block_bytes)
    thread = threading.Thread(  # not a daemon: the interpreter waits for the rename
        target=_write_entry, args=(identity, table, sha256), name="instructkit-input-cache"
    )
    thread.start()
    return thread


def _write_entry(identity: dict[str, Any], table: pa.Table, sha256: str) -> None:
    from instructkit.artifacts.dataset import direct_file

    entry = _entry(identity)
    if entry.exists():
        return
    tmp = entry.parent / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        sink = direct_file(tmp / TABLE)
        with pa.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches():  # one per chunk: the parser's chunks come back
                writer.write_batch(batch)
        sink.close()
        meta = {**identity, "num_rows": table.num_rows, "sha256": sha256}
        (tmp / META).write_text(json.dumps(meta, sort_keys=True, indent=2, allow_nan=False) + "\n")
        os.rename(tmp, entry)
    except Exception:  # noqa: BLE001 - best effort: a cache we cannot write is no cache
        shutil.rmtree(tmp, ignore_errors=True)
        return
    _drop_older(identity["path"], keep=entry)


def _drop_older(source: str, keep: Path) -> None:
    """Remove entries of an earlier version of the same file (or another pyarrow's)."""
    with contextlib.suppress(OSError):
        for other in _folder().iterdir():
            if other == keep or other.name.startswith("."):
                continue
            try:
                if json.loads((other / META).read_text()).get("path") == source:
                    shutil.rmtree(other, ignore_errors=True)
            except (OSError, ValueError):
                continue

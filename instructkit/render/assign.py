"""Deterministic choices keyed by each example's stable id and the seed, never by row order.

Everything here hashes ``(salt, example_id)`` with a fixed 64-bit function (FNV-1a, then a
splitmix64 finaliser), vectorised over an Arrow string array. The same ids and seed give the
same template and split for an example wherever it sits in the file, on any machine.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from instructkit.artifacts.dataset import SPLITS
from instructkit.errors import RenderError
from instructkit.render.fast import text_array
from instructkit.rounding import largest_remainder

ASSIGNMENTS = ("balanced", "random", "all")

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_LONG_KEY = 64  # beyond this many bytes a per-row hash is cheaper than the byte loop


def stable_hash(ids: pa.Array | pa.ChunkedArray, salt: str) -> np.ndarray:
    """A uint64 hash per id, fixed across runs, platforms and row orders."""
    array = _plain_strings(ids)
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + n + 1]
    data = np.frombuffer(array.buffers()[2] or b"\0", dtype=np.uint8)
    lengths = np.diff(offsets)
    if lengths.max() > _LONG_KEY:
        return _hash_per_row(array, salt)
    hashed = np.full(n, _salt_state(salt), dtype=np.uint64)
    starts = offsets[:-1]
    with np.errstate(over="ignore"):
        for position in range(int(lengths.max())):
            active = lengths > position
            byte = data[starts[active] + position].astype(np.uint64)
            hashed[active] = (hashed[active] ^ byte) * _FNV_PRIME
        return _splitmix(hashed ^ lengths.astype(np.uint64))


def _plain_strings(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if ids.null_count:
        raise RenderError("Some rows have no example key: fill the key column or drop --key.")
    return ids if pa.types.is_string(ids.type) else ids.cast(pa.string())


def _salt_state(salt: str) -> np.uint64:
    digest = hashlib.blake2b(salt.encode("utf-8"), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little")) ^ _FNV_OFFSET


def _splitmix(values: np.ndarray) -> np.ndarray:
    # FNV's low bits are weak; the finaliser spreads every input bit over the whole word.
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hash_per_row(array: pa.Array, salt: str) -> np.ndarray:
    key = salt.encode("utf-8")[:64]
    values = [
        int.from_bytes(
            hashlib.blake2b(v.encode("utf-8"), digest_size=8, key=key).digest(), "little"
        )
        for v in array.to_pylist()
    ]
    return np.array(values, dtype=np.uint64)


def ranks(hashes: np.ndarray) -> np.ndarray:
    """Each row's position when rows are ordered by hash (ties keep row order)."""
    order = np.argsort(hashes, kind="stable")
    result = np.empty(len(hashes), dtype=np.int64)
    result[order] = np.arange(len(hashes))
    return result


def assign_templates(
    ids: pa.Array, template_ids: list[str], mode: str, seed: int, salt: str
) -> np.ndarray | None:
    """Template index per row (balanced/random), or None for 'all' (every template)."""
    if mode == "all":
        return None
    count = len(template_ids)
    if mode == "random":
        return (stable_hash(ids, f"{seed}/{salt}/random") % np.uint64(count)).astype(np.int32)
    if mode != "balanced":
        raise RenderError(f"Unknown assignment '{mode}': use one of {', '.join(ASSIGNMENTS)}.")
    # Which templates get the leftover rows is seeded too, so no phrasing is always short.
    order = seeded_order(template_ids, f"{seed}/{salt}/templates")
    rank = ranks(stable_hash(ids, f"{seed}/{salt}/balanced"))
    return np.asarray(order, dtype=np.int32)[rank % count]


def seeded_order(names: list[str], salt: str) -> list[int]:
    """Indices of ``names`` in a seeded order."""
    hashes = stable_hash(text_array(names), salt)
    return [int(i) for i in np.argsort(hashes, kind="stable")]


def check_ratios(ratios: list[float]) -> None:
    """Ratios for train/validation/test: three non-negative numbers summing to 1."""
    if len(ratios) != len(SPLITS) or not all(0 <= r < float("inf") for r in ratios):
        raise RenderError(
            f"--split-ratios needs three non-negative numbers (train,validation,test), "
            f"got {','.join(map(str, ratios))}."
        )
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise RenderError(
            f"--split-ratios must sum to 1, got {sum(ratios):g}: e.g. --split-ratios 0.8,0.1,0.1."
        )


def cut_splits(ids: pa.Array, ratios: list[float], seed: int) -> np.ndarray:
    """The new split (0 train, 1 validation, 2 test) of each row, exact counts by ratio."""
    check_ratios(ratios)
    counts = largest_remainder([len(ids) * r for r in ratios], len(ids))
    rank = ranks(stable_hash(ids, f"{seed}/split"))
    bounds = np.cumsum(counts)
    return np.searchsorted(bounds, rank, side="right").astype(np.int8)

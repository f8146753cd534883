"""Packing for causal models: several rows per sequence, attention and loss kept per row.

``packing=bfd`` places rows into bins of ``packing_length`` tokens, best-fit decreasing (each
row, longest first, goes into the fullest bin it still fits), so a batch of short rows no longer
pays for its longest one. ``packing=padding_free`` concatenates each batch into one row (no
padding at all; attention cost grows with the square of the row under eager/sdpa, so it suits
flash attention). Either way the collator gives every packed row ``position_ids`` that restart
at 0 and no ``attention_mask``: transformers (5.x) then builds a block-diagonal causal mask from
the position ids under eager, sdpa and flex attention, and flash attention runs varlen — each
row attends only to itself. The first label of every packed row is -100, so no token is
predicted from the previous row (the unpacked loss never predicts a row's first token either).

Models whose attention mask ignores position ids (prompt tuning's virtual tokens, encoder-
decoders, architectures that do not build their mask through ``create_causal_mask``) are refused
with a message, never trained with attention across rows. ``group_by_length`` is the cheaper
alternative: rows of similar length batched together, padded as usual.
"""

from __future__ import annotations

import bisect
import inspect
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from instructkit.errors import TrainerError

IGNORE_INDEX = -100  # instructkit.modeling.IGNORE_INDEX (not imported: keep this module light)
PACKINGS = ("none", "bfd", "padding_free")


# ---------------------------------------------------------------- best-fit decreasing


def pack_bfd(lengths: Sequence[int] | np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit-decreasing bins for rows of ``lengths`` (each <= ``capacity``).

    :returns: ``(order, offsets)``: bin ``b`` holds rows ``order[offsets[b]:offsets[b + 1]]``
        (longest first). Deterministic: ties keep row order. Memory: a few integers per row.
    """
    sizes = np.asarray(lengths, dtype=np.int64)
    if sizes.size and int(sizes.max()) > capacity:
        raise TrainerError(
            f"A row of {int(sizes.max())} tokens does not fit packing_length={capacity}: raise "
            f"packing_length to at least max_source_length + max_target_length."
        )
    by_size = np.argsort(-sizes, kind="stable")
    bin_of = np.empty(sizes.size, dtype=np.int64)
    spaces: list[int] = []  # sorted free spaces that some open bin has
    open_bins: dict[int, list[int]] = {}  # free space -> bins with exactly that space
    count = 0
    for row in by_size.tolist():
        size = int(sizes[row])
        at = bisect.bisect_left(spaces, size)
        if at == len(spaces):  # fits no open bin: open one
            target, left = count, capacity - size
            count += 1
        else:
            space = spaces[at]
            holders = open_bins[space]
            target = holders.pop()
            if not holders:
                del open_bins[space]
                del spaces[at]
            left = space - size
        bin_of[row] = target
        if left > 0:
            if left not in open_bins:
                open_bins[left] = []
                bisect.insort(spaces, left)
            open_bins[left].append(target)
    # rows grouped by bin, longest first inside a bin (the order they were placed)
    rank = np.empty(sizes.size, dtype=np.int64)
    rank[by_size] = np.arange(sizes.size)
    order = np.lexsort((rank, bin_of))
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(bin_of, minlength=count), out=offsets[1:])
    return order, offsets


class PackedDataset:
    """Bins of rows of an encoded split: item ``b`` is bin ``b`` as one packed row.

    A map-style dataset (``__len__``/``__getitem__``), so the Trainer shuffles and shards bins
    as it would rows; rows are read from the memory-mapped Arrow split when a bin is fetched.
    """

    def __init__(self, rows: Any, capacity: int) -> None:
        self.rows = rows
        self.capacity = capacity
        lengths = column_array(rows, "length")
        self.order, self.offsets = pack_bfd(lengths, capacity)
        self.tokens = int(lengths.sum())

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        members = self.order[self.offsets[index] : self.offsets[index + 1]].tolist()
        batch = self.rows[members]
        return pack_rows(batch["input_ids"], batch["labels"])

    def describe(self) -> dict[str, Any]:
        """For the run record: bins, rows and how full the bins are."""
        bins = len(self)
        return {
            "mode": "bfd",
            "packing_length": self.capacity,
            "rows": int(len(self.order)),
            "bins": bins,
            "fill": round(self.tokens / (bins * self.capacity), 4) if bins else 0.0,
        }


def pack_rows(input_ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> dict:
    """Concatenate rows into one, with restarting position ids and no cross-row label."""
    ids: list[int] = []
    targets: list[int] = []
    positions: list[int] = []
    for row_ids, row_labels in zip(input_ids, labels, strict=True):
        ids.extend(row_ids)
        targets.append(IGNORE_INDEX)  # never predicted from the previous row
        targets.extend(row_labels[1:])
        positions.extend(range(len(row_ids)))
    return {"input_ids": ids, "labels": targets, "position_ids": positions}


def column_array(rows: Any, name: str) -> np.ndarray:
    """One integer column of a ``datasets.Dataset`` as numpy, read from Arrow (no Python rows)."""
    table = rows.data.table if hasattr(rows.data, "table") else rows.data
    column = table.column(name)
    if getattr(rows, "_indices", None) is not None:  # a selection: follow its indices
        indices = rows._indices.column(0).to_numpy()
        return np.asarray(column.to_numpy())[indices]
    return np.asarray(column.to_numpy())


# ---------------------------------------------------------------- collators


class PackedCollator:
    """Pad packed rows (``bfd``) or flatten the batch into one (``padding_free``).

    Rows without ``position_ids`` (validation rows, padding-free rows) get ``range(len)``.
    Padding is its own sequence (positions restart, labels -100), so no attention mask is
    needed: causal attention never lets a real token see the padding after it.
    """

    def __init__(self, pad_token_id: int, flatten: bool = False) -> None:
        self.pad_token_id = pad_token_id
        self.flatten = flatten

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [self._packed(f) for f in features]
        if self.flatten:
            keys = ("input_ids", "labels", "position_ids")
            rows = [{key: [x for row in rows for x in row[key]] for key in keys}]
        width = max(len(r["input_ids"]) for r in rows)
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
        for row in rows:
            pad = width - len(row["input_ids"])
            batch["input_ids"].append(row["input_ids"] + [self.pad_token_id] * pad)
            batch["labels"].append(row["labels"] + [IGNORE_INDEX] * pad)
            batch["position_ids"].append(row["position_ids"] + list(range(pad)))
        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}

    @staticmethod
    def _packed(feature: dict[str, Any]) -> dict[str, list[int]]:
        if "position_ids" in feature:
            return feature
        return pack_rows([feature["input_ids"]], [feature["labels"]])


class RowCollator:
    """Keep the columns a model takes (input_ids, labels) and pad them with ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, features: Sequence[dict[str, Any]]) -> Any:
        rows = [
            {
                "input_ids": list(f["input_ids"]),
                "attention_mask": [1] * len(f["input_ids"]),
                "labels": list(f["labels"]),
            }
            for f in features
        ]
        return self.inner(rows)


# ---------------------------------------------------------------- checks


def check_packing_support(model: Any, packing: str) -> None:
    """Refuse, with the reason, a model whose attention would cross packed rows."""
    if packing == "none":
        return
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        raise TrainerError(
            f"packing={packing} does not work with prompt tuning (its virtual tokens ignore "
            f"position ids, so packed rows would see each other): use packing=none."
        )
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    if getattr(config, "is_encoder_decoder", False):
        raise TrainerError(
            f"packing={packing} is for causal models; seq2seq models keep dynamic padding: "
            f"use packing=none."
        )
    implementation = str(getattr(config, "_attn_implementation", "") or "")
    if implementation.startswith("flash_attention"):
        return  # varlen kernels read the sequence boundaries from position_ids
    inner = getattr(base, getattr(base, "base_model_prefix", ""), base)
    module = sys.modules.get(type(inner).__module__)
    takes_positions = "position_ids" in inspect.signature(base.forward).parameters
    if not takes_positions or not hasattr(module, "create_causal_mask"):
        raise TrainerError(
            f"packing={packing} needs a model that builds its attention mask from position ids "
            f"({type(base).__name__} does not with attn_implementation={implementation or '?'}): "
            f"use packing=none (and group_by_length=true), or a flash-attention model."
        )


def check_use_cache(args: Any, packing: str) -> None:
    """A kv cache in training turns off transformers' packed-sequence detection."""
    if packing != "none" and getattr(args, "use_cache", False):
        raise TrainerError(f"packing={packing} needs use_cache=false while training.")


def apply_length_grouping(args: Any, enabled: bool) -> None:
    """Ask the HF Trainer for length-grouped batches, reading lengths from our 'length' column."""
    if not enabled:
        return
    if hasattr(args, "train_sampling_strategy"):  # transformers >= 5
        args.train_sampling_strategy = "group_by_length"
    else:
        args.group_by_length = True
    args.length_column_name = "length"


def padding_fraction(lengths: np.ndarray, batch_size: int, seed: int = 0) -> float:
    """Share of token slots that are padding when shuffled rows are padded per batch."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    shuffled = np.asarray(lengths)[order]
    usable = len(shuffled) - len(shuffled) % batch_size
    if usable == 0:
        return 0.0
    batches = shuffled[:usable].reshape(-1, batch_size)
    slots = int(batches.max(axis=1).sum()) * batch_size
    return 1.0 - int(batches.sum()) / slots

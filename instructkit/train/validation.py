"""Validation loss per task (where forgetting shows), plus the pooled one, on a cheap schedule.

A mixture's validation split is cut per task (the first ``eval_rows_per_task`` rows of each, 64
by default) and handed to the HF trainer as a dict, so it logs ``eval_<task>_loss`` for each; the
pooled ``eval_loss`` is their mean weighted by label tokens (the loss of all of them at once).
Evaluations default to four per run (``eval_steps=0.25``) plus the end. A split without a
``task`` column, or with one task, gives the pooled loss only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from instructkit.train.base import TrainerOptions, TrainRun

# A split name no dataset has: encode_dataset then encodes the train split only.
NO_SPLIT = "\x00no-validation"


@dataclass
class ValidationSets:
    """Encoded validation rows by metric name (one entry: the pooled set only)."""

    sets: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # metric name -> task

    @property
    def per_task(self) -> bool:
        return len(self.sets) > 1

    def eval_dataset(self) -> Any:
        """What the HF trainer evaluates: a dict per task, a list when there is one set."""
        if not self.sets:
            return None
        if self.per_task:
            return {name: encoded.features for name, encoded in self.sets.items()}
        return next(iter(self.sets.values())).features

    def first(self) -> Any:
        return next(iter(self.sets.values()), None)


def train_only(options: TrainerOptions) -> TrainerOptions:
    """The options with no validation split, so ``encode_dataset`` encodes the train split."""
    return dataclasses.replace(options, validation_split=NO_SPLIT)


def metric_name(task: str) -> str:
    """A task name usable inside ``eval_<name>_loss`` (trackers dislike spaces and slashes)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", task).strip("_") or "task"


def encode_validation(
    run: TrainRun,
    tokenizer: Any,
    seq2seq: bool,
    options: TrainerOptions,
    encode_split: Callable[[Any, Any, bool, TrainerOptions], Any],
) -> ValidationSets:
    """Encode the capped validation sample, per task when the split has several tasks.

    ``encode_split(tokenizer, table, seq2seq, options)`` is the backend's encoder
    (``train.hf.encode_split``), passed in so this module does not import ``train.hf``.
    """
    import pyarrow.compute as pc

    from instructkit.artifacts.dataset import list_splits, open_split

    if options.validation_split not in list_splits(run.dataset_dir):
        return ValidationSets()
    table = open_split(run.dataset_dir, options.validation_split)
    if options.max_eval_samples is not None:
        table = table.slice(0, options.max_eval_samples)
    cap = options.eval_rows_per_task
    tasks: list[str] = []
    if "task" in table.column_names:
        tasks = sorted({str(t) for t in pc.unique(table.column("task")).to_pylist() if t})
    found = ValidationSets()
    if len(tasks) < 2:
        part = table if cap is None else table.slice(0, cap)
        encoded = encode_split(tokenizer, part, seq2seq, options)
        if encoded.features:
            found.sets["validation"] = encoded
        return found
    for task in tasks:
        part = table.filter(pc.equal(table.column("task"), task))
        if cap is not None:
            part = part.slice(0, cap)
        encoded = encode_split(tokenizer, part, seq2seq, options)
        if encoded.features:
            name = metric_name(task)
            found.sets[name] = encoded
            found.tasks[name] = task
    return found


def label_tokens(rows: Any, causal: bool) -> int:
    """Tokens the loss averages over in ``rows`` (causal models predict labels[1:])."""
    from instructkit.modeling import IGNORE_INDEX

    skip = 1 if causal else 0
    return sum(sum(1 for t in row["labels"][skip:] if t != IGNORE_INDEX) for row in rows)


def pooled_loss(metrics: dict[str, Any], sizes: dict[str, int], prefix: str) -> float | None:
    """Mean of ``<prefix>_<name>_loss`` over the evaluated sets, weighted by ``sizes``
    (their label tokens: the loss of all the sets evaluated as one)."""
    total = weighted = 0.0
    for name, size in sizes.items():
        loss = metrics.get(f"{prefix}_{name}_loss")
        if loss is None:
            return None
        total += size
        weighted += size * float(loss)
    return weighted / total if total else None


class PooledEvalMixin:
    """For a ``transformers.Trainer`` subclass: after a per-task evaluation, log ``eval_loss``."""

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)  # type: ignore[misc]
        sets = self.eval_dataset if eval_dataset is None else eval_dataset  # type: ignore[attr-defined]
        if isinstance(sets, dict) and len(sets) > 1:
            model = self.model  # type: ignore[attr-defined]
            causal = not getattr(model.config, "is_encoder_decoder", False)
            sizes = {name: label_tokens(rows, causal) for name, rows in sets.items()}
            pooled = pooled_loss(metrics, sizes, metric_key_prefix)
            if pooled is not None:
                metrics[f"{metric_key_prefix}_loss"] = pooled
                self.log({f"{metric_key_prefix}_loss": pooled})  # type: ignore[attr-defined]
        return metrics

"""Write a planned mixture: the streamed train split, the per-task eval splits, the manifest."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructkit import __version__, profiling
from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.dataset import EVAL_SPLITS
from instructkit.artifacts.inspect import write_composition_chart
from instructkit.artifacts.manifest import write_manifest
from instructkit.errors import MixError
from instructkit.mix.plan import MixResult, TaskInput
from instructkit.mix.quotas import PrefixChecker, TaskDraw, schedule_chunks
from instructkit.mix.staging import MIN_STAGED_BATCH, STAGED_BATCH, StagedRows, should_stage
from instructkit.progress import progress_bar

# Rows gathered per write: sized by bytes, because each taken row costs a fixed overhead per
# source batch (fewer, larger chunks amortise it) while a chunk is held in memory twice.
T = TypeVar("T")

CHUNK_BYTES = 64 * 1024 * 1024
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 8_192, 1_048_576


def chunk_rows(tables: Sequence[pa.Table]) -> int:
    """Rows per output chunk so that a chunk holds about CHUNK_BYTES."""
    rows = sum(t.num_rows for t in tables)
    row_bytes = sum(t.nbytes for t in tables) / rows if rows else 1.0
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, CHUNK_BYTES / max(row_bytes, 1.0))))


# Input pages a gather may leave mapped before it hands them back (see RowGatherer).
MAPPED_BYTES = 256 * 1024 * 1024


class RowGatherer:
    """Take rows by global index from several memory-mapped tables without copying them whole.

    ``Table.take`` on a table of many record batches first concatenates each column, which
    reads every input into RAM; taking from each batch separately keeps memory at one chunk.

    A page read through a mapping stays counted in the process's memory until it is handed
    back, and a chunk reads a few rows of every task: without ``releasers`` (per table, one
    callable per record batch, e.g. ``MappedSplit.batch_releasers``) a mixture of 500 tasks
    held 7.5 GB of mapped inputs. With them, once the batches read since the last hand-back
    exceed MAPPED_BYTES, their pages are dropped; inputs smaller than that are never
    re-read.

    ``columns`` (default: the dataset schema's) are the columns taken; ``pool`` the memory
    pool of the per-batch takes (None: Arrow's default).
    """

    def __init__(
        self,
        tables: Sequence[pa.Table],
        releasers: Sequence[Sequence[Callable[[], None]]] = (),
        columns: Sequence[str] | None = None,
        pool: pa.MemoryPool | None = None,
    ) -> None:
        self.batches: list[pa.RecordBatch] = []
        self.releasers: list[Callable[[], None] | None] = []
        self.pool = pool
        names = list(artifact.SCHEMA.names if columns is None else columns)
        for index, table in enumerate(tables):
            own = releasers[index] if releasers else ()
            for number, batch in enumerate(table.select(names).to_batches()):
                if batch.num_rows:
                    self.batches.append(batch.replace_schema_metadata(None))
                    self.releasers.append(own[number] if own else None)
        self.starts = np.cumsum([0] + [b.num_rows for b in self.batches])
        self.table_starts = np.cumsum([0] + [t.num_rows for t in tables])
        self.mapped: set[int] = set()  # batches read since the last hand-back
        self.mapped_bytes = 0

    def take(self, rows: np.ndarray) -> pa.Table:
        """The rows at global positions ``rows`` (table offset + row), in that order."""
        batch_of_row = np.searchsorted(self.starts, rows, side="right") - 1
        order = np.argsort(batch_of_row, kind="stable")
        sorted_batches = batch_of_row[order]
        local = (rows - self.starts[batch_of_row])[order]
        cuts = np.flatnonzero(np.diff(sorted_batches)) + 1
        parts = []
        bounds = zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(order)].tolist(), strict=True)
        for start, stop in bounds:
            if stop > start:
                batch = int(sorted_batches[start])
                indices = pa.array(local[start:stop])
                parts.append(pc.take(self.batches[batch], indices, memory_pool=self.pool))
                self._read(batch)
        # One contiguous batch first: take() on a table of many chunks is much slower.
        gathered = pa.concat_batches(parts)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return pa.Table.from_batches([gathered.take(pa.array(inverse))])

    def _read(self, batch: int) -> None:
        """Count a batch as mapped; past MAPPED_BYTES, hand back every batch counted."""
        if self.releasers[batch] is None:
            return
        if batch not in self.mapped:
            self.mapped.add(batch)
            self.mapped_bytes += self.batches[batch].nbytes
        if self.mapped_bytes > MAPPED_BYTES:
            for read in sorted(self.mapped):
                release = self.releasers[read]
                assert release is not None
                release()
            self.mapped.clear()
            self.mapped_bytes = 0


COMPOSITION_CHART = "composition.png"


def write_mixture(
    result: MixResult,
    inputs: list[TaskInput],
    draws: list[TaskDraw],
    out: Path,
    overwrite: bool,
    num_shards: int | None,
    quiet: bool,
    command: Mapping[str, Any] | None,
) -> None:
    """Write the dataset directory atomically and fill in ``result``'s written fields."""
    names = [i.name for i in inputs]
    schema = artifact.schema_for(inputs[0].form if inputs else "text")
    with artifact.atomic_output_dir(out, overwrite, "mix") as tmp:
        with profiling.phase("train split (schedule, gather, write)"):
            split_infos = {"train": _write_train(tmp, inputs, draws, result, num_shards, quiet)}
        profiling.memory_snapshot("memory after the train split")
        with profiling.phase("validation/test splits"):
            for split in EVAL_SPLITS:
                tables = [
                    _eval_table(i, split, result.spec.eval_cap)
                    for i in inputs
                    if split in i.evaluation
                ]
                if tables:
                    split_infos[split] = artifact.write_split(tmp, split, tables, schema)
        with profiling.phase("manifest"):
            artifact.write_dataset_dict(tmp, split_infos)
            result.splits = {name: info.num_rows for name, info in split_infos.items()}
            result.manifest = build_manifest(result, inputs, split_infos, names, command)
            write_manifest(tmp, result.manifest)
        with profiling.phase("composition chart"):
            # the composition is easier seen than read: a chart beside the manifest, always
            write_composition_chart({"manifest": result.manifest}, tmp / COMPOSITION_CHART)
    result.out = out


def _write_train(
    tmp: Path,
    inputs: list[TaskInput],
    draws: list[TaskDraw],
    result: MixResult,
    num_shards: int | None,
    quiet: bool,
) -> artifact.SplitInfo:
    total = sum(d.quota for d in draws)
    schema = artifact.schema_for(inputs[0].form if inputs else "text")
    writer = artifact.SplitWriter(
        tmp, "train", schema, rows_per_shard=artifact.rows_per_shard(total, num_shards)
    )
    checker = PrefixChecker([d.quota for d in draws])
    # Before staging: sizing reads a page or two of every input, and the kernel maps a whole
    # large folio around each (500 tasks: 500 MB left mapped when sized after).
    rows_per_chunk = chunk_rows([i.train for i in inputs])
    # Staged here, in the calling thread, not in the gather's: Ctrl-C stops it at once.
    staged = _stage(tmp, inputs, draws, quiet) if should_stage(inputs, MAPPED_BYTES) else None
    try:
        with writer, progress_bar(total, "mix train", quiet) as bar:
            chunks = _train_chunks(inputs, draws, rows_per_chunk, staged)
            for task_ids, chunk in _ahead(chunks):
                with profiling.phase("  write train shards"):
                    writer.write(chunk)
                checker.update(task_ids)
                bar.update(len(task_ids))
            result.max_prefix_deviation = checker.worst / total if total else 0.0
            return writer.close()
    finally:
        if staged is not None:
            staged.close()


def _train_chunks(
    inputs: list[TaskInput],
    draws: list[TaskDraw],
    rows_per_chunk: int,
    staged: StagedRows | None = None,
) -> Iterator[tuple[np.ndarray, pa.Table]]:
    """The train split in order, a chunk at a time: (task index per row, rows), read from the
    staged rows when there are some, else from the mapped inputs."""
    task_names = pa.array([i.name for i in inputs], type=pa.string())
    quotas = [d.quota for d in draws]
    schedule = _timed(schedule_chunks(quotas, rows_per_chunk))
    gather: Callable[[np.ndarray, np.ndarray], pa.Table]
    if staged is not None:
        gather = functools.partial(_gather_staged, staged)
    else:
        gatherer = RowGatherer([i.train for i in inputs], [i.train_batch_releasers for i in inputs])
        gather = functools.partial(_gather_mapped, gatherer, draws)
    done = np.zeros(len(draws), dtype=np.int64)
    for task_ids in schedule:
        with profiling.phase("  gather rows", thread=True):
            chunk = gather(task_ids, done)
            task_column = pc.take(task_names, task_ids)
            chunk = chunk.set_column(chunk.schema.get_field_index("task"), "task", task_column)
        yield task_ids, chunk


def _gather_mapped(
    gatherer: RowGatherer, draws: list[TaskDraw], task_ids: np.ndarray, done: np.ndarray
) -> pa.Table:
    """A chunk's rows straight from the mapped inputs; advances ``done`` (rows used per task)."""
    rows = np.empty(len(task_ids), dtype=np.int64)
    # Positions grouped by task (stable: in schedule order), only the tasks present here:
    # O(rows) per chunk instead of O(rows x tasks).
    order = np.argsort(task_ids, kind="stable")
    counts = np.bincount(task_ids, minlength=len(draws))
    at_end = 0
    for t in np.flatnonzero(counts):
        at = order[at_end : at_end + counts[t]]
        at_end += int(counts[t])
        start = int(done[t])
        rows[at] = draws[t].rows(start, start + len(at)) + gatherer.table_starts[t]
        done[t] += len(at)
    return gatherer.take(rows)


def _stage(folder: Path, inputs: list[TaskInput], draws: list[TaskDraw], quiet: bool) -> StagedRows:
    """Each task's drawn rows, all of them, in the order the mixture takes them
    (:mod:`instructkit.mix.staging`), in an unnamed file in ``folder`` (the output being
    written: the disk that will hold the train split anyway): one pass over each input."""
    staged = None
    try:
        staged = StagedRows(folder)
        _stage_into(staged, inputs, draws, quiet)
    except BaseException as ex:
        if staged is not None:
            staged.close()
        if isinstance(ex, OSError):
            raise MixError(
                f"Cannot stage the drawn rows beside the output in '{folder.parent}' "
                f"({ex.strerror or ex}): that disk needs room for the train split twice "
                f"while the mixture is written."
            ) from ex
        raise
    return staged


def _stage_into(
    staged: StagedRows, inputs: list[TaskInput], draws: list[TaskDraw], quiet: bool
) -> None:
    with profiling.phase("  stage drawn rows", thread=True):
        for task in inputs:  # what planning read stays out of memory: one task at a time
            task.release_train()
        with progress_bar(sum(d.quota for d in draws), "mix: stage drawn rows", quiet) as bar:
            total = sum(d.quota for d in draws)
            for task, draw in zip(inputs, draws, strict=True):
                # batches about the size of the task's share of a chunk: a chunk then reads
                # about one batch of each task, and re-reads at most one
                share = CHUNK_BYTES * draw.quota // max(total, 1)
                staged.add_task(max(MIN_STAGED_BATCH, min(STAGED_BATCH, share)))
                gatherer = RowGatherer([task.train], [task.train_batch_releasers])
                piece = chunk_rows([task.train])
                for start in range(0, draw.quota, piece):
                    rows = draw.rows(start, min(draw.quota, start + piece))
                    staged.append(gatherer.take(rows))
                    bar.update(len(rows))
                task.release_train()


def _gather_staged(staged: StagedRows, task_ids: np.ndarray, done: np.ndarray) -> pa.Table:
    """A chunk's rows from the staged runs: each task's next rows, then into schedule order."""
    order = np.argsort(task_ids, kind="stable")
    counts = np.bincount(task_ids, minlength=len(done))
    parts: list[pa.RecordBatch] = []
    for t in np.flatnonzero(counts):
        start = int(done[t])
        parts += staged.read(int(t), start, start + int(counts[t]))
        done[t] += counts[t]
    grouped = pa.concat_batches(parts)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.Table.from_batches([grouped.take(pa.array(inverse))])


def _timed(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The schedule's chunks, the time to compute them counted as a phase."""
    while True:
        with profiling.phase("  schedule", thread=True):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """Produce the next item in a worker thread while the caller consumes the current one.

    Arrow's take and the shard writes release the GIL, so gathering chunk k+1 overlaps
    writing chunk k; only one thread ever advances ``items``.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(next, items, None)
        while (item := future.result()) is not None:
            future = pool.submit(next, items, None)
            yield item


def _eval_table(task: TaskInput, split: str, cap: int | None) -> pa.Table:
    table = task.evaluation[split]
    if cap is not None:
        table = table.slice(0, cap)  # the first rows: the same ones for every seed and epoch
    table = table.select(artifact.SCHEMA.names).replace_schema_metadata(None)
    names = pa.array([task.name] * table.num_rows, type=pa.string())
    return table.set_column(table.schema.get_field_index("task"), "task", names)


def build_manifest(
    result: MixResult,
    inputs: list[TaskInput],
    split_infos: dict[str, artifact.SplitInfo],
    names: list[str],
    command: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The mixture's manifest: spec, inputs, target vs realized per task, hygiene, shards."""
    total = result.total
    target_total = sum(t.target_rows for t in result.tasks)
    tasks = []
    for plan, task in zip(result.tasks, inputs, strict=True):
        entry = plan.to_json(total, target_total)
        entry.update(
            fingerprint=task.fingerprint,
            input_manifest=task.manifest,
            metrics=task.metrics,
        )
        tasks.append(entry)
    return {
        "kind": "mix",
        "instructkit_version": __version__,
        "form": inputs[0].form if inputs else "text",
        "command": dict(command) if command is not None else None,
        "seed": result.spec.seed,
        "epoch": result.epoch,
        "spec": result.spec.to_json(),
        "total": total,
        "tasks": tasks,
        "metrics": {task.name: task.metrics for task in inputs},
        "counts": _counts(result, names),
        "prefix_deviation": {"max": result.max_prefix_deviation, "bound": 1},
        "dedup": {
            "enabled": result.spec.dedup,
            "removed": {t.name: t.duplicates for t in result.tasks},
        },
        "decontamination": result.contamination,
        "splits": {name: info.to_json() for name, info in split_infos.items()},
    }


def _counts(result: MixResult, names: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {"train": {t.name: t.quota for t in result.tasks}}
    for split in EVAL_SPLITS:
        per_task = {t.name: t.eval_rows[split] for t in result.tasks if split in t.eval_rows}
        if per_task:
            counts[split] = per_task
    return counts

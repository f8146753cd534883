"""Turn one batch of kept source rows into output rows; optionally across worker processes.

A batch is rendered template by template (each template sees only the rows assigned to it),
then put back in source order, template order within an example. Workers get whole batches and
results are consumed in submission order, so the bytes do not depend on ``--num-proc``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import multiprocessing
import os
import queue
import signal
import threading
import weakref
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructkit import profiling
from instructkit.artifacts.dataset import schema_for
from instructkit.errors import RenderError
from instructkit.render.budget import TokenBudget
from instructkit.render.fast import (
    blank_rows,
    bool_array,
    bool_numpy,
    gather_render,
    index_array,
    offsets_array,
    plan_fits,
    render_batch,
    render_completions,
    repeat_text,
    text_array,
)
from instructkit.render.framing import DEMO_GAP, Framing
from instructkit.render.templates import CompiledTemplate, Plan


@dataclass
class BatchJob:
    """Kept rows of one source batch with what the renderer needs to know about them."""

    table: pa.Table
    example_ids: pa.Array
    source_split: str
    source_index: np.ndarray
    assignment: np.ndarray | None  # template index per row; None renders every template
    # (member, first row, rows, columns) of a split held in memory: a forked worker reads the
    # rows from its inherited copy instead of having them pickled (a slice pickles its whole
    # buffers: DialogSum x8 sent 4x its input through the pipes)
    origin: tuple[int, int, int, list[str] | None] | None = None


@dataclass
class BatchResult:
    table: pa.Table
    examples: int = 0
    counts: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    over_budget: Counter = field(default_factory=Counter)
    empty_prompts: Counter = field(default_factory=Counter)
    empty_completions: Counter = field(default_factory=Counter)
    prompt_tokens: dict[str, np.ndarray] = field(default_factory=dict)
    completion_tokens: dict[str, np.ndarray] = field(default_factory=dict)
    spilled: str | None = None  # a worker's rows, in this Arrow file instead of ``table``
    slot: tuple[int, int] | None = None  # or in this shared slot: (index, bytes)


@dataclass
class BatchRenderer:
    """Renders batches for one output split with a fixed set of templates."""

    task: str
    templates: list[CompiledTemplate]
    references: dict[str, list[str]]
    trim_field: str | None = None
    budget: TokenBudget | None = None
    fail_on_empty: bool = False  # an empty prompt stops the run instead of being counted
    framing: Framing | None = None  # None: the rendered strings as they are (no separator)

    @property
    def schema(self) -> pa.Schema:
        return schema_for(self.framing.form if self.framing is not None else "text")

    def __call__(self, job: BatchJob) -> BatchResult:
        # Not schema.empty_table(): that imports pandas (see fastrender's Arrow helpers).
        empty = pa.Table.from_batches([], schema=self.schema)
        result = BatchResult(table=empty, examples=job.table.num_rows)
        gathered = self._render_gathered(job, result)
        if gathered is not None:
            result.table = gathered
            return result
        pieces, order = [], []
        for index, template in enumerate(self.templates):
            rows = _rows_for(job, index)
            if len(rows) == 0:
                continue
            pieces.append(self._render_template(template, job, rows, result))
            order.append(rows * len(self.templates) + index)
        if pieces:
            # One contiguous table first: take() on many chunks is several times slower.
            table = pa.concat_tables(pieces).combine_chunks()
            result.table = table.take(index_array(np.argsort(np.concatenate(order), kind="stable")))
        return result

    def _render_gathered(self, job: BatchJob, result: BatchResult) -> pa.Table | None:
        """Every template of the batch at once, straight into output order; None if it can't.

        Only when each template is plain concatenation of literals and fields (no budget,
        no demonstrations, no references to render, no chat messages): then a row's prompt
        is the system prompt, the template's parts and the separator, and one gather per
        column writes the rows in (example, template) order, with the same bytes as
        rendering template by template and interleaving.
        """
        framing = self.framing
        if self.budget is not None or not self._gatherable(job.table):
            return None
        if framing is not None and (framing.form != "text" or framing.few_shot):
            return None
        k, n = len(self.templates), job.table.num_rows
        if job.assignment is None:
            rows, which = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
        else:
            rows, which = np.arange(n), np.asarray(job.assignment, dtype=np.int64)
        if not self._count_gathered(job, rows, which, result):
            return None
        prompt = gather_render(
            [self._framed_plan(plan) for plan in self._plans("prompt")], job.table, rows, which
        )
        completion = gather_render(self._plans("completion"), job.table, rows, which)
        count = len(rows)
        ids = text_array([t.template_id for t in self.templates])
        return pa.table(
            {
                "prompt": prompt,
                "completion": completion,
                "references": pa.ListArray.from_arrays(
                    offsets_array(np.arange(count + 1)), completion
                ),
                "task": repeat_text(self.task, count),
                "template_id": ids.take(index_array(which)),
                "example_id": job.example_ids.take(index_array(rows)),
                "source_split": repeat_text(job.source_split, count),
                "source_index": index_array(job.source_index[rows]),
            },
            schema=self.schema,
        )

    def _count_gathered(
        self, job: BatchJob, rows: np.ndarray, which: np.ndarray, result: BatchResult
    ) -> bool:
        """Count rows and blank prompts/completions per template; False to let the
        template-by-template path raise the --on-empty fail error that names the row."""
        blanks: dict[str, np.ndarray] = {}

        def blank_column(name: str) -> np.ndarray:
            if name not in blanks:
                blanks[name] = ~present(job.table.column(name))
            return blanks[name]

        used = np.bincount(which, minlength=len(self.templates))
        counters = {"prompt": result.empty_prompts, "completion": result.empty_completions}
        for index, template in enumerate(self.templates):
            if not used[index]:
                continue
            mine = slice(None) if job.assignment is None else rows[which == index]
            for block, counter in counters.items():
                plan = template.plans[block] or []
                empty = int(blank_rows(plan, job.table, blank_column)[mine].sum())
                if empty and self.fail_on_empty:
                    return False
                if empty:
                    counter[template.template_id] += empty
            result.counts[template.template_id] += int(used[index])
        return True

    def _plans(self, block: str) -> list[Plan]:
        plans = [t.plans[block] for t in self.templates]
        assert all(p is not None for p in plans)  # checked by _gatherable
        return [p for p in plans if p is not None]

    def _gatherable(self, table: pa.Table) -> bool:
        for template in self.templates:
            if template.whole_row or not all(
                plan_fits(template.plans[block], table) for block in ("prompt", "completion")
            ):
                return False
            varied = [f for f in template.fields["completion"] if f in self.references]
            if template.kind == "original" and varied:
                return False
        return True

    def _framed_plan(self, plan: Plan) -> Plan:
        """The template's prompt parts with the text form's framing around them."""
        framing = self.framing
        if framing is None:
            return list(plan)
        head = [] if framing.system is None else [("text", framing.system + DEMO_GAP)]
        return [*head, *plan, ("text", framing.separator)]

    def _render_template(
        self, template: CompiledTemplate, job: BatchJob, rows: np.ndarray, result: BatchResult
    ) -> pa.Table:
        every_row = len(rows) == job.table.num_rows  # 'all': no copy of the batch per template
        sub = job.table if every_row else job.table.take(index_array(rows))

        def describe(i: int) -> str:
            row = int(rows[i])
            return (
                f"row {job.source_split}[{int(job.source_index[row])}] "
                f"(example_id '{job.example_ids[row].as_py()}')"
            )

        prompt, completion = render_batch(template, sub, describe)
        if self.budget is not None:
            prompt, completion = self._apply_budget(
                template, sub, prompt, completion, describe, result
            )
        self._count_empty(template, prompt, describe, result)
        self._count_empty(template, completion, describe, result, "completion")
        references = self._references(template, sub, completion, describe)
        n = len(rows)
        result.counts[template.template_id] += n
        example_ids = job.example_ids if every_row else job.example_ids.take(index_array(rows))
        if self.framing is not None:
            # after the budget: it counts (and trims) the template's own prompt text
            prompt, completion = self.framing.frame(
                template.template_id, prompt, completion, example_ids
            )
        return pa.table(
            {
                "prompt": prompt,
                "completion": completion,
                "references": references,
                "task": repeat_text(self.task, n),
                "template_id": repeat_text(template.template_id, n),
                "example_id": example_ids,
                "source_split": repeat_text(job.source_split, n),
                "source_index": index_array(job.source_index[rows]),
            },
            schema=self.schema,
        )

    def _count_empty(
        self, template, texts: pa.Array, describe, result: BatchResult, block: str = "prompt"
    ) -> None:
        empty = ~present(texts)
        if not empty.any():
            return
        if self.fail_on_empty:
            raise RenderError(
                f"Template '{self.task}/{template.template_id}' rendered an empty {block} for "
                f"{describe(int(np.argmax(empty)))}: fix the template or the data, or drop "
                f"--on-empty fail to count such rows instead."
            )
        counter = result.empty_prompts if block == "prompt" else result.empty_completions
        counter[template.template_id] += int(empty.sum())

    def _apply_budget(self, template, sub, prompt, completion, describe, result):
        budget = self.budget
        assert budget is not None
        prompt_len = budget.count(prompt)
        limit = budget.max_prompt_tokens
        if limit is not None and (prompt_len > limit).any():
            prompt, completion, prompt_len = self._trim(
                template, sub, prompt, completion, prompt_len, describe, result
            )
        completion_len = budget.count(completion)
        if budget.max_completion_tokens is not None:
            over = int((completion_len > budget.max_completion_tokens).sum())
            result.over_budget[f"{template.template_id}:completion"] += over
        tid = template.template_id
        result.prompt_tokens[tid] = _append(result.prompt_tokens.get(tid), prompt_len)
        result.completion_tokens[tid] = _append(result.completion_tokens.get(tid), completion_len)
        return prompt, completion

    def _trim(self, template, sub, prompt, completion, prompt_len, describe, result):
        budget = self.budget
        assert budget is not None and budget.max_prompt_tokens is not None
        prompts, completions = prompt.to_pylist(), completion.to_pylist()
        lengths = prompt_len.copy()
        trimmable = self.trim_field is not None and self.trim_field in template.fields["prompt"]
        for i in np.nonzero(prompt_len > budget.max_prompt_tokens)[0]:
            fitted = None
            if trimmable:
                row = sub.slice(int(i), 1).to_pylist()[0]
                fitted = budget.fit_prompt(template, row, self.trim_field, describe(int(i)))
            if fitted is None:
                result.over_budget[f"{template.template_id}:prompt"] += 1
                continue
            prompts[i], completions[i] = fitted
            lengths[i] = budget.count([fitted[0]])[0]
            result.truncated[template.template_id] += 1
        return pa.array(prompts, pa.string()), pa.array(completions, pa.string()), lengths

    def _references(self, template, sub, completion, describe) -> pa.Array:
        varied = [f for f in template.fields["completion"] if f in self.references]
        if template.kind != "original" or not varied:
            offsets = offsets_array(np.arange(len(completion) + 1))
            return pa.ListArray.from_arrays(offsets, completion)
        count = max(len(self.references[f]) for f in varied)
        rendered = [self._reference(template, sub, varied, i, describe) for i in range(count)]
        return _reference_lists(rendered, completion)

    def _reference(self, template, sub, varied, i, describe) -> pa.Array:
        valid = np.ones(sub.num_rows, dtype=bool)
        table = sub
        for name in varied:
            columns = self.references[name]
            if i >= len(columns) or columns[i] not in sub.column_names:
                return pa.nulls(sub.num_rows, pa.string())
            column = sub.column(columns[i])
            has = present(column)
            valid &= has
            # Rows without this reference render the first one, then drop out below.
            table = table.set_column(
                table.column_names.index(name),
                name,
                pc.if_else(bool_array(has), column, sub.column(name)),
            )
        rendered = render_completions(template, table, describe)
        return pc.if_else(bool_array(valid), rendered, pa.nulls(sub.num_rows, pa.string()))


def _reference_lists(rendered: list[pa.Array], completion: pa.Array) -> pa.ListArray:
    """Each row's rendered references in variant order, or its completion when it has none."""
    n = len(completion)
    have = np.stack([bool_numpy(variant.is_valid()) for variant in rendered])
    # One candidate table, variants first and the completion last: row r of candidate v sits
    # at v * n + r; picking candidates row by row keeps the variant order within a row.
    chosen = np.vstack([have, ~have.any(axis=0)])
    rows, candidates = np.nonzero(chosen.T)
    values = pa.concat_arrays([*rendered, completion]).take(index_array(candidates * n + rows))
    offsets = np.concatenate([[0], np.cumsum(chosen.sum(axis=0))])
    return pa.ListArray.from_arrays(offsets_array(offsets), values)


def _rows_for(job: BatchJob, template_index: int) -> np.ndarray:
    if job.assignment is None:
        return np.arange(job.table.num_rows)
    return np.nonzero(job.assignment == template_index)[0]


# The bytes RE2's \s matches (it has no \v), as ``str.strip`` is not what the regex means.
_BLANK_BYTES = np.zeros(256, dtype=bool)
_BLANK_BYTES[[ord(c) for c in " \t\n\f\r"]] = True


def present(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where a text value is there and is not only whitespace (RE2's ``\\s``)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return bool_numpy(column.is_valid())
    valid = bool_numpy(column.is_valid())
    # Nearly every value starts with a visible byte, and that alone makes it present: only the
    # rest (empty, or starting with a space) go through the regex. One byte per row is read
    # instead of the regex engine's call per row (DialogSum x8: 40 ms of the render's thread).
    offset_type = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(column.buffers()[1], dtype=offset_type)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    starts, lengths = offsets[:-1], np.diff(offsets)
    data = column.buffers()[2]
    first = np.zeros(len(column), dtype=np.uint8)
    if data is not None and data.size:
        nonempty = valid & (lengths > 0)  # a null slot's offsets may point anywhere
        first[nonempty] = np.frombuffer(data, dtype=np.uint8)[starts[nonempty]]
    unsure = valid & ((lengths == 0) | _BLANK_BYTES[first])
    result = valid.copy()
    if unsure.any():
        rows = np.nonzero(unsure)[0]
        blank = pc.match_substring_regex(column.take(index_array(rows)), r"^\s*$")
        result[rows] = ~bool_numpy(blank)
    return result


def _append(existing: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    return values if existing is None else np.concatenate([existing, values])


class FixedChunks:
    """Write rows in record batches of a fixed size, whatever size they were rendered in.

    The Arrow stream records batch boundaries, so this is what makes the shard bytes
    independent of the batch size and the number of workers.

    Each chunk has the bytes of a slice of every pending row combined into one table (the
    original implementation, kept as the reference in tests) without combining them all: a
    chunk inside one rendered table is a slice of it, a chunk that straddles tables is
    combined alone (DialogSum x8: 0.19 s less CPU, 1.1 GB less copying). Why that is the
    same: the IPC writer writes a slice as its content plus, as padding, up to
    ``IPC_PADDING`` bytes it finds after it in each buffer, so a chunk is cut this way only
    where those bytes are the rows that follow it in the reference's table. Nulls and empty
    list ranges are written by other rules: those chunks are cut as the reference cuts them.
    """

    rows = 8192

    def __init__(self, write) -> None:
        self.write = write
        # the pending rows as (table, start, length) pieces of the tables added; the reference
        # held them as ``entries`` tables: the rest of its last combined table, then one per add
        self.pieces: list[tuple[pa.Table, int, int]] = []
        self.entries = 0
        self.rest_pending = False  # the first entry is such a rest
        self.count = 0
        # the pending rest's origin in the reference: the one table it combined last, when
        # that was a single table (``combine_chunks`` returned it) and the rest is its end;
        # None when the reference concatenated tables (exact buffers) or nothing is pending
        self.rest_table: tuple[pa.Table, int] | None = None

    def add(self, table: pa.Table) -> None:
        if any(column.num_chunks != 1 for column in table.columns):
            table = table.combine_chunks()  # as the reference's combine would (one chunk)
        self.pieces.append((table, 0, table.num_rows))
        self.entries += 1
        self.count += table.num_rows
        if self.count >= self.rows:
            self._emit(final=False)

    def flush(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        total = self.count
        full = total if final else total - total % self.rows
        pieces = self.pieces
        if pieces and full == total and 0 < total <= self.rows:
            self.write(self._whole(pieces))  # the reference's combined table, covered whole
        elif full:
            starts = range(0, full, self.rows)
            chunks = [_chunk(pieces, s, min(self.rows, full - s), total) for s in starts]
            if any(chunk is None for chunk in chunks):
                pieces = [(_combine(pieces, force=False), 0, total)]  # the reference itself
                chunks = [pieces[0][0].slice(s, min(self.rows, full - s)) for s in starts]
            for chunk in chunks:
                self.write(chunk)
        rest = _cut(pieces, full, total - full)
        self.pieces, self.entries = rest, 1 if rest else 0
        self.rest_pending = bool(rest)
        self.rest_table = (pieces[0][0], full) if rest and len(pieces) == 1 else None
        self.count = total - full

    def _whole(self, pieces: list[tuple[pa.Table, int, int]]) -> pa.Table:
        """Every pending row as the reference's combined table holds them."""
        if self.entries > 1:
            return _combine(pieces, force=False)
        if not self.rest_pending:  # one table added, none chunked: combine_chunks = itself
            return pieces[0][0]
        # the rest alone, the end of the reference's last combined table: of the one table
        # it combined, or of a concatenation (exact buffers, nothing after them)
        if self.rest_table is not None:
            table, start = self.rest_table
            return table.slice(start)
        return _combine(pieces, force=True)


# Arrow's IPC writer cuts a sliced variable-width buffer to its content rounded up to 64 bytes
# (its alignment), keeping what follows the slice in the buffer as padding.
IPC_PADDING = 64
FOLLOWING_ROWS = 256  # rows combined after a straddling chunk, for that padding


def _chunk(pieces: list[tuple[pa.Table, int, int]], start: int, length: int, total: int):
    """Rows ``start`` to ``start + length`` of the ``total`` pending rows in ``pieces``, with
    the bytes of the reference's slice of its combined table; None where unsure."""
    needed = _cut(pieces, start, length)
    if len(needed) == 1:
        table, offset, count = needed[0]
        if _slice_is_content(table, offset, offset + count):
            return table.slice(offset, count)
    left = total - start - length
    for following in (min(FOLLOWING_ROWS, left), left):
        parts = _cut(pieces, start, length + following)
        if following == left:  # the reference's table may end in the last piece's own buffers
            table, offset, count = parts[-1]
            if not _slice_is_content(table, offset, offset + count, at_end=True):
                return None
        combined = _combine(parts, force=True)
        if _slice_is_content(combined, 0, length, at_end=following == left):
            return combined.slice(0, length)
    return None


def _combine(pieces: list[tuple[pa.Table, int, int]], force: bool) -> pa.Table:
    """The pieces' rows in one table of one chunk; ``force``: always a copy of exact size."""
    table = pa.concat_tables([t.slice(a, n) for t, a, n in pieces])
    if force:
        columns = [pa.concat_arrays(column.chunks) for column in table.columns]
        return pa.Table.from_arrays(columns, schema=table.schema)
    return table.combine_chunks()


def _cut(pieces: list[tuple[pa.Table, int, int]], start: int, length: int) -> list:
    """The (table, start, length) pieces holding rows ``start`` to ``start + length``."""
    out, seen = [], 0
    for table, offset, count in pieces:
        lo, hi = max(start, seen), min(start + length, seen + count)
        if lo < hi:
            out.append((table, offset + lo - seen, hi - lo))
        seen += count
    return out


def _slice_is_content(table: pa.Table, start: int, end: int, at_end: bool = False) -> bool:
    """Whether rows ``start`` to ``end`` are written the same from any table holding them
    followed by the rows after them here (``at_end``: by no rows at all)."""
    return all(_array_is_content(c.chunk(0), start, end, at_end) for c in table.columns)


def _array_is_content(array: pa.Array, start: int, end: int, at_end: bool) -> bool:
    kind = array.type
    if array.null_count or array.offset:
        return False
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        data = array.buffers()[2]
        after = (data.size if data is not None else 0) - _offset_at(array, end)
        return after == 0 if at_end else after >= IPC_PADDING
    if pa.types.is_list(kind):
        first, last = _offset_at(array, start), _offset_at(array, end)
        return first < last and _array_is_content(array.values, first, last, at_end)
    if pa.types.is_struct(kind):
        return all(
            _array_is_content(array.field(i), start, end, at_end) for i in range(kind.num_fields)
        )
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if kind.bit_width != 64:  # padded to 8 bytes: narrower values take some of what follows
            return False
        after = (len(array) - end) * 8
        return after == 0 if at_end else after >= IPC_PADDING
    return False


def _offset_at(array: pa.Array, index: int) -> int:
    """Entry ``index`` of a string or list array's (32-bit) offsets buffer."""
    return int(np.frombuffer(array.buffers()[1], dtype=np.int32, count=1, offset=4 * index)[0])


# ---------------------------------------------------------------- running batches

_worker_renderer: BatchRenderer | None = None
_worker_dir: Path | None = None
_worker_slots: SharedSlots | None = None
_worker_restore: Callable[[BatchJob], BatchJob] | None = None

SLOT_BYTES = 128 << 20  # a worker's batch as an Arrow stream; a larger one goes through a file


class SharedSlots:
    """Shared memory the workers write their batches into, each slot reused batch after batch.

    Made before the workers are forked, so that they inherit it. Pages touched for the first
    time cost 0.7 s a GB here, reused ones 0.07 s; the Arrow files this replaces went through
    the page cache (DialogSum x8 at --num-proc 2: 2.7 s of system time). A slot returns to
    the free list when the last Arrow buffer over it is released (a finalizer), so a table
    passed on to the writer keeps its slot exactly as long as it is needed.
    """

    def __init__(self, count: int, size: int | None = None) -> None:
        size = size or SLOT_BYTES
        self.maps = [mmap.mmap(-1, size, flags=mmap.MAP_SHARED) for _ in range(count)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe in finalizers
        for index in range(count):
            self._free.put(index)

    def take(self) -> int | None:
        """A free slot, or None when all are in use (that batch goes through a file)."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return None

    def give_back(self, index: int) -> None:
        self._free.put(index)

    def write(self, index: int, table: pa.Table) -> int:
        """Write ``table`` into slot ``index`` as an Arrow stream; its size, or OSError."""
        sink = pa.FixedSizeBufferWriter(pa.py_buffer(self.maps[index]))
        with pa.ipc.new_stream(sink, table.schema) as out:
            out.write_table(table)
        return sink.tell()

    def read(self, index: int, size: int) -> pa.Table:
        """The table in slot ``index``, over the shared memory (no copy)."""
        view = np.frombuffer(self.maps[index], dtype=np.uint8, count=size)
        weakref.finalize(view, self.give_back, index)
        return pa.ipc.open_stream(pa.py_buffer(view)).read_all()


def _run_in_worker(number: int, job: BatchJob, slot: int | None) -> BatchResult:
    """Render in a worker; the rows go back through shared memory, the counts through the pipe.

    Pickling the rendered text (1.1 GB for DialogSum x8 with every template) cost the parent
    more CPU than rendering it. A batch too large for its slot, or one given no slot, goes
    back as an Arrow file; either way the parent reads it without a copy.
    """
    assert _worker_renderer is not None and _worker_dir is not None
    if job.table is None and _worker_restore is not None:
        job = _worker_restore(job)
    result = _worker_renderer(job)
    if slot is not None and _worker_slots is not None:
        try:
            result.slot = (slot, _worker_slots.write(slot, result.table))
            result.table = None  # type: ignore[assignment]
            return result
        except OSError:  # larger than a slot
            pass
    path = _worker_dir / f"batch-{number:08d}.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, result.table.schema) as out:
        out.write_table(result.table)
    result.table = None  # type: ignore[assignment]
    result.spilled = str(path)
    return result


def _load_spilled(result: BatchResult, slot: int | None, slots: SharedSlots | None) -> BatchResult:
    if result.slot is not None and slots is not None:
        index, size = result.slot
        result.slot = None
        result.table = slots.read(index, size)
    elif slot is not None and slots is not None:
        slots.give_back(slot)  # the worker used a file instead
    if result.spilled is not None:
        path, result.spilled = result.spilled, None
        result.table = _map_table(path)
        with contextlib.suppress(OSError):  # the mapping stays valid; the name is not needed
            os.unlink(path)
    return result


def _map_table(path: str) -> pa.Table:
    """An Arrow stream file as a table over a read-only memory map (no copy of the rows).

    Where the platform has MAP_POPULATE the pages are mapped in one call: faulting them in
    one by one (1.1 GB: 280k faults) cost the parent more than the copy it saves.
    """
    flags = getattr(mmap, "MAP_POPULATE", None)
    if flags is None:
        with pa.memory_map(path) as source:
            return pa.ipc.open_stream(source).read_all()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise RenderError(f"A worker's batch file '{path}' is empty.")
        mapped = mmap.mmap(
            handle.fileno(), size, flags=mmap.MAP_SHARED | flags, prot=mmap.PROT_READ
        )
    return pa.ipc.open_stream(pa.BufferReader(pa.py_buffer(mapped))).read_all()


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group: only the parent handles it (it stops the pool).
    # A worker interrupted inside a queue operation would leave the parent waiting forever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's SIGTERM handler is not ours


def run_batches(
    renderer: BatchRenderer,
    jobs: Iterable[BatchJob],
    num_proc: int,
    work_dir: Path | None = None,
    restore: Callable[[BatchJob], BatchJob] | None = None,
) -> Generator[BatchResult, None, None]:
    """Render jobs in order; with ``num_proc`` > 1 in forked workers, a few batches ahead.

    Workers hand their rows back through shared memory or as Arrow files in ``work_dir`` (a
    folder inside the output being written; the caller removes it). ``restore`` rebuilds a
    job's rows from its ``origin`` in a worker, so that they are not sent. Close the
    generator (``contextlib.closing``) when stopping early: that stops the workers.
    """
    if num_proc <= 1:
        yield from map(renderer, jobs)
        return
    if work_dir is None:
        raise ValueError("run_batches needs a work_dir for more than one process")
    global _worker_renderer, _worker_dir, _worker_slots, _worker_restore
    _worker_renderer = renderer  # forked workers inherit it: templates are compiled once
    _worker_restore = restore
    _worker_dir = Path(work_dir)
    _worker_dir.mkdir(parents=True, exist_ok=True)
    window = 2 * num_proc
    # slots for the batches in flight and those the writer still holds (queue, chunker)
    slots = _worker_slots = SharedSlots(window + SLOTS_HELD_BY_WRITER)
    context = multiprocessing.get_context("fork")
    pool = context.Pool(num_proc, initializer=_ignore_sigint)
    try:
        sent = (_without_rows(job) if restore is not None else job for job in jobs)
        for result, slot in _in_order(pool.apply_async, sent, window, slots):
            yield _load_spilled(result, slot, slots)
        pool.close()
    except BaseException:  # Ctrl-C, an error, or the consumer closing us early
        pool.terminate()
        raise
    finally:
        pool.join()
        _worker_slots = None


def _without_rows(job: BatchJob) -> BatchJob:
    if job.origin is None:
        return job
    return dataclasses.replace(job, table=None, example_ids=None)  # type: ignore[arg-type]


SLOTS_HELD_BY_WRITER = 6  # BackgroundWriter's queue (2), its current table, FixedChunks (3)


def _in_order(
    submit: Callable, jobs: Iterable[BatchJob], window: int, slots: SharedSlots
) -> Iterator[tuple[BatchResult, int | None]]:
    # A bounded window keeps memory flat: only a few batches are in flight at any time.
    pending: deque = deque()
    for number, job in enumerate(jobs):
        slot = slots.take()
        pending.append((submit(_run_in_worker, (number, job, slot)), slot))
        if len(pending) >= window:
            result, slot = pending.popleft()
            yield result.get(), slot
    while pending:
        result, slot = pending.popleft()
        yield result.get(), slot


class BackgroundWriter:
    """Hand tables to ``write`` in one background thread, at most ``depth`` tables ahead.

    Used as a context manager: a normal exit waits for the last write and re-raises its
    error; an exception stops writing (what is queued is dropped) and waits for the thread.
    """

    def __init__(self, write: Callable[[pa.Table], None], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = False
        # Started on the first put(): by then --num-proc's workers are forked, so no fork
        # happens while this thread may hold a lock.
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is not None or self._stop:
                continue  # keep draining so that put() never blocks forever
            try:
                with profiling.phase("write shards", thread=True):
                    self._write(table)
            except BaseException as ex:  # re-raised in the caller's thread
                self._error = ex

    def put(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="instructkit-writer", daemon=True
            )
            self._thread.start()
        with profiling.phase("wait for the writer"):  # the queue is full: writing is behind
            self._queue.put(table)

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self._thread is None:
            return
        if kind is not None:
            self._stop = True
        with profiling.phase("wait for the writer"):
            self._queue.put(None)
            self._thread.join()
        if kind is None and self._error is not None:
            raise self._error

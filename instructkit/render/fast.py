"""Render a batch of rows through one template, vectorised where the template allows it.

Per-row ``Template.render`` costs ~20 µs, which dominates rendering. A block that only
concatenates literal text and fields (most instruction templates) is rendered for a whole batch
with Arrow's string kernels instead, without creating a Python string per row. Any other block
goes through Jinja row by row. Both give the same bytes (tests/render/test_render_fast.py
proves it on random templates and rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructkit.render.templates import CompiledTemplate, Plan

# Arrow casts these to the same text Python's str() gives; floats and bools differ, so they
# take the per-row path.
_FAST_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)

Describe = Callable[[int], str]


def render_batch(
    template: CompiledTemplate, table: pa.Table, describe: Describe
) -> tuple[pa.Array, pa.Array]:
    """Render every row of ``table`` into (prompt, completion) string arrays."""
    prompt = vectorised(template.plans["prompt"], table)
    completion = vectorised(template.plans["completion"], table)
    if prompt is not None and completion is not None and not template.whole_row:
        return prompt, completion
    prompts, completions = [], []
    for index, row in enumerate(_rows(template, table)):
        p, c = template.render_row(row, describe(index))
        prompts.append(p)
        completions.append(c)
    return text_array(prompts), text_array(completions)


def render_completions(template: CompiledTemplate, table: pa.Table, describe: Describe) -> pa.Array:
    """Render only the completion block (used for each reference of a row)."""
    fast = vectorised(template.plans["completion"], table)
    if fast is not None and not template.whole_row:
        return fast
    return render_batch(template, table, describe)[1]


def vectorised(plan: Plan | None, table: pa.Table) -> pa.Array | None:
    """Concatenate the plan's literals and columns for all rows, or None if it can't."""
    if plan is None or not _columns_fit(plan, table):
        return None
    parts = [
        text_scalar(value) if kind == "text" else _as_string(table.column(value))
        for kind, value in plan
        if not (kind == "text" and value == "")
    ]
    if not parts:
        return repeat_text("", table.num_rows)
    joined = pc.binary_join_element_wise(*parts, text_scalar(""))
    if isinstance(joined, pa.Scalar):  # only literals: broadcast to the batch
        return repeat_text(joined.as_py(), table.num_rows)
    return _as_string(joined)


def _columns_fit(plan: Plan, table: pa.Table) -> bool:
    for kind, value in plan:
        if kind != "field":
            continue
        if value not in table.column_names:
            return False  # Jinja decides: a global, or a missing-field error naming the row
        column = table.column(value)
        if column.null_count or not any(check(column.type) for check in _FAST_TYPES):
            return False
    return True


def _as_string(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        # One chunk (a batch's column): use it as it is; combine_chunks would copy it.
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    return column


def _rows(template: CompiledTemplate, table: pa.Table) -> list[dict]:
    # promptsource templates see the whole example, like promptsource's own apply().
    if template.whole_row:
        return table.to_pylist()
    names = [name for name in table.column_names if name in template.all_fields]
    return table.select(names).to_pylist()


# ---------------------------------------------------------------- Arrow <-> numpy without pandas
# pyarrow imports pandas (~0.2 s, more than rendering 12k rows) the first time it converts a
# Python or numpy object (pa.array, pa.scalar, to_numpy on booleans). Render only needs these
# few conversions, so it builds them from buffers and never pays that import.


def index_array(values: np.ndarray) -> pa.Array:
    """Row numbers (any integer numpy array) as an Arrow int64 array, for take()."""
    return _numeric_array(np.asarray(values, dtype=np.int64), pa.int64())


def offsets_array(values: np.ndarray) -> pa.Array:
    """List offsets as an Arrow int32 array."""
    return _numeric_array(np.asarray(values, dtype=np.int32), pa.int32())


def _numeric_array(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    buffer = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(arrow_type, len(values), [None, buffer])


def bool_array(values: np.ndarray) -> pa.Array:
    """A numpy bool array as an Arrow boolean array (Arrow packs bits, least significant first)."""
    bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def bool_numpy(array: pa.Array) -> np.ndarray:
    """An Arrow boolean array as numpy; nulls read as False."""
    if array.null_count:
        array = pc.fill_null(array, bool_array(np.zeros(1, dtype=bool))[0])
    bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    unpacked = np.unpackbits(bits, bitorder="little", count=array.offset + len(array))
    return unpacked[array.offset :].astype(bool)


def text_array(values: Sequence[str]) -> pa.Array:
    """Python strings as an Arrow string array."""
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(value) for value in encoded], out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), data])


def repeat_text(value: str, count: int) -> pa.Array:
    """``value`` ``count`` times, as an Arrow string array."""
    encoded = value.encode("utf-8")
    offsets = np.arange(count + 1, dtype=np.int32) * len(encoded)
    data = pa.py_buffer(encoded * count)
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), data])


def text_scalar(value: str) -> pa.Scalar:
    return text_array([value])[0]


# ---------------------------------------------------------------- many templates, one gather

INT32_INDEX_LIMIT = 2**31


def plan_fits(plan: Plan | None, table: pa.Table) -> bool:
    """Can ``plan`` be rendered for ``table`` by concatenation (see :func:`gather_render`)?"""
    return plan is not None and _columns_fit(plan, table)


def gather_render(
    plans: Sequence[Plan], table: pa.Table, rows: np.ndarray, which: np.ndarray
) -> pa.Array:
    """Output string ``j`` is plan ``which[j]`` rendered for row ``rows[j]``, in one copy.

    Every plan is padded to the same number of parts (empty literals); a single ``take`` from
    [literals..., field columns...] then writes all parts of all outputs in output order, so
    its data buffer is already the result and only the offsets of each output's first part
    are kept. Rendering template by template, then interleaving, copied every byte twice more.
    """
    literals: dict[str, int] = {"": 0}
    columns: dict[str, int] = {}
    for plan in plans:
        for kind, value in plan:
            if kind == "text":
                literals.setdefault(value, len(literals))
            else:
                columns.setdefault(value, len(columns))
    n = table.num_rows
    width = max(1, max(len(plan) for plan in plans))
    # int32 where it fits (always, for a batch): half the bytes to build and for take() to read
    small = len(literals) + len(columns) * n < INT32_INDEX_LIMIT
    index_type, arrow_type = (np.int32, pa.int32()) if small else (np.int64, pa.int64())
    base = np.zeros((len(plans), width), dtype=index_type)  # the literal, or column start
    is_field = np.zeros((len(plans), width), dtype=index_type)
    for p, plan in enumerate(plans):
        for m, (kind, value) in enumerate(plan):
            if kind == "text":
                base[p, m] = literals[value]
            else:
                base[p, m] = len(literals) + columns[value] * n
                is_field[p, m] = 1
    values = pa.concat_arrays(
        [text_array(list(literals)), *(_as_string(table.column(c)) for c in columns)]
    )
    # np.take over rows of the small tables, then in place: fancy indexing and temporaries
    # made this 10x slower (DialogSum x8: 0.2 s of the render thread).
    index = np.take(base, which, axis=0)
    offset = np.take(is_field, which, axis=0)
    np.multiply(offset, rows.astype(index_type, copy=False)[:, None], out=offset)
    index += offset
    parts = values.take(_numeric_array(index.ravel(), arrow_type))
    count = parts.offset + len(parts) + 1
    part_offsets = np.frombuffer(parts.buffers()[1], dtype=np.int32, count=count)
    offsets = np.ascontiguousarray(part_offsets[parts.offset :: width])
    return pa.Array.from_buffers(
        pa.string(), len(rows), [None, pa.py_buffer(offsets), parts.buffers()[2]]
    )


def blank_rows(
    plan: Plan, table: pa.Table, blank_column: Callable[[str], np.ndarray]
) -> np.ndarray:
    """Rows whose rendering of ``plan`` is blank: every literal and every field is blank."""
    blank = np.ones(table.num_rows, dtype=bool)
    for kind, value in plan:
        if kind == "text":
            if value.strip(" \t\n\r\f"):  # RE2's \s, as present() tests the rendered text
                return np.zeros(table.num_rows, dtype=bool)
        else:
            blank &= blank_column(value)
    return blank

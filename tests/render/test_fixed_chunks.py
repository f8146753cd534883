"""FixedChunks writes the bytes of the original combine-then-slice implementation, whatever
the sizes of the tables it is given, while copying only the chunks that straddle tables."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from instructkit.render.batch import FixedChunks


class ReferenceChunks:
    """The original FixedChunks: every pending table combined into one, then sliced."""

    def __init__(self, write, rows: int) -> None:
        self.write, self.rows = write, rows
        self.pending: list[pa.Table] = []
        self.count = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.count += table.num_rows
        if self.count >= self.rows:
            self._emit(final=False)

    def flush(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending).combine_chunks()
        full = table.num_rows if final else table.num_rows - table.num_rows % self.rows
        for start in range(0, full, self.rows):
            self.write(table.slice(start, min(self.rows, full - start)))
        rest = table.slice(full)
        self.pending = [rest] if rest.num_rows else []
        self.count = rest.num_rows


SCHEMA = pa.schema(
    [("prompt", pa.string()), ("references", pa.list_(pa.string())), ("source_index", pa.int64())]
)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _tables(sizes: list[int], rng: random.Random, chunked: bool) -> list[pa.Table]:
    tables, row = [], 0
    for size in sizes:
        prompts = [None if rng.random() < 0.05 else "p" * rng.randrange(0, 40) for _ in range(size)]
        table = pa.table(
            {
                "prompt": pa.array(prompts, pa.string()),
                "references": [[f"r{row + i}"] * (i % 3) for i in range(size)],
                "source_index": pa.array(range(row, row + size), pa.int64()),
            },
            schema=SCHEMA,
        )
        if chunked and size > 2:  # a table of two chunks, as a concatenation gives
            table = pa.concat_tables([table.slice(0, size // 2), table.slice(size // 2)])
        tables.append(table)
        row += size
    return tables


def _written(chunker_type, tables: list[pa.Table], rows: int) -> list[bytes]:
    out: list[bytes] = []
    chunker = chunker_type(lambda table: out.append(_ipc(table)), rows)
    for table in tables:
        chunker.add(table)
    chunker.flush()
    return out


class SizedChunks(FixedChunks):
    def __init__(self, write, rows: int) -> None:
        super().__init__(write)
        self.rows = rows


@pytest.mark.parametrize("seed", range(500))
def test_same_bytes_as_combining_everything(seed):
    rng = random.Random(seed)
    rows = rng.choice([4, 7, 8, 16])
    sizes = [rng.choice([0, 1, rows - 1, rows, rows + 1, 2 * rows, rng.randrange(1, 5 * rows)])
             for _ in range(rng.randrange(1, 12))]  # fmt: skip
    tables = _tables(sizes, rng, chunked=seed % 3 == 0)
    ours = _written(SizedChunks, tables, rows)
    reference = _written(ReferenceChunks, tables, rows)
    assert len(ours) == len(reference)
    assert ours == reference, f"sizes {sizes}, rows {rows}"


def test_exact_multiples_and_a_lone_rest():
    # tables of exactly one chunk (written whole), then rests left alone at the end
    for sizes in ([8, 8], [8, 3], [3, 5, 8], [11], [5], [16, 5], [13, 0, 3]):
        tables = _tables(sizes, random.Random(1), chunked=False)
        assert _written(SizedChunks, tables, 8) == _written(ReferenceChunks, tables, 8), sizes


def test_chunks_inside_one_table_are_not_copied():
    table = _tables([40], random.Random(2), chunked=False)[0]
    written: list[pa.Table] = []
    chunker = SizedChunks(written.append, 8)
    chunker.add(table)
    chunker.flush()
    buffer = table.column("prompt").chunk(0).buffers()[2]
    assert all(t.column("prompt").chunk(0).buffers()[2].address == buffer.address for t in written)

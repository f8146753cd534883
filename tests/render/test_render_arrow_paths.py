"""Issue 17's Arrow paths give the bytes of the paths they replace: one gather for all
templates of a batch, JSON Lines streamed through a temporary Arrow file, --num-proc workers
handing rows back as Arrow files."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pytest
from test_render import shard_bytes, write_dialogsum
from test_render_fast import random_block, random_text

from instructkit.errors import RenderError, SourceError
from instructkit.render import batch as render_batch
from instructkit.render import sources
from instructkit.render.run import render_dataset


def _template_by_template(monkeypatch) -> None:
    """The reference: every batch rendered per template, then interleaved (before issue 17)."""
    monkeypatch.setattr(render_batch.BatchRenderer, "_render_gathered", lambda *a: None)


def _random_pack(rng: random.Random, directory: Path, count: int) -> Path:
    directory.mkdir(parents=True)
    ids = [f"t{i}" for i in range(count)]
    lines = ["task: random", "templates:"] + [f"  {i}: {{kind: inverted}}" for i in ids]
    (directory / "pack.yaml").write_text("\n".join(lines) + "\n")
    for tid in ids:
        prompt = random_block(rng) if rng.random() < 0.8 else rng.choice(["", " \n "])
        (directory / f"{tid}.jinja").write_text(
            "{% block prompt %}" + prompt + "{% endblock %}\n"
            "{% block completion %}" + random_block(rng) + "{% endblock %}"
        )
    return directory


def _random_rows(rng: random.Random, path: Path, count: int) -> Path:
    rows = [
        {"dialogue": random_text(rng, 60) + "x", "summary": random_text(rng, 30) + "y",
         "topic": rng.choice(["", " ", "\t"]) + random_text(rng, 8) + "z",
         "n": rng.randint(-(10**9), 10**9)}
        for _ in range(count)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("seed", range(6))
def test_one_gather_writes_what_template_by_template_wrote(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    pack = _random_pack(rng, tmp_path / "pack", rng.randint(1, 5))
    data = _random_rows(rng, tmp_path / "train.jsonl", 700)
    options = {
        "templates": str(pack),
        "assignment": ["all", "balanced", "random"][seed % 3],
        "seed": seed,
        "batch_size": rng.choice([64, 300, 4096]),
        "separator": ["\n", "", " ## "][seed % 3],
        "system": None if seed % 2 else "You summarize.",
    }
    calls = []
    gathered = render_batch.BatchRenderer._render_gathered

    def counting(self, job, result):
        table = gathered(self, job, result)
        calls.append(table is not None)
        return table

    monkeypatch.setattr(render_batch.BatchRenderer, "_render_gathered", counting)
    fast = render_dataset(str(data), tmp_path / "fast", **options)
    assert calls and all(calls)  # the gather path did the work
    _template_by_template(monkeypatch)
    reference = render_dataset(str(data), tmp_path / "reference", **options)
    assert shard_bytes(tmp_path / "fast") == shard_bytes(tmp_path / "reference")
    assert fast.manifest["empty_prompts"] == reference.manifest["empty_prompts"]


def test_the_gather_writes_the_same_with_64_bit_indices(tmp_path, monkeypatch):
    from instructkit.render import fast

    rng = random.Random(7)
    pack = _random_pack(rng, tmp_path / "pack", 4)
    data = _random_rows(rng, tmp_path / "train.jsonl", 300)
    options = {"templates": str(pack), "assignment": "all", "batch_size": 128}
    narrow = render_dataset(str(data), tmp_path / "int32", **options)
    monkeypatch.setattr(fast, "INT32_INDEX_LIMIT", 0)  # as for more than 2**31 values
    wide = render_dataset(str(data), tmp_path / "int64", **options)
    assert narrow.manifest["splits"] == wide.manifest["splits"]
    assert shard_bytes(tmp_path / "int32") == shard_bytes(tmp_path / "int64")


def test_an_empty_prompt_with_on_empty_fail_names_the_row_as_before(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: t\ntemplates:\n  blank: {kind: original}\n")
    (pack / "blank.jinja").write_text(
        "{% block prompt %} {% endblock %}{% block completion %}{{ summary }}{% endblock %}"
    )
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"summary": "s"}) + "\n")
    with pytest.raises(RenderError, match=r"empty prompt for row train\[0\]"):
        render_dataset(str(data), tmp_path / "out", templates=str(pack), on_empty="fail")


@pytest.mark.parametrize("assignment", ["all", "balanced"])
def test_dialogsum_gather_keeps_the_bytes_with_framing(tmp_path, monkeypatch, assignment):
    data = write_dialogsum(tmp_path / "data", n_train=1200, n_test=4)
    options = {"data_dir": str(data), "assignment": assignment, "seed": 2, "batch_size": 500,
               "system": "Be brief."}  # fmt: skip
    render_dataset("dialogsum", tmp_path / "fast", **options)
    _template_by_template(monkeypatch)
    render_dataset("dialogsum", tmp_path / "reference", **options)
    assert shard_bytes(tmp_path / "fast") == shard_bytes(tmp_path / "reference")


# ---------------------------------------------------------------- JSON Lines through a spill


def _spill_everything(monkeypatch, block: int = 1 << 14) -> None:
    monkeypatch.setattr(sources, "SPILL_BYTES", 0)
    monkeypatch.setattr(sources, "JSON_BLOCK_BYTES", block)


@pytest.mark.parametrize("num_proc", [1, 2])
def test_streamed_jsonl_writes_the_bytes_of_the_in_memory_table(tmp_path, monkeypatch, num_proc):
    data = write_dialogsum(tmp_path / "data", n_train=1500, n_test=4)
    options = {"data_dir": str(data), "assignment": "all", "seed": 1, "batch_size": 700}
    monkeypatch.setattr(sources, "JSON_BLOCK_BYTES", 1 << 14)  # many blocks either way
    render_dataset("dialogsum", tmp_path / "memory", **options)
    _spill_everything(monkeypatch)
    seen = []
    spill = sources.spill_jsonl
    monkeypatch.setattr(sources, "spill_jsonl", lambda *a: seen.append(spill(*a)) or seen[-1])
    render_dataset("dialogsum", tmp_path / "spill", num_proc=num_proc, **options)
    assert seen and all(s is not None for s in seen)  # every split went through a spill
    assert shard_bytes(tmp_path / "spill") == shard_bytes(tmp_path / "memory")


def test_streamed_jsonl_memory_is_bounded_by_a_block(tmp_path, monkeypatch):
    _spill_everything(monkeypatch, block=1 << 15)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": f"{i} " + "w" * 200}) + "\n" for i in range(20000)))
    digest = hashlib.sha256()
    split = sources.read_file_split(path, "train", digest=digest)
    assert split.table is None and split.spill is not None and split.num_rows == 20000
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    start = pa.total_allocated_bytes()
    peak, rows = 0, 0
    for batch in split.batches(1000):
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - start)
    assert rows == 20000
    whole = sources.read_jsonl(path).nbytes  # 4.2 MB in memory; a pass holds about one block
    assert peak < whole / 8, (peak, whole)


def test_the_streaming_reader_stays_a_few_blocks_ahead(tmp_path, monkeypatch):
    # Arrow's reader thread read the whole file ahead of a slow consumer (x80: 800 MB)
    _spill_everything(monkeypatch, block=1 << 12)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": f"{i} " + "w" * 200}) + "\n" for i in range(6000)))
    lead = {"read": 0, "taken": 0, "most": 0}
    paced = sources._PacedReader
    monkeypatch.setattr(paced, "PATIENCE_S", 30.0)  # a lead beyond the permits would hang

    class Counting(paced):
        def _read(self, size):
            block = super()._read(size)
            lead["read"] += bool(block)
            lead["most"] = max(lead["most"], lead["read"] - lead["taken"])
            return block

        def consumed(self):
            lead["taken"] += 1
            super().consumed()

    monkeypatch.setattr(sources, "_PacedReader", Counting)
    digest = hashlib.sha256()
    split = sources.read_file_split(path, "train", digest=digest)
    assert split.spill is not None and split.num_rows == 6000
    assert lead["taken"] > 100  # many blocks went through
    assert lead["most"] <= paced.AHEAD + 1, lead
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_streaming_falls_back_to_the_whole_file_when_a_type_changes(tmp_path, monkeypatch):
    _spill_everything(monkeypatch, block=1 << 12)
    rows = [{"a": "x", "n": 1}] * 300 + [{"a": "y", "n": 1.5}] * 300  # int64, then double
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    digest = hashlib.sha256()
    split = sources.read_file_split(path, "train", digest=digest)
    assert split.spill is None and split.table is not None
    assert split.table.schema.field("n").type == pa.float64()
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_bad_line_in_a_streamed_file_is_reported_by_number(tmp_path, monkeypatch):
    _spill_everything(monkeypatch, block=1 << 12)
    lines = [json.dumps({"dialogue": f"d {i}", "summary": "s"}) for i in range(400)]
    lines[350] = '{"dialogue": "broken'
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=r"train.jsonl:351: not valid JSON"):
        sources.read_file_split(path, "train", digest=hashlib.sha256())


# ---------------------------------------------------------------- --num-proc


@pytest.mark.parametrize("assignment", ["all", "balanced"])
def test_every_num_proc_writes_the_same_bytes_and_leaves_no_work_files(tmp_path, assignment):
    data = write_dialogsum(tmp_path / "data", n_train=1500, n_test=4)
    options = {"data_dir": str(data), "assignment": assignment, "seed": 5, "batch_size": 600}
    outputs = []
    for num_proc in (1, 2, 3):
        out = tmp_path / f"p{num_proc}"
        render_dataset("dialogsum", out, num_proc=num_proc, **options)
        assert not list(out.rglob(".render-work*"))
        outputs.append(shard_bytes(out))
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize("route", ["slots", "files: too large", "files: no slot free"])
def test_workers_hand_batches_back_through_slots_or_files_alike(tmp_path, monkeypatch, route):
    data = write_dialogsum(tmp_path / "data", n_train=900, n_test=4)
    options = {"data_dir": str(data), "assignment": "all", "seed": 5, "batch_size": 200}
    render_dataset("dialogsum", tmp_path / "one", **options)
    used = {"slots": 0, "files": 0}
    load = render_batch._load_spilled

    def counting(result, slot, slots):
        used["slots" if result.slot is not None else "files"] += 1
        return load(result, slot, slots)

    monkeypatch.setattr(render_batch, "_load_spilled", counting)
    if route == "files: too large":
        monkeypatch.setattr(render_batch, "SLOT_BYTES", 1024)
    if route == "files: no slot free":
        monkeypatch.setattr(render_batch.SharedSlots, "take", lambda self: None)
    render_dataset("dialogsum", tmp_path / "two", num_proc=2, **options)
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one")
    assert not list((tmp_path / "two").rglob(".render-work*"))
    expected = "slots" if route == "slots" else "files"
    assert used[expected] > 3 and used["slots" if expected == "files" else "files"] == 0


def test_a_worker_error_stops_the_run_and_removes_everything(tmp_path, monkeypatch):
    data = write_dialogsum(tmp_path / "data", n_train=300, n_test=4)

    def broken(self, job):
        raise RenderError("boom in a worker")

    monkeypatch.setattr(render_batch.BatchRenderer, "__call__", broken)
    with pytest.raises(RenderError, match="boom in a worker"):
        render_dataset("dialogsum", tmp_path / "out", data_dir=str(data), num_proc=2, batch_size=50)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def _present_by_regex(column: pa.Array) -> list[bool]:
    """The definition present() keeps: valid and not matching RE2's ^\\s*$."""
    import pyarrow.compute as pc

    blank = pc.match_substring_regex(column, r"^\s*$").to_pylist()
    return [v is not None and not b for v, b in zip(column.to_pylist(), blank, strict=True)]


@pytest.mark.parametrize("seed", range(40))
def test_present_reads_first_bytes_and_agrees_with_the_regex(seed):
    rng = random.Random(seed)
    alphabet = [" ", "\t", "\n", "\r", "\f", "\v", "\u00a0", "\u2003", "a", "é", "中", "0"]
    values = []
    for _ in range(rng.randint(1, 60)):
        roll = rng.random()
        if roll < 0.15:
            values.append(None)
        elif roll < 0.25:
            values.append("")
        else:
            values.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
    kind = rng.choice([pa.string(), pa.large_string()])
    column = pa.array(values, type=kind)
    start = rng.randint(0, len(values) - 1)
    column = column.slice(start, rng.randint(0, len(values) - start))  # offsets not at zero
    expected = _present_by_regex(column)
    assert render_batch.present(column).tolist() == expected
    chunked = pa.chunked_array([column, column], type=kind)
    assert render_batch.present(chunked).tolist() == expected * 2


def test_present_does_not_read_where_a_null_slot_points():
    import numpy as np

    validity = pa.py_buffer(np.packbits([0, 0, 0, 1], bitorder="little"))
    offsets = pa.py_buffer(np.array([0, 5, 9, 1, 2], np.int32))  # null slot 1: past the data
    column = pa.Array.from_buffers(pa.string(), 4, [validity, offsets, pa.py_buffer(b"ab")])
    assert render_batch.present(column).tolist() == [False, False, False, True]

"""Sources: presets know the official layouts; files are read without changing a value."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import instructkit
from instructkit.default_plugins.sources import DialogsumPreset, SamsumPreset, fold_repeated_rows
from instructkit.errors import PluginError, SourceError
from instructkit.plugins import pm
from instructkit.render import sources


def test_samsum_official_json_layout(tmp_path):
    rows = [{"id": "13818513", "dialogue": "Ann: hi\r\nBo: yo ", "summary": "They greet."}]
    for name in ("train.json", "val.json", "test.json"):
        (tmp_path / name).write_text(json.dumps(rows))
    raw = SamsumPreset().load(str(tmp_path))
    assert set(raw.splits) == {"train", "validation", "test"}
    table = next(raw.splits["validation"].batches(10))
    assert table.to_pylist() == rows  # '\r\n' and the trailing space survive
    assert raw.splits["train"].key_column == "id"


def test_dialogsum_test_split_references(tmp_path):
    row = {"fname": "test_0", "dialogue": "#Person1#: hi"}
    row.update({f"summary{k}": f"s{k}" for k in (1, 2, 3)})
    row.update({f"topic{k}": f"t{k}" for k in (1, 2, 3)})
    (tmp_path / "dialogsum.test.jsonl").write_text(json.dumps(row))
    split = DialogsumPreset().load(str(tmp_path)).splits["test"]
    assert split.references == {
        "summary": ["summary1", "summary2", "summary3"],
        "topic": ["topic1", "topic2", "topic3"],
    }
    assert next(split.batches(5, ["summary", "topic"])).to_pylist() == [
        {"summary1": "s1", "topic1": "t1", "summary": "s1", "topic": "t1"}
    ]


def test_preset_without_files(tmp_path):
    with pytest.raises(SourceError, match="dialogsum.train.jsonl"):
        DialogsumPreset().load(str(tmp_path))


def test_hub_layout_is_folded():
    table = pa.table({"id": ["test_0_1", "test_0_2", "test_1_1"], "dialogue": ["a", "a", "b"],
                      "summary": ["x", "y", "z"]})  # fmt: skip
    folded = fold_repeated_rows(table, "id", ("summary", "topic")).to_pylist()
    assert folded == [
        {"id": "test_0", "dialogue": "a", "summary1": "x", "summary2": "y"},
        {"id": "test_1", "dialogue": "b", "summary1": "z", "summary2": None},
    ]


def test_distinct_dialogues_with_numbered_ids_are_not_folded():
    table = pa.table({"id": ["test_0", "test_1"], "dialogue": ["a", "b"], "summary": ["x", "y"]})
    assert fold_repeated_rows(table, "id", ("summary", "topic")) is table


def test_csv_keeps_text_as_written(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('id,dialogue,summary\n0012,"A: hi\nB: 2021-01-01",\n')
    raw = sources.load_generic(str(path))
    assert raw.splits["train"].table.to_pylist() == [
        {"id": "0012", "dialogue": "A: hi\nB: 2021-01-01", "summary": ""}
    ]


def test_jsonl_dates_stay_strings(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"dialogue": "x", "summary": "2021-01-01"}\n')
    raw = sources.load_generic(str(path))
    assert raw.splits["test"].table.column("summary").to_pylist() == ["2021-01-01"]


def test_parquet_and_saved_dataset(tmp_path):
    import datasets
    import pyarrow.parquet as pq

    table = pa.table({"dialogue": ["a", "b", "c"], "summary": ["x", "y", "z"]})
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=2)
    split = sources.load_generic(str(tmp_path / "train.parquet")).splits["train"]
    assert [t.num_rows for t in split.batches(2)] == [2, 1]
    datasets.DatasetDict({"validation": datasets.Dataset(table)}).save_to_disk(tmp_path / "saved")
    raw = sources.load_generic(str(tmp_path / "saved"))
    assert raw.splits["validation"].table.to_pylist() == table.to_pylist()


def test_hub_error_is_one_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SourceError, match="Cannot load 'someone/data'"):
        sources.load_generic("someone/data")


def test_hook_register_sources(tmp_path):
    class TinySource(sources.Source):
        name = "tiny"
        description = "Two rows."

        def load(self, data_dir=None, revision=None):
            table = pa.table({"dialogue": ["A: hi", "B: yo"], "summary": ["hi", "yo"]})
            split = sources.RawSplit("train", "memory", table=table)
            return sources.RawDataset({"train": split}, [{"memory": True}], "tiny")

    class TinyPlugin:
        __name__ = "TinyPlugin"

        @instructkit.hookimpl
        def register_sources(self, register):
            register(TinySource())

    pm.register(TinyPlugin(), name="tiny-source")
    sources.reset_sources()
    try:
        assert sources.get_source("tiny") is not None
        assert {"samsum", "dialogsum"} <= set(sources.sources())
        from instructkit.render.run import render_dataset

        result = render_dataset("tiny", tmp_path / "o", templates="samsum")
        assert result.num_rows == 2
    finally:
        pm.unregister(name="tiny-source")
        sources.reset_sources()


def test_duplicate_source_names_fail():
    class Twice:
        __name__ = "Twice"

        @instructkit.hookimpl
        def register_sources(self, register):
            register(SamsumPreset())

    pm.register(Twice(), name="twice")
    sources.reset_sources()
    try:
        with pytest.raises(PluginError, match="samsum"):
            sources.sources()
    finally:
        pm.unregister(name="twice")
        sources.reset_sources()

"""Parsed JSON Lines inputs are kept between runs: a second render of the same file maps the
parsed table instead of parsing it, and writes the same bytes; a changed, damaged or disabled
entry falls back to parsing."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from test_render import shard_bytes, write_dialogsum

from instructkit.render import input_cache, sources
from instructkit.render.run import render_dataset

OPTIONS = {"assignment": "all", "seed": 2, "batch_size": 300}


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(input_cache, "MIN_BYTES", 0)  # our files are small
    monkeypatch.setattr(sources, "JSON_BLOCK_BYTES", 1 << 14)  # several chunks
    return write_dialogsum(tmp_path / "data", n_train=900, n_test=5)


def _render(data: Path, out: Path) -> dict[str, bytes]:
    render_dataset("dialogsum", out, data_dir=str(data), **OPTIONS)
    for thread in threading.enumerate():  # entries are written in the background
        if thread.name == "instructkit-input-cache":
            thread.join()
    files = shard_bytes(out)
    manifest = json.loads(files.pop("instructkit.json"))
    manifest.pop("created", None)
    for key in ("seconds", "rows_per_second", "elapsed"):
        manifest.get("stats", {}).pop(key, None)
    files["inputs"] = json.dumps(manifest.get("inputs"), sort_keys=True).encode()
    return files


def _entries() -> list[Path]:
    folder = input_cache._folder()
    return (
        sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    )


def _parses(monkeypatch) -> list[Path]:
    seen: list[Path] = []
    real = sources.read_jsonl
    monkeypatch.setattr(sources, "read_jsonl", lambda p, d=None: seen.append(p) or real(p, d))
    return seen


def test_a_second_render_maps_the_cached_table_and_writes_the_same_bytes(
    data, tmp_path, monkeypatch
):
    parses = _parses(monkeypatch)
    first = _render(data, tmp_path / "first")
    files = len(list(data.glob("*.jsonl")))  # train, dev, test
    assert len(parses) == files and len(_entries()) == files  # parsed, then kept
    second = _render(data, tmp_path / "second")
    assert len(parses) == files  # nothing parsed again
    assert second == first  # shards, manifest inputs (sha256) and metadata


def test_a_changed_file_is_parsed_again_and_replaces_its_entry(data, tmp_path, monkeypatch):
    parses = _parses(monkeypatch)
    _render(data, tmp_path / "first")
    train = data / "dialogsum.train.jsonl"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[:-1]))  # one dialogue fewer
    changed = _render(data, tmp_path / "second")
    files = len(list(data.glob("*.jsonl")))
    assert len(parses) == files + 1 and len(_entries()) == files  # the old train entry is gone
    monkeypatch.setenv(input_cache.ENV, "0")
    assert changed == _render(data, tmp_path / "uncached")


def test_a_damaged_entry_is_ignored(data, tmp_path, monkeypatch):
    parses = _parses(monkeypatch)
    first = _render(data, tmp_path / "first")
    for entry in _entries():
        table = entry / input_cache.TABLE
        table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    assert _render(data, tmp_path / "second") == first
    files = len(list(data.glob("*.jsonl")))
    assert len(parses) == 2 * files
    assert _render(data, tmp_path / "third") == first  # the damaged entries were replaced
    assert len(parses) == 2 * files


def test_the_cache_can_be_turned_off_or_be_unwritable(data, tmp_path, monkeypatch):
    monkeypatch.setenv(input_cache.ENV, "0")
    first = _render(data, tmp_path / "first")
    assert _entries() == []
    monkeypatch.delenv(input_cache.ENV)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("INSTRUCTKIT_CACHE", str(blocked))
    assert _render(data, tmp_path / "second") == first  # the render does not fail
    assert not os.path.isdir(blocked)

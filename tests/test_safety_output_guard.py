"""Unit tests of instructkit.output_guard: the pure checks behind --out and --overwrite."""

from __future__ import annotations

import json
import os
import time

import pytest

from instructkit import output_guard as guard
from instructkit.errors import OutputError, OutputExistsError


def folder(path, files):
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def manifest(kind):
    return {"instructkit.json": json.dumps({"kind": kind}), "dataset_dict.json": "{}"}


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        (manifest("render"), "render"),
        (manifest("mix"), "mix"),
        ({"instructkit.json": json.dumps({"kind": "export"})}, "export"),
        ({"instructkit-train.json": "{}", "model.safetensors": "x"}, "train"),
        ({guard.MODEL_RECORD: json.dumps({"kind": "tiny-model"})}, "tiny-model"),
        (
            {
                "metrics.json": json.dumps({"model": {}, "split": "t", "scoring": {}}),
                "predictions.jsonl": "",
            },
            "evaluate",
        ),
        ({"report.json": json.dumps({"split": "t", "models": []})}, "compare"),
        ({"demo.json": "{}"}, "demo"),
        ({"pack.yaml": guard.IMPORTED_PACK_MARK + " from x.\ntask: t\n"}, "pack"),
        ({"instructkit.json": "{}", "dataset_dict.json": "{}"}, "dataset"),
        ({"chapter1.tex": "x"}, None),
        ({"pack.yaml": "task: mine\n"}, None),  # a hand-written pack is not ours
        ({"instructkit.json": "not json", "dataset_dict.json": "{}"}, None),
        ({"instructkit-train.json": "[1, 2]"}, None),
    ],
)
def test_kind_of(tmp_path, files, kind):
    assert guard.kind_of(folder(tmp_path / "f", files)) == kind


def test_kind_of_a_file_or_nothing_is_none(tmp_path):
    (tmp_path / "file").write_text("x")
    assert guard.kind_of(tmp_path / "file") is None
    assert guard.kind_of(tmp_path / "missing") is None


def test_check_output_new_and_existing(tmp_path):
    assert guard.check_output(tmp_path / "new", overwrite=False) == tmp_path / "new"
    ours = folder(tmp_path / "ours", manifest("render"))
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        guard.check_output(ours, overwrite=False, kind="render")
    guard.check_output(ours, overwrite=True, kind="render")
    empty = tmp_path / "empty"
    empty.mkdir()
    guard.check_output(empty, overwrite=True, kind="train")


def test_check_output_refuses_foreign_and_other_kinds(tmp_path):
    thesis = folder(tmp_path / "thesis", {f"ch{i}.tex": "x" for i in range(5)})
    with pytest.raises(OutputError) as info:
        guard.check_output(thesis, overwrite=True, kind="render")
    message = str(info.value)
    assert f"'{thesis}'" in message and "ch0.tex, ch1.tex, ch2.tex and 2 more" in message
    assert "\n" not in message
    mixed = folder(tmp_path / "mixed", manifest("mix"))
    with pytest.raises(OutputError, match=r"it is a mixture \('instructkit mix'\), not a rendered"):
        guard.check_output(mixed, overwrite=True, kind="render")
    hidden = folder(tmp_path / "hidden", {".git/config": "x"})
    with pytest.raises(OutputError, match=r"\.git/"):
        guard.check_output(hidden, overwrite=True, kind="render")


def test_check_output_refuses_files_and_links(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        guard.check_output(tmp_path / "file", overwrite=True)
    real = folder(tmp_path / "real", manifest("render"))
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OutputError, match="is a link"):
        guard.check_output(tmp_path / "link", overwrite=True, kind="render")


@pytest.mark.parametrize(
    ("out", "source", "relation"),
    [
        ("data", "data", "is"),
        ("data/sub/out", "data", "is inside"),
        (".", "data/train.jsonl", "contains"),
        ("data/../data", "data", "is"),
        ("alias", "data", "is"),  # a link to the input is the input
    ],
)
def test_check_not_an_input(tmp_path, monkeypatch, out, source, relation):
    monkeypatch.chdir(tmp_path)
    folder(tmp_path / "data", {"train.jsonl": "{}"})
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    with pytest.raises(OutputError, match=f"'{out}' {relation} the input '{source}'"):
        guard.check_output(out, overwrite=True, inputs=[source])


def test_check_not_an_input_ignores_siblings_hub_names_and_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder(tmp_path / "data", {"train.jsonl": "{}"})
    guard.check_not_an_input("data-out", ["data", "google/flan-t5-small", None, ""])
    guard.check_not_an_input("build/x", ["data/train.jsonl"])


def _dead_pid():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_sibling_names_are_recognised_and_only_stale_ones_removed(tmp_path):
    target = tmp_path / "out"
    mine = guard.temp_sibling(target)
    mine.mkdir()
    dead = tmp_path / f".out.tmp-{_dead_pid()}-0123abcd"
    dead.mkdir()
    dead_old = tmp_path / f".out.old-{_dead_pid()}-0123abcd"
    dead_old.mkdir()
    legacy_recent = tmp_path / ".out.tmp-0123abcd"
    legacy_recent.mkdir()
    legacy_old = tmp_path / ".out.tmp-89abcdef"
    legacy_old.mkdir()
    long_ago = time.time() - 2 * guard.LEGACY_STALE_SECONDS
    os.utime(legacy_old, (long_ago, long_ago))
    other_target = tmp_path / f".outx.tmp-{_dead_pid()}-0123abcd"
    other_target.mkdir()
    removed = guard.remove_stale_temp_dirs(target)
    assert sorted(removed) == sorted([dead, dead_old, legacy_old])
    assert mine.is_dir() and legacy_recent.is_dir() and other_target.is_dir()


def test_rename_no_replace(tmp_path):
    source = folder(tmp_path / "src", {"a": "1"})
    guard.rename_no_replace(source, tmp_path / "dst")
    assert (tmp_path / "dst" / "a").read_text() == "1"
    second = folder(tmp_path / "src2", {"b": "2"})
    with pytest.raises(OutputError, match="appeared while this run was writing"):
        guard.rename_no_replace(second, tmp_path / "dst")
    empty = tmp_path / "empty"
    empty.mkdir()  # rename(2) would silently replace an empty folder: this must not
    with pytest.raises(OutputError, match="appeared"):
        guard.rename_no_replace(second, empty)
    assert (tmp_path / "dst" / "a").is_file() and (second / "b").is_file()

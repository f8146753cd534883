"""instructkit.json: one writer, one typed reader that knows every stage's shape."""

from __future__ import annotations

import json

import pytest

from instructkit.artifacts.dataset import write_dataset_dict
from instructkit.artifacts.manifest import (
    MANIFEST_NAME,
    Manifest,
    load_manifest,
    write_manifest,
)
from instructkit.errors import DatasetDirError


def test_metrics_for_every_shape():
    render = Manifest({"kind": "render", "task": "a", "metrics": ["rouge", "exact_match"]})
    assert render.task == "a"
    assert render.metrics_for("a") == ["rouge", "exact_match"]
    assert render.metrics_for("b") == []
    mix = Manifest({"kind": "mix", "metrics": {"a": ["rouge"]}, "tasks": [{"name": "b"}]})
    assert mix.task is None and mix.kind == "mix"
    assert mix.metrics_for("a") == ["rouge"]
    records = Manifest({"tasks": [{"name": "b", "metrics": ["exact_match"]}]})
    assert records.metrics_for("b") == ["exact_match"]
    assert Manifest({}).metrics_for("a") == [] and Manifest({}).kind is None


def test_load_manifest_round_trip_and_versions(tmp_path):
    write_dataset_dict(tmp_path, ["train"])
    assert load_manifest(tmp_path).data == {}
    write_manifest(tmp_path, {"task": "a", "kind": "render"})
    assert load_manifest(tmp_path).task == "a"
    assert (tmp_path / MANIFEST_NAME).read_text().startswith('{\n  "kind": "render"')
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"manifest_version": 99}))
    with pytest.raises(DatasetDirError, match="upgrade instructkit"):
        load_manifest(tmp_path)

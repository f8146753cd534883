"""The render path's I/O shortcuts: hashes taken while reading and writing, no pandas import,
and the Arrow helpers that replace pa.array give the same arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from test_render import write_dialogsum

from instructkit.checksums import file_sha256
from instructkit.render.batch import _reference_lists
from instructkit.render.fast import (
    bool_array,
    bool_numpy,
    index_array,
    offsets_array,
    repeat_text,
    text_array,
    text_scalar,
)
from instructkit.render.run import render_dataset


def test_text_helpers_match_pa_array():
    values = ["", "héllo", "a\r\nb", "🙂" * 3]
    assert text_array(values).equals(pa.array(values, pa.string()))
    assert text_array([]).equals(pa.array([], pa.string()))
    assert repeat_text("ab", 3).equals(pa.array(["ab"] * 3, pa.string()))
    assert repeat_text("x", 0).equals(pa.array([], pa.string()))
    assert text_scalar("é").equals(pa.scalar("é", pa.string()))


def test_numeric_and_bool_helpers_match_pa_array():
    rows = np.array([3, 0, 2], dtype=np.intp)
    assert index_array(rows).equals(pa.array(rows, pa.int64()))
    assert offsets_array(np.arange(4)).equals(pa.array(np.arange(4), pa.int32()))
    mask = np.array([True, False, True, True, False, False, True, False, True, True])
    assert bool_array(mask).equals(pa.array(mask))
    arrow = pa.array([None, True, False, True, None, True, True, False, False, True, True])
    sliced = arrow.slice(3)  # a bit offset inside the first byte
    expected = np.array([v is True for v in sliced.to_pylist()])
    assert (bool_numpy(sliced) == expected).all()
    assert (bool_numpy(arrow) == np.array([v is True for v in arrow.to_pylist()])).all()


def test_reference_lists_keep_variant_order_and_fall_back_to_completion():
    first = pa.array(["a1", None, "c1"], pa.string())
    second = pa.array(["a2", None, None], pa.string())
    completion = pa.array(["A", "B", "C"], pa.string())
    lists = _reference_lists([first, second], completion)
    assert lists.to_pylist() == [["a1", "a2"], ["B"], ["c1"]]
    assert lists.type == pa.list_(pa.string())


def test_hashes_taken_while_reading_and_writing_match_the_files(tmp_path):
    data = write_dialogsum(tmp_path / "dialogsum")
    out = tmp_path / "out"
    result = render_dataset("dialogsum", out, data_dir=str(data), num_shards=2)
    for entry in result.manifest["inputs"]:
        assert entry["sha256"] == file_sha256(entry["path"])
    for split, info in result.manifest["splits"].items():
        assert len(info["shards"]) == 2
        for shard in info["shards"]:
            assert shard["sha256"] == file_sha256(out / split / shard["filename"])


def test_render_never_imports_pandas(tmp_path):
    """pyarrow imports pandas (~0.2 s) on its first pa.array: more than rendering 12k rows."""
    data = write_dialogsum(tmp_path / "dialogsum")
    code = (
        "import sys; from instructkit.render.run import render_dataset;"
        f"render_dataset('dialogsum', {str(tmp_path / 'out')!r}, data_dir={str(data)!r});"
        "print(json.dumps('pandas' in sys.modules))"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", f"import json; {code}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) is False


@pytest.mark.parametrize("content", [b'{"dialogue": ["caf\xe9"], "summary": "b"}\n'])
def test_bad_bytes_inside_nested_values_are_found(tmp_path, content):
    from instructkit.errors import SourceError
    from instructkit.render.sources import read_jsonl

    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=r"train.jsonl:1: not valid UTF-8 \(byte 0xe9"):
        read_jsonl(path)

"""The features we write are ones every datasets version pyproject.toml claims can read.

The load under the oldest version itself runs in `make test` (scripts/check_datasets_compat.py,
in a separate small env); these tests keep the pieces of that check honest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pyarrow as pa

from instructkit.artifacts.dataset import SCHEMA, features_json
from instructkit.testing import make_tiny_dataset

REPO = Path(__file__).resolve().parents[2]


def _types(features: dict) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "_type" in node:
                found.add(node["_type"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(features)
    return found


def test_features_use_only_types_older_datasets_know() -> None:
    written = features_json(SCHEMA)
    assert _types(written) <= {"Value", "Sequence"}  # datasets 4's "List" breaks 2.x and 3.x
    assert written["references"] == {
        "feature": {"dtype": "string", "_type": "Value"},
        "_type": "Sequence",
    }


def test_current_datasets_reads_them_as_the_features_of_our_schema() -> None:
    features = datasets.Features.from_dict(features_json(SCHEMA))
    assert features == datasets.Features.from_arrow_schema(SCHEMA)
    assert features.arrow_schema.types == SCHEMA.types


def test_a_list_of_structs_stays_a_list_of_structs() -> None:
    """Sequence({...}) would mean a struct of lists in datasets < 4; a JSON list does not."""
    schema = pa.schema([("turns", pa.list_(pa.struct([("role", pa.string())])))])
    written = features_json(schema)
    assert written == {"turns": [{"role": {"dtype": "string", "_type": "Value"}}]}
    assert datasets.Features.from_dict(written).arrow_schema.types == schema.types


def test_the_oldest_env_pins_the_floor_pyproject_claims() -> None:
    claimed = re.search(r'"datasets>=([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    pins = (REPO / "scripts" / "datasets-oldest.txt").read_text()
    pinned = re.search(r"^datasets==([0-9.]+)$", pins, re.MULTILINE)
    assert claimed is not None and pinned is not None
    assert pinned.group(1).split(".") == (claimed.group(1) + ".0").split(".")[:3]


def test_make_test_runs_the_oldest_datasets_check() -> None:
    makefile = (REPO / "Makefile").read_text()
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "compat" in test_line.split()
    assert "scripts/check_datasets_compat.py" in makefile


def test_dataset_info_written_by_render_has_no_list_type(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "ds")
    info = json.loads((Path(root) / "train" / "dataset_info.json").read_text())
    assert "List" not in _types(info["features"])
    loaded = datasets.load_from_disk(str(root))
    assert loaded["train"].features["references"] == datasets.List(datasets.Value("string"))

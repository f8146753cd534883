"""Reading only what is scored: `--max-rows` takes its rows from Arrow, the same rows as before."""

from __future__ import annotations

import random

import pytest
from evaluate_helpers import task_rows, write_dataset

from instructkit.evaluate import run as evaluate


def reference_rows(dataset_rows, max_rows, sample_seed):
    """What evaluate selected before rows were read lazily (the whole split, then limited)."""
    rows = [
        {
            "task": row["task"],
            "template_id": row["template_id"],
            "example_id": row["example_id"],
            "prompt": row["prompt"],
            "references": list(row["references"]),
        }
        for row in dataset_rows
    ]
    if max_rows is None:
        return rows
    by_task = {}
    for index, row in enumerate(rows):
        by_task.setdefault(row["task"], []).append(index)
    keep = set()
    for task, indices in by_task.items():
        if sample_seed is None or len(indices) <= max_rows:
            keep.update(indices[:max_rows])
        else:
            keep.update(random.Random(f"{sample_seed}:{task}").sample(indices, max_rows))
    return [row for index, row in enumerate(rows) if index in keep]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    root = tmp_path_factory.mktemp("rows")
    topic, summary = task_rows("topic", 400), task_rows("summary", 300)
    # interleaved, as a mixture's split is
    mixed = [row for pair in zip(topic[:300], summary, strict=True) for row in pair] + topic[300:]
    manifest = {"tasks": {"topic": {"metrics": ["rouge"]}, "summary": {"metrics": ["rouge"]}}}
    extra = task_rows("other", 50)
    return {
        "mix": write_dataset(root / "mix", {"test": mixed}, manifest),
        "mix_rows": mixed,
        "other": write_dataset(root / "other", {"test": extra}, {"task": "other"}),
        "other_rows": extra,
    }


@pytest.mark.parametrize(
    ("max_rows", "sample_seed"), [(None, None), (20, None), (20, 0), (20, 7), (350, 3), (1, 5)]
)
def test_same_rows_as_reading_the_whole_split(big, max_rows, sample_seed):
    rows, metrics = evaluate.load_eval_rows(
        [big["mix"], big["other"]], "test", max_rows, sample_seed
    )
    expected = reference_rows(big["mix_rows"] + big["other_rows"], max_rows, sample_seed)
    assert rows == expected
    assert list(metrics) == ["topic", "summary", "other"]


def test_only_the_scored_rows_are_decoded(big, monkeypatch):
    decoded = []
    original = evaluate._split_rows

    def spy(table, keep, tasks):
        rows = original(table, keep, tasks)
        decoded.append(len(rows))
        return rows

    monkeypatch.setattr(evaluate, "_split_rows", spy)
    rows, _ = evaluate.load_eval_rows([big["mix"]], "test", max_rows=20, sample_seed=1)
    assert len(rows) == 40
    assert decoded == [40], "rows that are not scored were decoded"


def test_limit_rows_still_limits_rows_in_memory():
    rows = task_rows("topic", 5) + task_rows("summary", 5)
    kept = evaluate.limit_rows(rows, 2)
    assert [r["example_id"] for r in kept] == ["topic-0", "topic-1", "summary-0", "summary-1"]

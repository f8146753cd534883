"""benchmarks/bench_chat_template.py: the table and the checks it builds from its results.

The benchmark itself needs SmolLM2, DialogSum and half an hour of CPU; its report logic is
tested here on made-up records (no model, no data, no torch import).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_chat_template", BENCH_DIR / "bench_chat_template.py"
        )
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH_DIR))


def evaluation(rouge_l: float, template: str | None, ids: list[str]) -> dict[str, Any]:
    score = {"value": rouge_l, "low": rouge_l - 2.5, "high": rouge_l + 2.5}
    return {
        "wall_s": 100.4,
        "peak_rss_mb": 1200,
        "rows": len(ids),
        "template_id": template,
        "scores": {"rouge1": score, "rouge2": {"value": 5.0, "low": None}, "rougeL": score},
        "example_ids": ids,
    }


def results(ids_plain_tuned: list[str] | None = None) -> dict[str, Any]:
    ids = ["test_0", "test_1"]
    return {
        "steps": [("render (text)", {"wall_s": 1.25, "peak_rss_mb": 300})],
        "train": {"chat": {"wall_s": 290.6}, "plain": {"wall_s": 280.2}},
        "evaluate": {
            "zero-shot/chat": evaluation(20.0, "sha256:abc", ids),
            "zero-shot/plain": evaluation(15.0, None, ids),
            "LoRA/chat": evaluation(30.0, "sha256:abc", ids),
            "LoRA/plain": evaluation(28.0, None, ids_plain_tuned or ids),
        },
    }


def test_score_table_has_one_row_per_condition_with_intervals_and_times(bench: Any) -> None:
    headers, rows = bench.score_table(results())
    assert headers[:3] == ["model", "prompt", "rows"]
    assert [r[:2] for r in rows] == [
        ["zero-shot", "chat template"],
        ["zero-shot", "plain text"],
        ["LoRA", "chat template"],
        ["LoRA", "plain text"],
    ]
    zero_shot_chat, _, _, tuned_plain = rows
    assert zero_shot_chat[2:] == ["2", "20.00 [17.50, 22.50]", "5.00", "20.00 [17.50, 22.50]"] + [
        "-",
        "100",
    ]
    # a tuned row carries the wall time of the training of its own form
    assert tuned_plain[-2:] == ["280", "100"]


def test_steps_table_totals_the_wall_times(bench: Any) -> None:
    record = results()
    record["steps"].append(
        ("train LoRA (chat)", {"wall_s": 290.6, "cpu_s": 530.25, "peak_rss_mb": 2048})
    )
    _, rows = bench.steps_table(record)
    # the render record predates CPU times: shown as '-', counted as nothing in the total
    assert rows[0] == ["render (text)", "1.2", "-", "300"]
    assert rows[1] == ["train LoRA (chat)", "290.6", "530.2", "2,048"]
    assert rows[-1] == ["total", "291.9", "530.2", ""]


def test_check_conditions_accepts_the_intended_encodings(bench: Any) -> None:
    bench.check_conditions(results()["evaluate"])


def test_check_conditions_refuses_a_plain_condition_prompted_through_a_template(
    bench: Any,
) -> None:
    evals = results()["evaluate"]
    evals["zero-shot/plain"]["template_id"] = "sha256:abc"
    with pytest.raises(RuntimeError, match="zero-shot/plain.*expected none"):
        bench.check_conditions(evals)


def test_check_conditions_refuses_conditions_scored_on_other_rows(bench: Any) -> None:
    evals = results(ids_plain_tuned=["test_0", "test_7"])["evaluate"]
    with pytest.raises(RuntimeError, match="LoRA/plain scored other test rows"):
        bench.check_conditions(evals)

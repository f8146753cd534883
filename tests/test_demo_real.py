"""The real-model demo (issue 16): task G, the contains metric, and a reduced run end to end."""

from __future__ import annotations

import json

import pytest

from instructkit.demo import SHIPPED_DATA
from instructkit.demo_real import (
    ADAPTER_OFF,
    TASK_A,
    TASK_B,
    TASK_G,
    RealRecipe,
    general_qa_splits,
    real_verdict,
    run_real_demo,
    write_general_qa,
)
from instructkit.evaluate.metrics import get_metric


def test_general_questions_are_seeded_and_test_never_in_train():
    first, again = general_qa_splits(60, 20, seed=0), general_qa_splits(60, 20, seed=0)
    assert first == again
    assert len(first["train"]) == 60 and len(first["test"]) == 20
    train_prompts = {prompt for prompt, _, _ in first["train"]}
    assert not train_prompts & {prompt for prompt, _, _ in first["test"]}
    assert general_qa_splits(60, 20, seed=1) != first


def test_general_answers_are_not_in_the_question_and_training_answers_score():
    # an answer that occurs in its question would let `contains` pass an echo of the question
    contains = get_metric("contains")
    splits = general_qa_splits(200, 96, seed=0)
    for prompt, answer, references in splits["train"] + splits["test"]:
        assert all(contains.score_pair(prompt, ref)["contains"] == 0.0 for ref in references)
        assert contains.score_pair(answer, references[0])["contains"] == 100.0


def test_general_qa_dataset_is_scored_by_contains(tmp_path):
    from instructkit.evaluate.run import load_eval_rows

    out = write_general_qa(tmp_path / "g", 10, 5)
    rows, metrics = load_eval_rows([out], "test")
    assert metrics == {TASK_G: ["contains"]} and len(rows) == 5


@pytest.mark.parametrize(
    ("prediction", "reference", "score"),
    [("7 + 5 = 12.", "12", 100.0), ("It is 120.", "12", 0.0),
     ("The capital is PARIS", "Paris", 100.0), ("", "12", 0.0), ("cold", "", 0.0)],
)  # fmt: skip
def test_contains_metric(prediction, reference, score):
    assert get_metric("contains").score_pair(prediction, reference) == {"contains": score}


@pytest.mark.slow
def test_real_model_demo_end_to_end(smollm2_dir, tmp_path):
    recipe = RealRecipe(
        qa_train_rows=16, qa_test_rows=4, steps=1, batch_size=2, eval_rows=2,
        max_new_tokens=6, max_source_length=96, eval_batch_size=4, bootstrap=20,
    )  # fmt: skip
    lines: list[str] = []
    report = run_real_demo(
        tmp_path / "demo", SHIPPED_DATA, str(smollm2_dir), recipe, quiet=True, echo=lines.append
    )
    names = [m.name for m in report.models]
    assert names == ["base", "full-B", "mix-BAG", "lora-B", "prompt-B", ADAPTER_OFF]
    assert [row.task for row in report.tasks] == [TASK_A, TASK_B, TASK_G]
    for row in report.tasks:
        # the adapter-removed column is the base's, after the logit check found them equal
        assert row.scores[ADAPTER_OFF] == row.scores["base"]
        assert row.scores["base"].low is not None  # intervals
    assert (tmp_path / "demo" / "report" / "report.png").is_file()
    saved = json.loads((tmp_path / "demo" / "report" / "report.json").read_text())
    assert ADAPTER_OFF in json.dumps(saved)
    record = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert record["timings_s"]["total"] > 0
    assert any("done in" in line for line in lines)
    story = real_verdict(report)
    assert story[0].startswith("base") and any("prompt tuning reached" in s for s in story)

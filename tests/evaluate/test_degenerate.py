"""evaluate warns when predictions say the model has not learned yet (dots, one repeated text)."""

from __future__ import annotations

from instructkit.evaluate.degenerate import degenerate_note


def test_punctuation_only_and_identical_predictions_are_named():
    dots = degenerate_note(["........", "....", ""])
    assert dots is not None and dots.startswith("every prediction is empty or punctuation only")
    assert "'........'" in dots and "-o max_steps" in dots and "pretrained" in dots
    same = degenerate_note(["the the the", "the the the"])
    assert same is not None and same.startswith("all 2 predictions are the same text")


def test_real_predictions_pass():
    assert degenerate_note(["a meeting", "a table reservation"]) is None
    assert degenerate_note(["one answer"]) is None  # a single row proves nothing
    assert degenerate_note([]) is None

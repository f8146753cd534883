"""Predictions that say the model has not learned to answer yet, and what to do about it.

An undertrained model (a tiny random one after a few dozen steps, say) writes the same text for
every prompt, or only punctuation ("........"), and scores 0. The scores are right, but a
newcomer reads "broken": evaluate says what it sees and what to try instead.
"""

from __future__ import annotations

from collections.abc import Sequence

ADVICE = (
    "the model has not learned the task yet: train more steps or with a higher learning rate "
    "(-o max_steps=... -o learning_rate=...), or start from a pretrained model "
    "(instructkit demo shows a tiny model trained long enough to learn)"
)


def _has_words(text: str) -> bool:
    return any(char.isalnum() for char in text)


def degenerate_note(predictions: Sequence[str]) -> str | None:
    """One line when every prediction is empty/punctuation or all are identical, else None."""
    if not predictions:
        return None
    if not any(_has_words(p) for p in predictions):
        sample = next((p for p in predictions if p.strip()), "")
        shown = f" (e.g. {sample[:20]!r})" if sample else ""
        return f"every prediction is empty or punctuation only{shown}: {ADVICE}."
    if len(predictions) > 1 and len(set(predictions)) == 1:
        same = predictions[0][:40]
        return f"all {len(predictions)} predictions are the same text ({same!r}): {ADVICE}."
    return None

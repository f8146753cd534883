"""Exact duplicates and n-gram overlap, on hashes in numpy arrays."""

from __future__ import annotations

import pyarrow as pa
import pytest

from instructkit.mix.hygiene import (
    duplicate_masks,
    find_contamination,
    ngram_index,
    strip_boilerplate,
    word_index,
)

STORY = "the quick brown fox jumps over the lazy dog while the farmer sleeps in the barn"


def table(prompts, completions=None):
    return pa.table({"prompt": prompts, "completion": completions or ["c"] * len(prompts)})


def test_duplicates_keep_the_first_occurrence_across_tables():
    first = table(["a", "b", "a"], ["x", "y", "x"])
    second = table(["b", "b", "c"], ["y", "z", "x"])
    masks = duplicate_masks([first, second])
    assert [m.tolist() for m in masks] == [[False, False, True], [True, False, False]]


def test_ngrams_stay_inside_a_row_and_ignore_case_and_punctuation():
    words = word_index(pa.array(["One, two THREE four", "five six"]))
    assert len(ngram_index(words, 3).grams) == 2  # none spans the two rows
    same = word_index(pa.array(["one two three", "ONE... two; three!"]))
    grams = ngram_index(same, 3).grams
    assert grams[0] == grams[1]


@pytest.mark.parametrize("n", [5, 13])
def test_overlap_is_found_per_pair_and_short_overlaps_are_not(n):
    words = STORY.split()
    train = word_index(pa.array(["unrelated text " * 5, "Summary: " + STORY, " ".join(words[:4])]))
    evaluation = word_index(pa.array([STORY.upper(), "nothing in common here at all"]))
    report = find_contamination([("task", train)], [("task/test", evaluation)], n=n)
    assert report.masks[0].tolist() == [False, True, False]
    assert report.pairs == [
        {"train_task": "task", "eval_set": "task/test", "train_rows": 1, "eval_rows": 1}
    ]


def test_template_text_repeated_in_many_rows_is_not_a_leak():
    instruction = "read the conversation and state its key points in a few words"
    train = [f"{instruction} speaker{i % 8}: talk {i} about item {i * 7} today" for i in range(40)]
    evaluation = [f"{instruction} speaker{i % 8}: other {i} topic {i * 11}" for i in range(20)]
    sets = [word_index(pa.array(train)), word_index(pa.array(evaluation))]
    stripped, phrases = strip_boilerplate(sets, threshold=10)
    assert phrases > 0 and len(stripped[0].words) < len(sets[0].words)
    report = find_contamination([("t", sets[0])], [("e", sets[1])], n=13)
    assert not report.masks[0].any() and report.pairs == []


@pytest.mark.parametrize("seed", range(5))
def test_duplicates_compared_in_blocks_match_a_set_of_seen_rows(monkeypatch, seed):
    """Mostly duplicates (the same data mixed many times): candidates are compared a bounded
    block at a time, across tables of several record batches."""
    import random

    from instructkit.mix import hygiene

    monkeypatch.setattr(hygiene, "_BATCH_ROWS", 4)
    rng = random.Random(seed)
    tables, rows = [], []
    for _ in range(rng.randint(1, 4)):
        pairs = [(rng.choice("abc"), rng.choice("xy")) for _ in range(rng.randint(0, 20))]
        whole = table([p for p, _ in pairs], [c for _, c in pairs])
        tables.append(pa.Table.from_batches(whole.to_batches(max_chunksize=3)))
        rows.append(pairs)
    seen, expected = set(), []
    for pairs in rows:
        expected.append([pair in seen or seen.add(pair) is not None for pair in pairs])
    assert [m.tolist() for m in duplicate_masks(tables)] == expected

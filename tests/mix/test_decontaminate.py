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


# ---------------------------------------------------------------- one set at a time


def _reference_contamination(train, evaluation, n, fraction, width=5):
    """find_contamination as it was, every set's words and phrases held at once."""
    import numpy as np

    from instructkit.mix.hygiene import ContaminationReport, _member, _ngrams, _pairs

    sets = [ix for _, ix in train] + [ix for _, ix in evaluation]
    threshold = max(10, int(fraction * sum(ix.num_rows for ix in sets)))
    found = [_ngrams(ix, width) for ix in sets]
    grams, counts = np.unique(np.concatenate([g for g, _ in found]), return_counts=True)
    frequent = grams[counts > threshold]
    stripped = []
    for ix, (gram, start) in zip(sets, found, strict=True):
        starts = start[_member(gram, frequent)]
        size = len(ix.words) + width
        edges = np.bincount(starts, minlength=size) - np.bincount(starts + width, minlength=size)
        stripped.append(ix.subset(np.cumsum(edges)[: len(ix.words)] == 0))
    train_ix = [ngram_index(ix, n) for ix in stripped[: len(train)]]
    eval_ix = [ngram_index(ix, n) for ix in stripped[len(train) :]]
    eval_grams = np.unique(np.concatenate([ix.grams for ix in eval_ix]))
    train_ix = [ix.subset(_member(ix.grams, eval_grams)) for ix in train_ix]
    shared = np.unique(np.concatenate([ix.grams for ix in train_ix]))
    eval_named = [
        (name, ix.subset(_member(ix.grams, shared)))
        for (name, _), ix in zip(evaluation, eval_ix, strict=True)
    ]
    report = ContaminationReport([], boilerplate_phrases=len(frequent), threshold_rows=threshold)
    for (name, _), ix in zip(train, train_ix, strict=True):
        mask = np.zeros(ix.num_rows, dtype=bool)
        mask[ix.rows] = True
        report.masks.append(mask)
        report.pairs.extend(_pairs(name, ix, eval_named))
    return report


@pytest.mark.parametrize("seed", range(8))
def test_sets_computed_one_at_a_time_find_what_all_at_once_found(seed, monkeypatch):
    """Random texts from a small vocabulary with a repeated template phrase: the same masks,
    pairs and boilerplate count, with sets given as callables computed when needed."""
    import random

    from instructkit.mix import hygiene

    monkeypatch.setattr(hygiene._GramCounts, "add", _small_merges(hygiene._GramCounts.add))
    rng = random.Random(seed)
    vocabulary = STORY.split() + ["alpha", "beta", "gamma", "delta"]
    template = "please read this conversation and summarise it"

    def texts(count):
        rows = []
        for _ in range(count):
            body = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 30)))
            rows.append(f"{template} {body}" if rng.random() < 0.6 else body)
        return pa.array(rows)

    train = [(f"t{i}", word_index(texts(rng.randint(1, 40)))) for i in range(rng.randint(1, 4))]
    evaluation = [
        (f"e{i}", word_index(texts(rng.randint(1, 30)))) for i in range(rng.randint(1, 3))
    ]
    n, fraction = rng.choice([3, 5, 13]), rng.choice([0.01, 0.2])
    expected = _reference_contamination(train, evaluation, n, fraction)
    calls = []

    def lazy(ix):
        def compute():
            calls.append(1)
            return ix

        return compute

    got = find_contamination(
        [(name, lazy(ix)) for name, ix in train],
        [(name, lazy(ix)) for name, ix in evaluation],
        n,
        fraction,
    )
    assert [m.tolist() for m in got.masks] == [m.tolist() for m in expected.masks]
    assert got.pairs == expected.pairs
    assert (got.boilerplate_phrases, got.threshold_rows) == (
        expected.boilerplate_phrases,
        expected.threshold_rows,
    )
    assert len(calls) == 2 * len(train) + 3 * len(evaluation)


def _small_merges(add):
    """Merge counts after every add, so that the merging itself is exercised."""

    def adding(self, values):
        add(self, values)
        self._merge()

    return adding


@pytest.mark.parametrize("budget", [0, 10**12])
def test_a_mix_decontaminates_alike_with_or_without_kept_word_indexes(
    tmp_path, monkeypatch, budget
):
    from test_mix import spec_for, write_rendered

    from instructkit.artifacts.manifest import read_manifest
    from instructkit.mix import run as mix_run
    from instructkit.mix.run import mix_datasets

    leak = [f"{STORY} number {i}" for i in range(5)]
    paths = [write_rendered(tmp_path / "in", f"t{i}", 40, texts=leak[: i + 1]) for i in range(3)]
    # an evaluation set holding the story: every task leaks, each by its own count of rows
    held_out = write_rendered(tmp_path / "in", "held_out", 2, texts=[STORY, STORY])
    (held_out / "train").rename(held_out / "test_story")
    (held_out / "test").rename(held_out / "old_test")
    (held_out / "test_story").rename(held_out / "test")
    spec = spec_for(*((p, {}) for p in paths), total=60, decontaminate="report",
                    eval_sets=[str(held_out)])  # fmt: skip
    mix_datasets(spec, tmp_path / "reference")
    monkeypatch.setattr(mix_run, "WORD_CACHE_WORDS", budget)
    mix_datasets(spec, tmp_path / "mix")
    keys = ("decontamination", "counts", "tasks")
    reference, got = read_manifest(tmp_path / "reference"), read_manifest(tmp_path / "mix")
    assert {k: got[k] for k in keys} == {k: reference[k] for k in keys}
    leaked = {p["train_task"]: p["train_rows"] for p in got["decontamination"]["pairs"]}
    assert leaked == {"t0": 1, "t1": 2, "t2": 3}

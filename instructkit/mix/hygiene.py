"""Train-set hygiene: exact duplicates and n-gram overlap with evaluation sets.

Both work on 64-bit hashes in numpy arrays, never on Python sets of strings, so millions of rows
take seconds. Words are lower-cased runs of ASCII letters, digits and underscores (as in the
janitor of lm-evaluation-harness); a row's n-grams are the hashes of every n consecutive words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructkit.mix.write import RowGatherer

# Words of a phrase that counts as template text when it repeats (strip_boilerplate).
PHRASE_WORDS = 5
# Odd 64-bit multiplier for the rolling n-gram hash (the golden-ratio constant).
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_BATCH_ROWS = 50_000


def row_text(table: pa.Table) -> pa.ChunkedArray:
    """Prompt and completion joined by a newline: the text a row trains on (a conversational
    row's messages are their contents joined by newlines)."""
    return pc.binary_join_element_wise(
        _as_text(table["prompt"]), _as_text(table["completion"]), "\n"
    )


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return column
    chunks = []
    for chunk in column.chunks:
        contents = pc.struct_field(chunk.values, "content")
        lists = type(chunk).from_arrays(chunk.offsets, contents)
        chunks.append(pc.binary_join(lists, "\n"))
    return pa.chunked_array(chunks, pa.string())


# ---------------------------------------------------------------- exact duplicates


def duplicate_masks(
    tables: Sequence[pa.Table], releasers: Sequence[Callable[[], None]] = ()
) -> list[np.ndarray]:
    """For each table, True where the row repeats the prompt and completion of an earlier row.

    "Earlier" runs over the tables in order, then rows in order, so the first occurrence in
    spec order is kept. Rows are grouped by a 64-bit hash (8 bytes a row in memory) and each
    candidate is then compared, as text, with the first row of its group. ``releasers`` (one
    per table, e.g. ``MappedSplit.release``) hand back a mapped table's pages once read.
    """

    def release_all() -> None:
        for release in releasers:
            release()

    hashes = []
    for index, table in enumerate(tables):
        hashes.append(_row_hashes(table))
        if releasers:
            releasers[index]()
    if not hashes:
        return []
    flat = np.concatenate(hashes)
    order = np.lexsort((np.arange(len(flat)), flat))  # earliest row first in each group
    same_as_previous = np.zeros(len(order), dtype=bool)
    same_as_previous[1:] = np.diff(flat[order]) == 0
    group_start = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(len(order))))
    candidates, firsts = order[same_as_previous], order[group_start[same_as_previous]]
    duplicate = np.zeros(len(order), dtype=bool)
    # Many small takes: from the system allocator, which reuses their odd sizes; jemalloc,
    # keeping freed pages for the data commands, grew by gigabytes on them.
    gatherer = RowGatherer(tables, columns=["prompt", "completion"], pool=pa.system_memory_pool())
    duplicate[candidates] = _same_texts(gatherer, candidates, firsts, release_all)
    return np.split(duplicate, np.cumsum([len(h) for h in hashes])[:-1])


def _row_hashes(table: pa.Table) -> np.ndarray:
    from pandas.util import hash_array

    parts = [np.empty(0, dtype=np.uint64)]
    for start in range(0, table.num_rows, _BATCH_ROWS):
        text = row_text(table.slice(start, _BATCH_ROWS)).to_numpy(zero_copy_only=False)
        parts.append(hash_array(text.astype(object), categorize=False))
    return np.concatenate(parts).astype(np.uint64)


def _same_texts(
    gatherer: RowGatherer,
    rows: np.ndarray,
    others: np.ndarray,
    after_block: Callable[[], object],
) -> np.ndarray:
    """Whether row ``rows[i]`` has the text of row ``others[i]``, a bounded block at a time:
    when most rows repeat (the same dataset mixed many times), the candidates are millions,
    and holding their texts at once took 16 GB and overflowed Arrow's 2 GB string arrays."""
    same = np.empty(len(rows), dtype=bool)
    # In order of position, so that a block reads one stretch of the inputs, not all of them.
    by_position = np.argsort(rows, kind="stable")
    for start in range(0, len(rows), _BATCH_ROWS):
        block = by_position[start : start + _BATCH_ROWS]
        equal = pc.equal(_texts(gatherer, rows[block]), _texts(gatherer, others[block]))
        same[block] = equal.to_numpy(zero_copy_only=False)
        after_block()
    return same


def _texts(gatherer: RowGatherer, rows: np.ndarray) -> pa.ChunkedArray:
    return row_text(gatherer.take(rows))


# ---------------------------------------------------------------- words and n-grams


@dataclass
class WordIndex:
    """The hashed words of a set of rows, in order, with the row each came from."""

    words: np.ndarray  # uint64 hash per word
    rows: np.ndarray  # int64 row index per word
    num_rows: int

    def subset(self, keep: np.ndarray) -> WordIndex:
        return WordIndex(self.words[keep], self.rows[keep], self.num_rows)


@dataclass
class NgramIndex:
    """Every n-gram hash of a set of rows, with the row it came from."""

    rows: np.ndarray  # int64 row index per n-gram
    grams: np.ndarray  # uint64 hash per n-gram
    num_rows: int

    def subset(self, keep: np.ndarray) -> NgramIndex:
        return NgramIndex(self.rows[keep], self.grams[keep], self.num_rows)


def word_index(texts: pa.ChunkedArray | pa.Array) -> WordIndex:
    """Split each text into lower-cased words and hash them."""
    lowered = pc.utf8_lower(texts)
    words = pc.split_pattern_regex(lowered, r"[^0-9A-Za-z_]+")
    words = words.combine_chunks() if isinstance(words, pa.ChunkedArray) else words
    row_of_word = pc.list_parent_indices(words).to_numpy()
    flat = pc.list_flatten(words)
    keep = pc.greater(pc.utf8_length(flat), 0)
    flat, row_of_word = flat.filter(keep), row_of_word[keep.to_numpy(zero_copy_only=False)]
    return WordIndex(_word_hashes(flat), row_of_word.astype(np.int64), len(texts))


def ngram_index(index: WordIndex, n: int) -> NgramIndex:
    """Hash the n-grams of consecutive words within each row (short rows have none)."""
    grams, starts = _ngrams(index, n)
    return NgramIndex(index.rows[starts], grams, index.num_rows)


def _ngrams(index: WordIndex, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hashes that do not cross a row boundary, and where each starts."""
    grams = _rolling_hashes(index.words, n)
    starts = np.arange(len(grams), dtype=np.int64)
    if len(starts):
        inside = index.rows[starts] == index.rows[starts + n - 1]
        grams, starts = grams[inside], starts[inside]
    return grams, starts


def _word_hashes(words: pa.Array) -> np.ndarray:
    from pandas.util import hash_array

    # Hash each distinct word once: a vocabulary is tiny next to the running text.
    encoded = pc.dictionary_encode(words)
    vocabulary = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    vocabulary_hashes = hash_array(vocabulary, categorize=False).astype(np.uint64)
    return vocabulary_hashes[encoded.indices.to_numpy()]


def _rolling_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    count = len(word_hashes) - n + 1
    grams = np.zeros(max(count, 0), dtype=np.uint64)
    for offset in range(n if count > 0 else 0):
        # uint64 arithmetic wraps modulo 2**64, which is what a hash wants
        grams = grams * _MULTIPLIER + word_hashes[offset : offset + count]
    return grams


# ---------------------------------------------------------------- template text


def strip_boilerplate(
    sets: Sequence[WordIndex], threshold: int, width: int = PHRASE_WORDS
) -> tuple[list[WordIndex], int]:
    """Remove the words of every ``width``-word phrase found more than ``threshold`` times.

    Template instructions ("Read the conversation and state its key points") repeat in a
    large share of rows; left in, any n-gram that spans one plus a common first word would
    look like a leak. Removing the phrase from both sides keeps the content's n-grams.
    """
    counts = _GramCounts()
    for ix in sets:
        counts.add(_ngrams(ix, width)[0])
    frequent = counts.above(threshold)
    return [_strip(ix, frequent, width) for ix in sets], int(len(frequent))


def _strip(ix: WordIndex, frequent: np.ndarray, width: int) -> WordIndex:
    """``ix`` without the words of its ``width``-word phrases that are in ``frequent``."""
    gram, start = _ngrams(ix, width)
    starts = start[_member(gram, frequent)]
    size = len(ix.words) + width
    # +1 where a phrase starts, -1 just after it ends: a running sum > 0 marks its words
    edges = np.bincount(starts, minlength=size) - np.bincount(starts + width, minlength=size)
    return ix.subset(np.cumsum(edges)[: len(ix.words)] == 0)


class _GramCounts:
    """How often each hash occurs over many arrays added one at a time: distinct values and
    their counts, merged when what waits is as large as what was merged (amortised), so
    memory follows the distinct values, not every occurrence."""

    def __init__(self) -> None:
        self.values = _EMPTY
        self.counts = np.empty(0, dtype=np.int64)
        self._waiting: list[tuple[np.ndarray, np.ndarray]] = []
        self._waiting_size = 0

    def add(self, values: np.ndarray) -> None:
        unique, counts = np.unique(values, return_counts=True)
        self._waiting.append((unique, counts))
        self._waiting_size += len(unique)
        if self._waiting_size > max(len(self.values), 1 << 20):
            self._merge()

    def _merge(self) -> None:
        if not self._waiting:
            return
        values = np.concatenate([self.values, *(v for v, _ in self._waiting)])
        counts = np.concatenate([self.counts, *(c for _, c in self._waiting)])
        self.values, inverse = np.unique(values, return_inverse=True)
        self.counts = np.bincount(inverse, weights=counts, minlength=len(self.values)).astype(
            np.int64
        )
        self._waiting, self._waiting_size = [], 0

    def above(self, threshold: int) -> np.ndarray:
        """The sorted distinct values seen more than ``threshold`` times."""
        self._merge()
        return self.values[self.counts > threshold]

    def distinct(self) -> np.ndarray:
        """Every distinct value seen, sorted."""
        self._merge()
        return self.values


# ---------------------------------------------------------------- contamination


@dataclass
class ContaminationReport:
    """Which train rows share an n-gram with which evaluation set."""

    masks: list[np.ndarray]  # per train set: True where the row overlaps any evaluation set
    pairs: list[dict[str, object]] = field(default_factory=list)  # train x eval counts
    boilerplate_phrases: int = 0  # frequent phrases removed as template text
    threshold_rows: int = 0


# A set's words, or a way to compute them when needed (see find_contamination).
WordSource = WordIndex | Callable[[], WordIndex]


def _words(source: WordSource) -> WordIndex:
    return source if isinstance(source, WordIndex) else source()


def find_contamination(
    train: Sequence[tuple[str, WordSource]],
    evaluation: Sequence[tuple[str, WordSource]],
    n: int = 13,
    boilerplate_fraction: float = 0.01,
) -> ContaminationReport:
    """Flag train rows sharing an n-gram with any evaluation row, and count per pair.

    Phrases found more often than max(10, boilerplate_fraction x all rows) are template text
    and are removed first (see strip_boilerplate).

    A set given as a callable is computed each time it is needed (twice for train sets,
    three times for evaluation sets) and never held beside the others: memory follows the
    largest set and the distinct phrases, not every word of the mixture (500 tasks of 12k
    rows held 29 GB). What is kept of each train set is only its n-grams found in
    evaluation sets.
    """
    counts, rows = _GramCounts(), 0
    for _, source in [*train, *evaluation]:
        words = _words(source)
        counts.add(_ngrams(words, PHRASE_WORDS)[0])
        rows += words.num_rows
    threshold = max(10, int(boilerplate_fraction * rows))
    frequent = counts.above(threshold)
    del counts

    def grams(source: WordSource) -> NgramIndex:
        return ngram_index(_strip(_words(source), frequent, PHRASE_WORDS), n)

    seen_in_eval = _GramCounts()
    for _, source in evaluation:
        seen_in_eval.add(grams(source).grams)
    eval_grams = seen_in_eval.distinct()
    del seen_in_eval
    # Only n-grams on both sides matter: shrink every index to those before any further work.
    train_ix = []
    for _, source in train:
        ix = grams(source)
        train_ix.append(ix.subset(_member(ix.grams, eval_grams)))
    shared = np.unique(np.concatenate([ix.grams for ix in train_ix] or [_EMPTY]))
    eval_named = []
    for name, source in evaluation:
        ix = grams(source)
        eval_named.append((name, ix.subset(_member(ix.grams, shared))))
    report = ContaminationReport(
        [], boilerplate_phrases=int(len(frequent)), threshold_rows=threshold
    )
    for (name, _), ix in zip(train, train_ix, strict=True):
        mask = np.zeros(ix.num_rows, dtype=bool)
        mask[ix.rows] = True
        report.masks.append(mask)
        report.pairs.extend(_pairs(name, ix, eval_named))
    return report


_EMPTY = np.empty(0, dtype=np.uint64)


def _member(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """np.isin for a sorted set: binary search instead of sorting ``values`` too."""
    if not len(sorted_unique):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    return sorted_unique[at] == values


def _pairs(
    name: str, leaked: NgramIndex, evaluation: Sequence[tuple[str, NgramIndex]]
) -> list[dict[str, object]]:
    pairs: list[dict[str, object]] = []
    train_grams = np.unique(leaked.grams)
    for eval_name, eval_ix in evaluation:
        common = train_grams[_member(train_grams, np.unique(eval_ix.grams))]
        if not len(common):
            continue
        train_rows = np.unique(leaked.rows[_member(leaked.grams, common)])
        eval_rows = np.unique(eval_ix.rows[_member(eval_ix.grams, common)])
        pairs.append(
            {
                "train_task": name,
                "eval_set": eval_name,
                "train_rows": int(len(train_rows)),
                "eval_rows": int(len(eval_rows)),
            }
        )
    return pairs

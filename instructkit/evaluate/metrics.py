"""Metrics: the ``Metric`` base, the registry fed by ``register_metrics``; ROUGE, exact match,
contains.

A metric scores one prediction against one reference (``score_pair``, values 0-100). The rest is
shared: several references per row are reduced with ``max`` (default), ``mean`` or ``first``; the
row scores are averaged; a seeded bootstrap gives confidence intervals; ``num_proc`` spreads the
pair scoring over processes. Chunks are contiguous and the bootstrap runs in the parent, so any
``num_proc`` gives identical numbers.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from instructkit.errors import EvaluateError, OptionsError, PluginError

MULTI_REF_MODES = ("max", "mean", "first")
DEFAULT_METRIC = "rouge"
DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95

# One row's scores against each of its references: [{key: value}, ...].
PairScores = list[dict[str, float]]


class Metric(ABC):
    """A metric that averages per-row scores; subclass it and register an instance.

    Class attributes: ``name`` (unique, used by ``--metric`` and template packs), ``keys`` (the
    sub-scores ``score_pair`` returns, in display order), ``primary`` (the key used as the
    task's headline score, e.g. in the forgetting report) and a one-line ``description``.
    """

    name: ClassVar[str] = ""
    keys: ClassVar[tuple[str, ...]] = ()
    primary: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @abstractmethod
    def score_pair(self, prediction: str, reference: str) -> dict[str, float]:
        """Score one prediction against one reference: ``{key: value}`` on a 0-100 scale."""

    def score(
        self,
        predictions: Sequence[str],
        references: Sequence[Sequence[str]],
        multi_ref: str = "max",
        num_proc: int = 1,
        bootstrap: int = DEFAULT_BOOTSTRAP,
        confidence: float = DEFAULT_CONFIDENCE,
        seed: int = 0,
    ) -> MetricResult:
        """Score predictions against their references (a list of strings per row)."""
        pairs = score_pairs(self, predictions, references, num_proc=num_proc)
        rows = reduce_references(self, pairs, multi_ref)
        return aggregate(self, rows, multi_ref, bootstrap, confidence, seed)


@dataclass(frozen=True)
class Score:
    """A mean over rows with its bootstrap confidence interval (None when not computed)."""

    value: float
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def format(self, digits: int = 2) -> str:
        """``41.23 [40.10, 42.35]``, or just the value without an interval."""
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass
class MetricResult:
    """The scores of one metric over a set of rows, and the per-row values they came from."""

    metric: str
    primary: str
    multi_ref: str
    num_rows: int
    scores: dict[str, Score]
    row_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "num_rows": self.num_rows,
            "scores": {key: score.to_json() for key, score in self.scores.items()},
        }


# ---------------------------------------------------------------- built-in metrics


class Rouge(Metric):
    """ROUGE-1/2/L/Lsum F-measure x 100 from the ``rouge-score`` package (offline)."""

    name = "rouge"
    keys = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    primary = "rougeL"
    description = "ROUGE-1/2/L/Lsum F-measure x 100 (rouge-score, Porter stemming)"

    def __init__(self, use_stemmer: bool = True) -> None:
        self.use_stemmer = use_stemmer
        self._scorer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # the scorer is rebuilt in each worker rather than pickled
        return {"use_stemmer": self.use_stemmer, "_scorer": None}

    def score_pair(self, prediction: str, reference: str) -> dict[str, float]:
        if self._scorer is None:
            from rouge_score import rouge_scorer

            # split_summaries=False: rougeLsum splits on "\n" only, which needs no NLTK data
            self._scorer = rouge_scorer.RougeScorer(
                list(self.keys), tokenizer=_cached_tokenizer(self.use_stemmer)
            )
        scores = self._scorer.score(reference, prediction)  # rouge_score takes the target first
        return {key: 100.0 * scores[key].fmeasure for key in self.keys}


def _cached_tokenizer(use_stemmer: bool) -> Any:
    """rouge-score's own tokenizer and Porter stemmer, memoized: the same tokens, much faster.

    Stemming is most of ROUGE's cost, and with several references each prediction would be
    tokenized once per reference; both are pure functions of their input, so caching them
    changes no score (tests compare against a plain ``RougeScorer``).
    """
    from nltk.stem import porter
    from rouge_score import tokenize, tokenizers

    stem = functools.lru_cache(maxsize=200_000)(porter.PorterStemmer().stem)
    stemmer = type("CachedStemmer", (), {"stem": staticmethod(stem)})() if use_stemmer else None

    @functools.lru_cache(maxsize=8192)
    def cached(text: str) -> tuple[str, ...]:
        return tuple(tokenize.tokenize(text, stemmer))

    class CachedTokenizer(tokenizers.Tokenizer):
        def tokenize(self, text: str) -> list[str]:
            return list(cached(text))  # a fresh list: callers must not share one

    return CachedTokenizer()


_WHITESPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Case-folded text with runs of whitespace collapsed: what exact match compares."""
    return _WHITESPACE.sub(" ", text).strip().casefold()


class ExactMatch(Metric):
    """100 when the prediction equals the reference up to case and whitespace, else 0."""

    name = "exact_match"
    keys = ("exact_match",)
    primary = "exact_match"
    description = "100 if prediction == reference, ignoring case and whitespace runs"

    def score_pair(self, prediction: str, reference: str) -> dict[str, float]:
        return {
            "exact_match": 100.0
            if normalize_answer(prediction) == normalize_answer(reference)
            else 0.0
        }


class ContainsAnswer(Metric):
    """100 when the reference occurs in the prediction as whole words (case-folded), else 0.

    For short-answer questions asked of chat models, which answer "7 + 5 = 12." rather than
    "12": exact match would score a right answer 0.
    """

    name = "contains"
    keys = ("contains",)
    primary = "contains"
    description = "100 if the reference occurs in the prediction as whole words, ignoring case"

    def score_pair(self, prediction: str, reference: str) -> dict[str, float]:
        needle = normalize_answer(reference)
        if not needle:
            return {"contains": 0.0}
        pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
        found = re.search(pattern, normalize_answer(prediction)) is not None
        return {"contains": 100.0 if found else 0.0}


# ---------------------------------------------------------------- registry


def metric_registry() -> dict[str, Metric]:
    """Every registered metric by name: the built-ins and those of installed plugins."""
    from instructkit.plugins import load_plugins

    found: dict[str, Metric] = {}

    def register(metric: Metric) -> None:
        if not isinstance(metric, Metric):
            raise PluginError(
                f"register_metrics got {metric!r}: register an instance of instructkit.Metric."
            )
        if not metric.name or metric.primary not in metric.keys:
            raise PluginError(
                f"Metric {type(metric).__name__} needs a name and a primary key among its keys."
            )
        if metric.name in found:
            raise PluginError(
                f"Metric '{metric.name}' is registered twice: rename one of them "
                f"(see 'instructkit plugins --all')."
            )
        found[metric.name] = metric

    load_plugins().hook.register_metrics(register=register)
    return dict(sorted(found.items()))


def get_metric(name: str) -> Metric:
    """The registered metric called ``name``, or an OptionsError listing the known ones."""
    registry = metric_registry()
    if name not in registry:
        raise OptionsError(
            f"Unknown metric '{name}': known metrics are {', '.join(registry)} "
            f"(plugins add more through register_metrics)."
        )
    return registry[name]


# ---------------------------------------------------------------- scoring


def check_inputs(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise an EvaluateError when predictions and references cannot be paired."""
    if len(predictions) != len(references):
        raise EvaluateError(
            f"Got {len(predictions)} predictions but {len(references)} reference rows: "
            f"give one prediction per row."
        )
    for index, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise EvaluateError(
                f"Row {index} has no list of references: give each row at least one reference."
            )


def score_pairs(
    metric: Metric,
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    num_proc: int = 1,
) -> list[PairScores]:
    """Score every prediction against each of its references, in row order."""
    check_inputs(predictions, references)
    if num_proc < 1:
        raise OptionsError(f"num_proc must be at least 1, got {num_proc}.")
    rows = list(zip(predictions, references, strict=True))
    if num_proc == 1 or len(rows) < 2 * num_proc:
        return _score_chunk(metric, rows)
    # a few chunks per process evens out long and short rows; contiguous chunks keep order
    chunks = _contiguous_chunks(rows, num_proc * 4)
    from concurrent.futures import ProcessPoolExecutor  # here: every command imports this module

    with ProcessPoolExecutor(max_workers=num_proc) as pool:
        results = pool.map(_score_chunk, [metric] * len(chunks), chunks)
        return [row for chunk in results for row in chunk]


def _contiguous_chunks(items: list[Any], count: int) -> list[list[Any]]:
    size = -(-len(items) // count)
    return [items[start : start + size] for start in range(0, len(items), size)]


def _score_chunk(metric: Metric, rows: list[tuple[str, Sequence[str]]]) -> list[PairScores]:
    return [[metric.score_pair(pred, ref) for ref in refs] for pred, refs in rows]


def reduce_references(
    metric: Metric, pair_scores: Sequence[PairScores], multi_ref: str
) -> dict[str, list[float]]:
    """One value per row and key: the max, mean or first over the row's references."""
    if multi_ref not in MULTI_REF_MODES:
        raise OptionsError(
            f"Unknown multi-reference mode '{multi_ref}': use {', '.join(MULTI_REF_MODES)}."
        )
    rows: dict[str, list[float]] = {key: [] for key in metric.keys}
    for pairs in pair_scores:
        for key in metric.keys:
            values = [pair[key] for pair in pairs]
            rows[key].append(_reduce(values, multi_ref))
    return rows


def _reduce(values: list[float], mode: str) -> float:
    if mode == "max":
        # per key, like rouge_score's score_multi: the best reference may differ by key
        return max(values)
    if mode == "mean":
        return sum(values) / len(values)
    return values[0]


def aggregate(
    metric: Metric,
    row_scores: dict[str, list[float]],
    multi_ref: str = "max",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> MetricResult:
    """Average row scores; add a seeded bootstrap interval when ``bootstrap`` > 0."""
    num_rows = len(next(iter(row_scores.values()), []))
    if num_rows == 0:
        raise EvaluateError("No rows to score: the predictions or the split are empty.")
    scores = {
        key: _mean_with_interval(values, bootstrap, confidence, seed)
        for key, values in row_scores.items()
    }
    return MetricResult(metric.name, metric.primary, multi_ref, num_rows, scores, row_scores)


def _mean_with_interval(
    values: Sequence[float], resamples: int, confidence: float, seed: int
) -> Score:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if resamples <= 0:
        return Score(mean)
    if not 0.0 < confidence < 1.0:
        raise OptionsError(f"confidence must be between 0 and 1, got {confidence}.")
    means = bootstrap_means(array, resamples, seed)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Score(mean, float(low), float(high))


def bootstrap_means(values: Any, resamples: int, seed: int, block: int = 200) -> Any:
    """Means of ``resamples`` seeded resamples (with replacement) of ``values``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    size = len(values)
    means = np.empty(resamples, dtype=np.float64)
    # blocks bound memory to block x rows indices, whatever the number of resamples
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        indices = rng.integers(0, size, size=(count, size))
        means[start : start + count] = values[indices].mean(axis=1)
    return means

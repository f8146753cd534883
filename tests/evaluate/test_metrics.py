"""Metrics: ROUGE equals rouge-score's own numbers, multi-reference modes, bootstrap, registry."""

from __future__ import annotations

import json
import statistics

import pytest
from rouge_score import rouge_scorer

import instructkit
from instructkit.errors import EvaluateError, OptionsError, PluginError
from instructkit.evaluate import metrics
from instructkit.plugins import pm

PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("Amanda baked cookies.\nShe will bring them tomorrow.", "Amanda brings cookies tomorrow."),
    ("", "Nothing was predicted for this one."),
    ("Running runners ran quickly", "the runner runs quick"),
    ("Identical text here.", "Identical text here."),
]
MULTI = [
    ("Jerry will meet Tom at the office.", ["Tom meets Jerry.", "Jerry and Tom meet at work."]),
    ("They talk about dinner.", ["A dinner is planned.", "They discuss dinner plans.", "Food."]),
    ("Nothing relevant", ["Anna calls Bob.", "Bob is called by Anna about the party."]),
]
KEYS = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def reference_scorer():
    return rouge_scorer.RougeScorer(KEYS, use_stemmer=True)


def test_rouge_equals_rouge_score_single_reference():
    scorer = reference_scorer()
    result = metrics.get_metric("rouge").score(
        [p for p, _ in PAIRS], [[r] for _, r in PAIRS], bootstrap=0
    )
    for key in KEYS:
        expected = [100 * scorer.score(ref, pred)[key].fmeasure for pred, ref in PAIRS]
        assert result.row_scores[key] == pytest.approx(expected)
        assert result.scores[key].value == pytest.approx(statistics.fmean(expected))


def test_rougelsum_splits_sentences_on_newlines():
    rouge = metrics.get_metric("rouge")
    prediction, reference = "c d\na b", "a b\nc d"  # same sentences, swapped order
    split = rouge.score_pair(prediction, reference)
    joined = rouge.score_pair(prediction.replace("\n", " "), reference.replace("\n", " "))
    assert split["rougeLsum"] > joined["rougeLsum"]
    assert split["rougeL"] == joined["rougeL"]


def test_multi_reference_max_equals_score_multi():
    scorer = reference_scorer()
    rouge = metrics.get_metric("rouge")
    preds, refs = [p for p, _ in MULTI], [r for _, r in MULTI]
    result = rouge.score(preds, refs, multi_ref="max", bootstrap=0)
    for key in KEYS:
        expected = [100 * scorer.score_multi(r, p)[key].fmeasure for p, r in MULTI]
        assert result.row_scores[key] == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["mean", "first"])
def test_multi_reference_mean_and_first(mode):
    scorer = reference_scorer()
    preds, refs = [p for p, _ in MULTI], [r for _, r in MULTI]
    result = metrics.get_metric("rouge").score(preds, refs, multi_ref=mode, bootstrap=0)
    for key in KEYS:
        per_ref = [[100 * scorer.score(r, p)[key].fmeasure for r in rs] for p, rs in MULTI]
        expected = [statistics.fmean(v) if mode == "mean" else v[0] for v in per_ref]
        assert result.row_scores[key] == pytest.approx(expected)


def test_modes_order_max_mean_first():
    preds, refs = [p for p, _ in MULTI], [r for _, r in MULTI]
    rouge = metrics.get_metric("rouge")
    by_mode = {m: rouge.score(preds, refs, multi_ref=m, bootstrap=0) for m in ("max", "mean")}
    for key in KEYS:
        assert by_mode["max"].scores[key].value >= by_mode["mean"].scores[key].value


def test_exact_match_ignores_case_and_whitespace():
    em = metrics.get_metric("exact_match")
    result = em.score(
        ["Office", "  the   party ", "dinner"], [["office"], ["The party"], ["x", "y"]]
    )
    assert result.row_scores["exact_match"] == [100.0, 100.0, 0.0]
    assert em.score(["b"], [["a", "b"]], multi_ref="max").scores["exact_match"].value == 100.0
    assert em.score(["b"], [["a", "b"]], multi_ref="first").scores["exact_match"].value == 0.0


def test_num_proc_gives_identical_results():
    preds = [p for p, _ in PAIRS] * 4 + [p for p, _ in MULTI] * 4
    refs = [[r] for _, r in PAIRS] * 4 + [r for _, r in MULTI] * 4
    rouge = metrics.get_metric("rouge")
    one = rouge.score(preds, refs, num_proc=1, seed=3)
    two = rouge.score(preds, refs, num_proc=2, seed=3)
    assert json.dumps(one.to_json()) == json.dumps(two.to_json())
    assert one.row_scores == two.row_scores


def test_bootstrap_is_seeded_and_brackets_the_mean():
    preds, refs = [p for p, _ in PAIRS], [[r] for _, r in PAIRS]
    rouge = metrics.get_metric("rouge")
    first = rouge.score(preds, refs, seed=1).scores["rougeL"]
    again = rouge.score(preds, refs, seed=1).scores["rougeL"]
    other = rouge.score(preds, refs, seed=2).scores["rougeL"]
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.low is not None and first.high is not None
    assert first.low <= first.value <= first.high
    assert first.low < first.high


def test_bootstrap_zero_gives_no_interval():
    score = metrics.get_metric("rouge").score(["a b"], [["a"]], bootstrap=0).scores["rouge1"]
    assert (score.low, score.high) == (None, None)
    assert score.format() == f"{score.value:.2f}"


def test_mismatched_lengths_say_both_counts():
    with pytest.raises(EvaluateError, match="Got 2 predictions but 3 reference rows"):
        metrics.get_metric("rouge").score(["a", "b"], [["a"], ["b"], ["c"]])


def test_row_without_references_is_an_error():
    with pytest.raises(EvaluateError, match="Row 1 has no list of references"):
        metrics.get_metric("rouge").score(["a", "b"], [["a"], []])


def test_unknown_multi_ref_mode():
    with pytest.raises(OptionsError, match="use max, mean, first"):
        metrics.get_metric("rouge").score(["a"], [["a"]], multi_ref="median")


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(
        OptionsError, match="Unknown metric 'bleu': known metrics are contains, exact_match, rouge"
    ):
        metrics.get_metric("bleu")


class LengthRatio(metrics.Metric):
    name = "length_ratio"
    keys = ("length_ratio",)
    primary = "length_ratio"
    description = "prediction length / reference length x 100"

    def score_pair(self, prediction, reference):
        return {"length_ratio": 100.0 * len(prediction) / max(1, len(reference))}


class LengthPlugin:
    __name__ = "LengthPlugin"

    def __init__(self, metric):
        self.metric = metric

    @instructkit.hookimpl
    def register_metrics(self, register):
        register(self.metric)


def test_hook_register_metrics():
    pm.register(LengthPlugin(LengthRatio()), name="length-plugin")
    try:
        assert "length_ratio" in metrics.metric_registry()
        result = metrics.get_metric("length_ratio").score(["ab", "abcd"], [["abcd"], ["ab"]])
        assert result.scores["length_ratio"].value == pytest.approx(125.0)
    finally:
        pm.unregister(name="length-plugin")
    assert "length_ratio" not in metrics.metric_registry()


def test_registering_a_name_twice_fails():
    pm.register(LengthPlugin(metrics.Rouge()), name="dup-plugin")
    try:
        with pytest.raises(PluginError, match="Metric 'rouge' is registered twice"):
            metrics.metric_registry()
    finally:
        pm.unregister(name="dup-plugin")


def test_registering_a_non_metric_fails():
    pm.register(LengthPlugin(object()), name="bad-plugin")
    try:
        with pytest.raises(PluginError, match="register an instance"):
            metrics.metric_registry()
    finally:
        pm.unregister(name="bad-plugin")


@pytest.mark.shared_data
def test_dialogsum_three_references_match_rouge_score(shared_data_dir):
    lines = (shared_data_dir / "dialogsum" / "dialogsum.test.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[:40]]
    # score each row's topic against its three summaries: real text, three references
    preds = [r["topic1"] for r in records]
    refs = [[r["summary1"], r["summary2"], r["summary3"]] for r in records]
    result = metrics.get_metric("rouge").score(preds, refs, bootstrap=0)
    scorer = reference_scorer()
    for key in KEYS:
        expected = [
            100 * scorer.score_multi(r, p)[key].fmeasure for p, r in zip(preds, refs, strict=True)
        ]
        assert result.row_scores[key] == pytest.approx(expected)

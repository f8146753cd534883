"""The predictions cache: `evaluate --compare` after `evaluate` generates nothing again."""

from __future__ import annotations

import json
import shutil

import pytest
from evaluate_helpers import make_adapter, make_model, render_like

from instructkit.cli import cli
from instructkit.evaluate import run as evaluate
from instructkit.evaluate.predictions_cache import PredictionCache, file_digest

FAST = ["--max-new-tokens", "6", "--bootstrap", "20", "--quiet"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    base = make_model(root / "t5")
    return {
        "root": root,
        "t5": base,
        "lora": make_adapter(base, root / "lora"),
        "topic": render_like(root / "topic", "topic", count=4),
        "summary": render_like(root / "summary", "summary", count=4),
    }


@pytest.fixture
def generations(monkeypatch):
    """How many times a model generated (each call of evaluate's generate)."""
    calls = []
    original = evaluate.generate

    def counting(loaded, prompts, options=None, on_batch=None):
        calls.append(len(prompts))
        return original(loaded, prompts, options, on_batch)

    monkeypatch.setattr(evaluate, "generate", counting)
    return calls


def invoke(runner, *args):
    result = runner.invoke(cli, ["evaluate", *FAST, *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


def predictions(out):
    return (out / "predictions.jsonl").read_text()


def test_compare_after_evaluate_generates_nothing(runner, work, tmp_path, generations):
    data = [work["topic"], work["summary"]]
    invoke(runner, *data, "--model", work["t5"], "--out", tmp_path / "base")
    invoke(runner, *data, "--model", work["lora"], "--out", tmp_path / "lora")
    assert generations == [8, 8]
    assert metrics(tmp_path / "base")["predictions_cache"]["hit"] is False

    result = invoke(
        runner, "--compare", f"base={work['t5']}", f"lora={work['lora']}", *data,
        "--out", tmp_path / "report",
    )  # fmt: skip
    assert generations == [8, 8], "compare generated again"
    for name in ("base", "lora"):
        again = tmp_path / "report" / name
        assert metrics(again)["predictions_cache"]["hit"] is True
        assert predictions(again) == predictions(tmp_path / name)
        assert metrics(again)["tasks"] == metrics(tmp_path / name)["tasks"]
    # a cache hit describes the model as a generation does
    lora = metrics(tmp_path / "report" / "lora")["model"]
    assert lora == metrics(tmp_path / "lora")["model"]
    assert "Before" not in result.output  # the chart title is not echoed; the table is
    assert "| topic |" in result.output


def test_what_changes_the_key_generates_again(runner, work, tmp_path, generations):
    data = work["summary"]
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "a")
    # the seed only feeds the bootstrap under greedy decoding: still a hit
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "b", "--seed", "3")
    assert generations == [4]
    # other generation options, other rows, or --no-cache: generate
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "c", "--max-new-tokens", "3")
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "d", "--max-rows", "2")
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "e", "--no-cache")
    assert generations == [4, 4, 2, 4]
    assert "predictions_cache" not in metrics(tmp_path / "e")


def test_the_key_is_the_weights_content_not_the_path(runner, work, tmp_path, generations):
    data = work["summary"]
    copy = shutil.copytree(work["t5"], tmp_path / "copy")
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "a")
    invoke(runner, data, "--model", copy, "--out", tmp_path / "b")
    assert generations == [4], "a copy of the same weights must hit"
    # the same path with other weights (same size, as a later checkpoint would be) must miss
    from safetensors.torch import load_file, save_file

    weights = copy / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] * 0.5
    save_file(tensors, weights, metadata={"format": "pt"})
    invoke(runner, data, "--model", copy, "--out", tmp_path / "c")
    assert generations == [4, 4]


def test_file_digests_are_memoized_by_stat(tmp_path):
    memo = tmp_path / "memo"
    file = tmp_path / "weights.bin"
    file.write_bytes(b"a" * 100)
    first = file_digest(file, memo)
    assert len(list(memo.iterdir())) == 1
    assert file_digest(file, memo) == first
    file.write_bytes(b"b" * 100)  # rewritten: a new mtime, hashed again
    assert file_digest(file, memo) != first


def test_hub_id_that_is_not_downloaded_is_not_cached(tmp_path):
    cache = PredictionCache(tmp_path)
    lookup = cache.lookup("someone/not-downloaded", None, ["p"], {"max_new_tokens": 4}, "cpu")
    assert lookup.key is None and not lookup.hit


def test_loss_probe_of_one_model_without_generating_again(runner, work, tmp_path, generations):
    data = work["summary"]
    invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "a")
    result = invoke(runner, data, "--model", work["t5"], "--out", tmp_path / "b", "--loss-probe")
    assert generations == [4]  # the probe needs no generation; predictions came from the cache
    probe = json.loads((tmp_path / "b" / "loss_probe.json").read_text())
    assert list(probe["probes"]) == ["summary", "plain text"]
    assert probe["probes"]["plain text"]["rows"] == 25
    assert "loss probe plain text:" in result.output


def test_conversational_prompts_have_their_own_key():
    from instructkit.evaluate.predictions_cache import prompts_digest

    messages = [{"role": "user", "content": "hi"}]
    assert prompts_digest([messages]) == prompts_digest([[dict(m) for m in messages]])
    assert prompts_digest([messages]) != prompts_digest(['[{"content": "hi", "role": "user"}]'])
    assert prompts_digest(["a", "b"]) != prompts_digest(["ab"])

"""`instructkit evaluate`: generation on tiny models, predictions and metrics, adapters, errors."""

from __future__ import annotations

import json
import shutil

import pytest
from evaluate_helpers import (
    make_adapter,
    make_model,
    render_like,
    task_rows,
    write_dataset,
)

from instructkit.cli import cli
from instructkit.errors import ModelError
from instructkit.evaluate import run as evaluate
from instructkit.evaluate.generate import GenerationOptions, generate
from instructkit.modeling import load_for_inference

FAST = ["--max-new-tokens", "6", "--bootstrap", "50", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    mix_manifest = {
        "tasks": {"topic": {"metrics": ["exact_match", "rouge"]}, "summary": {"metrics": ["rouge"]}}
    }
    rows = task_rows("topic", 5) + task_rows("summary", 5)
    return {
        "root": root,
        "t5": make_model(root / "t5"),
        "gpt2": make_model(root / "gpt2", arch="gpt2"),
        "summary": render_like(root / "summary", "summary", count=6),
        "mix": write_dataset(root / "mix", {"test": rows, "validation": rows[:2]}, mix_manifest),
    }


def run_evaluate(runner, *args):
    result = runner.invoke(cli, ["evaluate", *map(str, args), *FAST])
    assert result.exit_code == 0, result.output
    return result


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluate_writes_predictions_and_metrics_per_task(runner, work, tmp_path):
    out = tmp_path / "eval"
    result = run_evaluate(runner, work["mix"], "--model", work["t5"], "--out", out)
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["example_id"] for p in predictions] == [
        r["example_id"] for r in task_rows("topic", 5) + task_rows("summary", 5)
    ]
    assert set(predictions[0]) == set(evaluate.PREDICTION_FIELDS)
    metrics = json.loads((out / "metrics.json").read_text())
    # the mix manifest names each task's metrics; the first one is primary
    assert list(metrics["tasks"]["topic"]["metrics"]) == ["exact_match", "rouge"]
    assert list(metrics["tasks"]["summary"]["metrics"]) == ["rouge"]
    assert metrics["overall"]["metrics"]["rouge"]["num_rows"] == 10
    assert metrics["overall"]["metrics"]["exact_match"]["num_rows"] == 5
    assert metrics["model"]["seq2seq"] is True
    assert "summary" in result.output and "(overall)" in result.output


def test_scoring_the_file_gives_the_same_numbers(runner, work, tmp_path):
    out = tmp_path / "eval"
    run_evaluate(runner, work["summary"], "--model", work["t5"], "--out", out, "--seed", "4")
    after_generation = json.loads((out / "metrics.json").read_text())
    args = ["score", str(out / "predictions.jsonl"), "--multi-ref", "max", "--bootstrap", "50"]
    scored = runner.invoke(cli, [*args, "--seed", "4", "--json"])
    assert scored.exit_code == 0, scored.output
    from_file = json.loads(scored.output)["multi_ref"]["max"]
    assert from_file["tasks"] == after_generation["tasks"]
    assert from_file["overall"] == after_generation["overall"]


def test_metric_option_overrides_the_manifest(runner, work, tmp_path):
    out = tmp_path / "eval"
    run_evaluate(
        runner, work["mix"], "--model", work["t5"], "--out", out, "--metric", "exact_match"
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert {t: list(m["metrics"]) for t, m in metrics["tasks"].items()} == {
        "topic": ["exact_match"],
        "summary": ["exact_match"],
    }


def test_causal_batches_are_left_padded(work):
    loaded = load_for_inference(str(work["gpt2"]))
    prompts = [r["prompt"] for r in task_rows("summary", 3)] + ["Hi", "What is the topic?"]
    one_by_one = generate(loaded, prompts, GenerationOptions(max_new_tokens=6, batch_size=1))
    batched = generate(loaded, prompts, GenerationOptions(max_new_tokens=6, batch_size=5))
    assert batched == one_by_one
    assert any(batched)


@pytest.mark.parametrize("how", ["adapter-as-model", "model-plus-adapter"])
def test_untrained_lora_adapter_is_accepted_and_matches_its_base(runner, work, tmp_path, how):
    adapter = make_adapter(work["t5"], tmp_path / "lora")
    base_out, lora_out = tmp_path / "base", tmp_path / "lora-eval"
    run_evaluate(runner, work["summary"], "--model", work["t5"], "--out", base_out)
    model_args = (
        ["--model", adapter]
        if how == "adapter-as-model"
        else ["--model", work["t5"], "--adapter", adapter]
    )
    run_evaluate(runner, work["summary"], *model_args, "--out", lora_out)
    # LoRA starts as a no-op (B = 0), so its predictions are the base model's
    assert read_jsonl(lora_out / "predictions.jsonl") == read_jsonl(base_out / "predictions.jsonl")
    metrics = json.loads((lora_out / "metrics.json").read_text())
    assert metrics["model"]["adapter"] == str(adapter)
    assert metrics["model"]["base"] == str(work["t5"])


def test_prompt_tuning_adapter_on_a_causal_model(runner, work, tmp_path):
    adapter = make_adapter(work["gpt2"], tmp_path / "pt", kind="prompt")
    out = tmp_path / "eval"
    run_evaluate(runner, work["summary"], "--model", adapter, "--out", out, "--batch-size", "4")
    assert len(read_jsonl(out / "predictions.jsonl")) == 6


def test_max_rows_first_or_seeded_sample(work):
    rows, _ = evaluate.load_eval_rows([work["mix"]], "test", max_rows=2)
    assert [r["example_id"] for r in rows] == ["topic-0", "topic-1", "summary-0", "summary-1"]
    sampled, _ = evaluate.load_eval_rows([work["mix"]], "test", max_rows=2, sample_seed=7)
    again, _ = evaluate.load_eval_rows([work["mix"]], "test", max_rows=2, sample_seed=7)
    assert sampled == again
    assert [r["task"] for r in sampled] == ["topic", "topic", "summary", "summary"]
    seeds = {
        tuple(r["example_id"] for r in evaluate.load_eval_rows([work["mix"]], "test", 2, s)[0])
        for s in range(6)
    }
    assert len(seeds) > 1


def test_adapter_with_missing_base_names_the_base(runner, work, tmp_path):
    base = tmp_path / "gone"
    shutil.copytree(work["t5"], base)
    adapter = make_adapter(base, tmp_path / "lora")
    shutil.rmtree(base)
    with pytest.raises(ModelError, match=f"expects base model '{base}', which does not exist"):
        load_for_inference(str(adapter))
    result = runner.invoke(
        cli,
        ["evaluate", str(work["summary"]), "--model", str(adapter), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: Adapter '{adapter}' expects base model '{base}', which does not exist: "
        "pass --model PATH_TO_BASE.\n"
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("split", "Split 'train' not found in '{data}': it has test."),
        (
            "not-a-model",
            "'{data}' is not a model directory (no config.json or adapter_config.json)",
        ),
        ("not-a-dataset", "'{model}' is not an instructkit dataset"),
        ("metric", "Unknown metric 'bleu': known metrics are contains, exact_match, rouge"),
        ("pack-metric", "Unknown metric 'bleu': known metrics are contains, exact_match, rouge"),
        ("temperature", "temperature and top_p only apply when sampling"),
        ("exists", "Output '{out}' already exists: pass --overwrite to replace it."),
    ],
)
def test_bad_input_is_one_line_exit_1(runner, work, tmp_path, case, message):
    data, model, out = work["summary"], work["t5"], tmp_path / "out"
    args = [str(data), "--model", str(model), "--out", str(out)]
    if case == "split":
        args += ["--split", "train"]
    elif case == "not-a-model":
        args[2] = str(data)
    elif case == "not-a-dataset":
        args[0] = str(model)
    elif case == "metric":
        args += ["--metric", "bleu"]
    elif case == "pack-metric":
        args[0] = str(render_like(tmp_path / "bleu", "summary", count=2, metrics=["bleu"]))
    elif case == "temperature":
        args += ["--temperature", "0.5"]
    elif case == "exists":
        out.mkdir()
    result = runner.invoke(cli, ["evaluate", *args, "--quiet"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: " + message.format(data=data, model=model, out=out))
    assert len(result.output.splitlines()) == 1
    assert not out.exists() or case == "exists"


def test_model_and_compare_together_is_a_usage_error(runner, work, tmp_path):
    args = [
        "evaluate",
        str(work["summary"]),
        "--model",
        str(work["t5"]),
        "--compare",
        f"a={work['t5']}",
    ]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "Give either --model/--adapter or --compare, not both." in result.output


def test_compare_value_without_a_name_is_a_usage_error(runner, work, tmp_path):
    args = ["evaluate", "--compare", "a", str(work["summary"]), "--out", str(tmp_path / "o")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert "'a' is not NAME=MODEL_OR_ADAPTER: write e.g. --compare base=a." in result.output
    assert "at least two" not in result.output


def test_sample_seed_without_max_rows_is_a_usage_error(runner, work, tmp_path):
    args = ["evaluate", str(work["summary"]), "--model", str(work["t5"]), "--sample-seed", "3"]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--sample-seed picks the rows of --max-rows N: give both." in result.output
    assert not (tmp_path / "o").exists()


def test_manifest_metrics_reads_render_and_mix_manifests():
    from instructkit.artifacts.manifest import Manifest

    render = Manifest({"kind": "render", "task": "samsum", "metrics": ["rouge", "exact_match"]})
    assert render.metrics_for("samsum") == ["rouge", "exact_match"]
    assert render.metrics_for("other") == []  # evaluate then uses the default, rouge
    mix = Manifest(
        {
            "kind": "mix",
            "metrics": {"samsum": ["exact_match"], "dialogsum": ["rouge"]},
            "tasks": [{"name": "samsum", "metrics": ["exact_match"]}],
        }
    )
    assert mix.metrics_for("samsum") == ["exact_match"]
    assert mix.metrics_for("dialogsum") == ["rouge"]
    records_only = Manifest({"kind": "mix", "tasks": [{"name": "t", "metrics": ["exact_match"]}]})
    assert records_only.metrics_for("t") == ["exact_match"]

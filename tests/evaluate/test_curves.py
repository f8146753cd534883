"""Forgetting over training: kept checkpoints, and every one scored on every task."""

from __future__ import annotations

import json

import pytest

from instructkit import charts
from instructkit.cli import cli
from instructkit.errors import OptionsError
from instructkit.evaluate import curves
from instructkit.evaluate import run as evaluate
from instructkit.testing import make_tiny_dataset, make_tiny_model, tiny_rows
from instructkit.train.base import build_options, get_trainer
from instructkit.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = {
    "max_steps": 6,
    "batch_size": 4,
    "logging_steps": 2,
    "max_source_length": 48,
    "max_target_length": 24,
    "learning_rate": 1e-2,
    "seed": 0,
}
FAST = ["--max-new-tokens", "4", "--bootstrap", "30", "--quiet", "--max-rows", "4"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    base = make_tiny_model(root / "base", "gpt2")
    # train on 'summarize' only; test holds both tasks: one is tuned on, one is not
    splits = {
        "train": tiny_rows(16, ("summarize",)),
        "test": tiny_rows(8, offset=100),
    }
    data = make_tiny_dataset(root / "data", splits=splits)
    full = run_training(
        data, "full", str(base), root / "full", {**OPTIONS, "keep_checkpoints": "2,4"}, quiet=True
    )
    lora = run_training(
        data, "lora", str(base), root / "lora", {**OPTIONS, "keep_checkpoints": "every:3"},
        quiet=True,
    )  # fmt: skip
    return {"root": root, "base": base, "data": data, "full": full, "lora": lora}


def test_train_keeps_the_chosen_checkpoints(runs):
    full = runs["root"] / "full"
    kept = sorted(p.name for p in (full / "checkpoints").iterdir())
    assert kept == ["checkpoint-2", "checkpoint-4"]  # 6 is the final model, not kept twice
    assert runs["full"].metadata["kept_checkpoints"] == [2, 4]
    record = json.loads(
        (full / "checkpoints" / "checkpoint-2" / "instructkit-checkpoint.json").read_text()
    )
    assert record["step"] == 2
    assert (full / "checkpoints" / "checkpoint-2" / "config.json").is_file()
    lora = runs["root"] / "lora"
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["checkpoint-3"]
    assert (lora / "checkpoints" / "checkpoint-3" / "adapter_config.json").is_file()
    assert not (runs["root"] / "full.checkpoints").exists()


@pytest.mark.parametrize("value", ["0", "two", "every:", "every:0", "3,x"])
def test_bad_keep_checkpoints_is_an_error(value):
    with pytest.raises(OptionsError, match="keep_checkpoints"):
        build_options(get_trainer("full"), {"keep_checkpoints": value})


def test_run_points_are_base_checkpoints_and_final(runs):
    points, _ = curves.run_points(runs["root"] / "full")
    assert [(p.step, p.kind) for p in points] == [
        (0, "base"), (2, "checkpoint"), (4, "checkpoint"), (6, "final"),
    ]  # fmt: skip
    assert points[0].model == str(runs["base"].resolve())


def test_curve_over_two_runs(runs, runner, tmp_path, monkeypatch):
    drawn = {}
    original = charts.band_line_chart

    def spy(path, panels, title, xlabel, ylabel):
        drawn.update(panels=panels)
        original(path, panels, title, xlabel, ylabel)

    monkeypatch.setattr(charts, "band_line_chart", spy)
    out = tmp_path / "curve"
    args = ["evaluate", "--checkpoints", f"full={runs['root'] / 'full'}"]
    args += ["--checkpoints", str(runs["root"] / "lora"), "--split", "test", "--out", str(out)]
    result = runner.invoke(cli, [*args, *FAST, "--loss-probe"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "curve.json",
        "curve.md",
        "curve.png",
        "full",
        "lora",
    }
    data = json.loads((out / "curve.json").read_text())
    assert [t["task"] for t in data["tasks"]] == ["summarize", "title"]
    steps = {run: [p["step"] for p in data["tasks"][0]["curves"][run]] for run in ("full", "lora")}
    assert steps == {"full": [0, 2, 4, 6], "lora": [0, 3, 6]}
    # the base (step 0) is the same model in both runs: scored once, then from the cache
    runs_json = {r["name"]: r for r in data["runs"]}
    assert runs_json["lora"]["cache_hits"] >= 1
    assert runs_json["full"]["tuned_on"] == ["summarize"]
    for task in data["tasks"]:
        assert task["curves"]["full"][0] == task["curves"]["lora"][0]
    # the final point is the run directory itself, scored like 'evaluate --model'
    final = evaluate.evaluate_model(
        str(runs["root"] / "full"), [runs["data"]], "test", tmp_path / "direct",
        scoring=evaluate.ScoringOptions(bootstrap=30), max_rows=4,
        generation=evaluate.GenerationOptions(max_new_tokens=4),
    )  # fmt: skip
    for task in data["tasks"]:
        last = task["curves"]["full"][-1]
        assert last["value"] == final.report.primary_score(task["task"]).value
    # chart: one panel per run, one line per task (tuned-on marked), intervals as bands
    assert list(drawn["panels"]) == ["full", "lora"]
    assert list(drawn["panels"]["full"]) == ["summarize *", "title"]
    xs, ys, intervals = drawn["panels"]["full"]["title"]
    assert list(xs) == [0, 2, 4, 6] and all(lo is not None for lo, _ in intervals)
    markdown = (out / "curve.md").read_text()
    assert "### full" in markdown and "| 4 | checkpoint |" in markdown
    assert markdown in result.output
    # the loss probe at every point: a loss column per probe, and the numbers in the JSON
    assert "| loss: summarize | loss: title | loss: plain text |" in markdown
    probes = runs_json["full"]["probes"]
    assert [p["step"] for p in probes] == [0, 2, 4, 6]
    assert all(p["plain text"]["loss"] > 0 for p in probes)
    assert probes[0] == runs_json["lora"]["probes"][0]  # the same base model


def test_runs_on_different_datasets_need_data(runs, tmp_path):
    other = make_tiny_dataset(tmp_path / "other", train_rows=8)
    run_training(other, "full", str(runs["base"]), tmp_path / "r", {**OPTIONS, "max_steps": 1})
    with pytest.raises(OptionsError, match="different datasets"):
        curves.score_curves(
            {"a": runs["root"] / "full", "b": tmp_path / "r"}, [], "test", tmp_path / "out"
        )

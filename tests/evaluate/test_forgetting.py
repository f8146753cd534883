"""The forgetting report: tiny models trained in the test, compared on two tasks end to end."""

from __future__ import annotations

import json
import math

import pytest
from evaluate_helpers import (
    make_adapter,
    make_model,
    render_like,
    task_rows,
    train_steps,
)

from instructkit import charts
from instructkit.cli import cli
from instructkit.evaluate import forgetting

FAST = ["--max-new-tokens", "8", "--bootstrap", "50", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("forgetting")
    base = make_model(root / "base")
    return {
        "base": base,
        # "full" tuned on the summary task only, as 'instructkit train --backend full' would
        "full": train_steps(base, root / "full", task_rows("summary", 12, start=100), steps=16),
        "lora": make_adapter(base, root / "lora"),
        "topic": render_like(root / "topic", "topic", count=6),
        "summary": render_like(root / "summary", "summary", count=6),
    }


@pytest.fixture(scope="module")
def report_run(work, tmp_path_factory):
    """Run the issue's command once: three models (full and LoRA against base) on two tasks."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("report") / "report"
    captured = {}
    original = charts.grouped_bar_chart

    def spy(path, categories, series, title, ylabel, intervals=None):
        captured.update(
            categories=list(categories), series=dict(series), ylabel=ylabel, intervals=intervals
        )
        original(path, categories, series, title, ylabel, intervals)

    charts.grouped_bar_chart = spy
    try:
        args = ["evaluate", "--compare", f"base={work['base']}", f"full={work['full']}"]
        args += [f"lora={work['lora']}", str(work["topic"]), str(work["summary"])]
        result = CliRunner().invoke(cli, [*args, "--out", str(out), "--loss-probe", *FAST])
    finally:
        charts.grouped_bar_chart = original
    assert result.exit_code == 0, result.output
    return {"out": out, "output": result.output, "chart": captured}


def table_rows(markdown):
    """The first table of the markdown (the scores; the loss probe's table follows)."""
    all_lines = markdown.splitlines()
    start = next(i for i, line in enumerate(all_lines) if line.startswith("| "))
    lines = []
    for line in all_lines[start:]:
        if not line.startswith("|"):
            break
        if line.startswith("| "):
            lines.append(line)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[1:]
    ]


def test_report_files_and_terminal_table(report_run):
    out = report_run["out"]
    assert {p.name for p in out.iterdir()} == {
        "report.json",
        "report.md",
        "report.png",
        "base",
        "full",
        "lora",
    }
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert markdown in report_run["output"]
    assert "rougeL" in markdown.splitlines()[0] or "rouge:rougeL" in markdown


def test_table_json_and_chart_agree(report_run):
    out = report_run["out"]
    data = json.loads((out / "report.json").read_text())
    rows = table_rows((out / "report.md").read_text())
    assert [r["task"] for r in rows] == [t["task"] for t in data["tasks"]] == ["topic", "summary"]
    for row, task in zip(rows, data["tasks"], strict=True):
        assert row["metric"] == "rouge:rougeL"
        for model in ("base", "full", "lora"):
            value = task["scores"][model]["value"]
            assert float(row[model].rstrip(" *")) == pytest.approx(value, abs=0.005)
        for model in ("full", "lora"):
            assert task["delta"][model] == pytest.approx(
                task["scores"][model]["value"] - task["scores"]["base"]["value"]
            )
            delta = float(row[f"Δ {model}"].split(" ± ")[0])
            assert delta == pytest.approx(task["delta"][model], abs=0.005)
    chart = report_run["chart"]
    assert chart["categories"] == ["topic", "summary\n* full"]
    assert chart["series"] == {
        m: [t["scores"][m]["value"] for t in data["tasks"]] for m in ("base", "full", "lora")
    }
    # the chart draws every bar's 95% interval
    assert chart["intervals"] == {
        m: [(t["scores"][m]["low"], t["scores"][m]["high"]) for t in data["tasks"]]
        for m in ("base", "full", "lora")
    }
    assert all(low is not None for values in chart["intervals"].values() for low, _ in values)


def test_tuned_on_tasks_are_marked(report_run):
    data = json.loads((report_run["out"] / "report.json").read_text())
    assert {t["task"]: t["tuned_on"] for t in data["tasks"]} == {"topic": [], "summary": ["full"]}
    rows = {r["task"]: r for r in table_rows((report_run["out"] / "report.md").read_text())}
    assert rows["summary"]["full"].endswith(" *")
    assert not rows["topic"]["full"].endswith("*")
    assert not rows["summary"]["base"].endswith("*")


def test_tuned_model_improves_where_it_was_tuned_and_lora_noop_does_not_move(report_run):
    data = json.loads((report_run["out"] / "report.json").read_text())
    summary = next(t for t in data["tasks"] if t["task"] == "summary")
    assert summary["delta"]["full"] > 0
    # an untrained LoRA adapter is the identity, so every delta is exactly zero
    assert all(t["delta"]["lora"] == 0 for t in data["tasks"])


def test_each_model_has_its_own_predictions_and_metrics(report_run):
    out = report_run["out"]
    data = json.loads((out / "report.json").read_text())
    for model in ("base", "full", "lora"):
        metrics = json.loads((out / model / "metrics.json").read_text())
        for task in data["tasks"]:
            rouge = metrics["tasks"][task["task"]]["metrics"]["rouge"]["scores"]["rougeL"]
            assert rouge == task["scores"][model]
    lora = next(m for m in data["models"] if m["name"] == "lora")
    assert lora["adapter"] is not None and lora["tuned_on"] == []


def test_compare_models_api_and_repeated_compare_option(work, tmp_path, runner):
    report = forgetting.compare_models(
        {"base": str(work["base"]), "full": str(work["full"])},
        [work["summary"]],
        "test",
        tmp_path / "api",
        scoring=forgetting.ScoringOptions(bootstrap=50),
        max_rows=3,
        quiet=True,
    )  # fmt: skip
    assert [m.name for m in report.models] == ["base", "full"]
    assert [row.num_rows for row in report.tasks] == [3]
    assert report.to_json() == json.loads((tmp_path / "api" / "report.json").read_text())
    args = ["evaluate", "--compare", f"base={work['base']}", "--compare", f"full={work['full']}"]
    cli_run = runner.invoke(
        cli,
        [
            *args,
            str(work["summary"]),
            "--out",
            str(tmp_path / "cli"),
            "--max-rows",
            "3",
            "--bootstrap",
            "0",
            *FAST,
        ],
    )
    assert cli_run.exit_code == 0, cli_run.output
    assert (tmp_path / "cli" / "report.md").read_text() == report.to_markdown()


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["base=M"], "Error: Compare at least two models"),
        (["bad name=M", "b=M"], "Error: Model name 'bad name' must start with a letter"),
        (["a=M", "a=M"], "model name 'a' is used twice"),
    ],
)
def test_bad_compare_specs(runner, work, tmp_path, specs, message):
    specs = [s.replace("=M", f"={work['base']}") for s in specs]
    result = runner.invoke(
        cli, ["evaluate", "--compare", *specs, str(work["summary"]), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert not (tmp_path / "o").exists()


def test_delta_intervals_are_paired_and_marked_when_they_cross_zero(report_run):
    data = json.loads((report_run["out"] / "report.json").read_text())
    rows = {r["task"]: r for r in table_rows((report_run["out"] / "report.md").read_text())}
    for task in data["tasks"]:
        # the untrained LoRA is the base exactly: Δ 0 with a [0, 0] interval, marked ~0
        lora = task["delta_interval"]["lora"]
        assert (lora["low"], lora["high"], lora["crosses_zero"]) == (0, 0, True)
        assert rows[task["task"]]["Δ lora"] == "+0.00 ± 0.00 ~0"
        full = task["delta_interval"]["full"]
        assert full["low"] <= task["delta"]["full"] <= full["high"]
        cell = rows[task["task"]]["Δ full"]
        assert cell.endswith("~0") == (full["low"] <= 0 <= full["high"])
        assert f"± {(full['high'] - full['low']) / 2:.2f}" in cell


def test_adapter_removed_scores_and_verdicts(report_run):
    data = json.loads((report_run["out"] / "report.json").read_text())
    for task in data["tasks"]:
        # the adapter's base is the baseline: removing the adapter gives the base's score
        assert task["adapter_removed"] == {"lora": task["scores"]["base"]}
    rows = table_rows((report_run["out"] / "report.md").read_text())
    assert all(float(r["lora adapter removed"]) == float(r["base"]) for r in rows)
    assert "full adapter removed" not in rows[0]
    verdicts = data["verdicts"]
    assert [v.split(":")[0] for v in verdicts] == ["full", "lora"]
    assert "kept topic (+0.0 ± 0.0)" in verdicts[1] and "adapter removed:" in verdicts[1]
    summary = next(t for t in data["tasks"] if t["task"] == "summary")
    if not summary["delta_interval"]["full"]["crosses_zero"]:
        assert f"learned summary: {summary['delta']['full']:+.1f}" in verdicts[0]
    markdown = (report_run["out"] / "report.md").read_text()
    assert all(f"- {line}" in markdown for line in verdicts)


def test_loss_probe_in_the_report(report_run):
    data = json.loads((report_run["out"] / "report.json").read_text())
    probes = data["probes"]
    assert set(probes) == {"base", "full", "lora"}
    assert list(probes["base"]) == ["topic", "summary", "plain text"]
    for model in probes.values():
        for result in model.values():
            assert result["loss"] > 0 and result["tokens"] > 0
            assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    # LoRA untrained: the same loss as the base; full was tuned on summary: lower loss there
    assert probes["lora"]["plain text"]["loss"] == pytest.approx(
        probes["base"]["plain text"]["loss"]
    )
    assert probes["full"]["summary"]["loss"] < probes["base"]["summary"]["loss"]
    assert (report_run["out"] / "full" / "loss_probe.json").is_file()
    markdown = (report_run["out"] / "report.md").read_text()
    assert "Loss probe" in markdown and "| plain text | 25 |" in markdown
    assert "plain text loss" in data["verdicts"][0]


def _trained(path, chat_template):
    path.mkdir()
    record = {"encoding": {"chat_template": chat_template}}
    (path / "instructkit-train.json").write_text(json.dumps(record))
    return str(path)


def test_base_is_prompted_the_way_the_tuned_models_were(tmp_path):
    """A base model has no training record: it gets the tuned models' encoding, not plain."""
    base = str(tmp_path / "base")  # no record
    on = _trained(tmp_path / "on", True)
    on2 = _trained(tmp_path / "on2", True)
    off = _trained(tmp_path / "off", False)
    shared = forgetting.shared_encoding
    assert shared({"base": base, "a": on, "b": on2}, "auto") == {
        "base": "on", "a": "auto", "b": "auto"
    }  # fmt: skip
    assert shared({"base": base, "a": off}, "auto") == {"base": "off", "a": "auto"}
    assert shared({"base": base, "other": base}, "auto") == {"base": "auto", "other": "auto"}
    assert shared({"base": base, "a": on}, "off") == {"base": "off", "a": "off"}
    with pytest.raises(forgetting.OptionsError, match="a: on, b: off.*--chat-template on or off"):
        shared({"base": base, "a": on, "b": off}, "auto")


def test_report_records_each_models_prompt_encoding(report_run):
    data = json.loads((report_run["out"] / "report.json").read_text())
    assert all("chat_template" in model for model in data["models"])

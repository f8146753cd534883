"""`instructkit demo`: the main job runs end to end (with tiny step counts here) and reports."""

from __future__ import annotations

import json

import pytest

from instructkit.cli import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_runs_end_to_end_and_reports(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_PROGRESS_EVERY", "0")  # a line per step: output is a pipe
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--base-steps", "4", "--tune-steps", "2", "--eval-rows", "3"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report" / "report.json").read_text())
    assert [m["name"] for m in report["models"]] == [
        "base",
        "full-B",
        "mix-AB",
        "lora-B",
        "prompt-B",
    ]
    assert {t["task"] for t in report["tasks"]} == {"dialogsum", "dialogsum_topic"}
    tuned = {t["task"]: set(t["tuned_on"]) for t in report["tasks"]}
    assert tuned["dialogsum_topic"] == {"base", "mix-AB"}
    assert tuned["dialogsum"] == {"full-B", "mix-AB", "lora-B", "prompt-B"}
    assert (out / "report" / "report.png").stat().st_size > 0
    # the printed table is the written one, and every step is narrated
    assert (out / "report" / "report.md").read_text().strip() in result.output
    assert "[9] forgetting report" in result.output
    assert "train: 4/4 steps (100%)" in result.output  # the long steps are not silent
    # the report names the final locations, not the temporary directory it was built in
    assert all(m["path"].startswith(str(out.resolve())) for m in report["models"])
    adapter = json.loads((out / "runs" / "lora-B" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str((out / "runs" / "base").resolve())
    assert json.loads((out / "demo.json").read_text())["recipe"]["tune_steps"] == 2


def test_demo_refuses_existing_output_and_bad_data(runner, tmp_path):
    (tmp_path / "taken").mkdir()
    result = runner.invoke(cli, ["demo", "--out", str(tmp_path / "taken")])
    assert result.exit_code == 1
    assert "already exists: pass --overwrite" in result.output
    result = runner.invoke(cli, ["demo", "--out", str(tmp_path / "x"), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "No DialogSum-layout data" in result.output
    assert not (tmp_path / "x").exists()


def report_with(base_a: float, tuned_a: float, base_b: float, tuned_b: float):
    from instructkit.evaluate.forgetting import ForgettingReport, ModelEntry, TaskRow
    from instructkit.evaluate.metrics import Score

    def row(task, base, tuned):
        scores = {"base": Score(base), "full-B": Score(tuned)}
        return TaskRow(task, "rouge", "rougeL", 10, scores)

    models = [ModelEntry("base", "b"), ModelEntry("full-B", "f")]
    return ForgettingReport(
        "test", models, [row("dialogsum_topic", base_a, tuned_a), row("dialogsum", base_b, tuned_b)]
    )


def test_verdict_reads_forgetting_off_the_numbers():
    from instructkit.demo import verdict

    lines = verdict(report_with(base_a=90, tuned_a=16, base_b=16, tuned_b=58))
    assert lines[1] == "full-B: learned B (+42.0); task A 16.0 (A FORGOTTEN)"
    lines = verdict(report_with(base_a=90, tuned_a=88, base_b=16, tuned_b=18))
    assert lines[1] == "full-B: did NOT learn B (+2.0); task A 88.0 (A kept)"


def test_verdict_says_when_the_base_never_learned_task_a():
    from instructkit.demo import verdict

    lines = verdict(report_with(base_a=0, tuned_a=0.1, base_b=0, tuned_b=14))
    assert "never learned task A" in lines[-1]
    assert not any("A kept" in line for line in lines)

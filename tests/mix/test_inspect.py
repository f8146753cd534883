"""instructkit inspect: any dataset directory as a table, JSON, or a composition chart."""

from __future__ import annotations

import json

import pytest
from test_mix import spec_for, write_rendered

from instructkit.cli import cli
from instructkit.mix.run import mix_datasets


def test_inspect_a_mixture_table_json_and_chart(tmp_path, runner):
    alpha, beta = write_rendered(tmp_path, "alpha", 30), write_rendered(tmp_path, "beta", 10)
    mix_datasets(spec_for((alpha, {"weight": 3}), (beta, {"weight": 1}), total=40), tmp_path / "m")
    result = runner.invoke(
        cli, ["inspect", str(tmp_path / "m"), "--chart", str(tmp_path / "c.png")]
    )
    assert result.exit_code == 0, result.output
    assert "max prefix error" in result.output
    train_line = next(line for line in result.output.splitlines() if line.startswith("train"))
    assert train_line.split() == ["train", "40", "30", "10"]
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    as_json = json.loads(runner.invoke(cli, ["inspect", str(tmp_path / "m"), "--json"]).output)
    assert as_json["kind"] == "mix"
    assert as_json["tasks"]["validation"] == {"alpha": 4, "beta": 4}
    assert [t["realized_share"] for t in as_json["manifest"]["tasks"]] == [0.75, 0.25]


def test_inspect_a_rendered_dataset_and_a_non_dataset(tmp_path, runner):
    alpha = write_rendered(tmp_path, "alpha", 5)
    result = runner.invoke(cli, ["inspect", str(alpha), "--chart", str(tmp_path / "r.png")])
    assert result.exit_code == 0 and "task: alpha" in result.output
    assert (tmp_path / "r.png").exists()
    result = runner.invoke(cli, ["inspect", str(tmp_path)])
    assert result.exit_code == 1 and "is not an instructkit dataset" in result.output


def test_chart_under_a_file_is_one_line_and_the_folder_is_created(tmp_path, runner):
    alpha = write_rendered(tmp_path, "alpha", 5)
    (tmp_path / "ff").write_text("x")
    chart = tmp_path / "ff" / "x.png"
    result = runner.invoke(cli, ["inspect", str(alpha), "--chart", str(chart)])
    assert result.exit_code == 1
    assert result.output == f"Error: Cannot write '{chart}': '{tmp_path / 'ff'}' is a file.\n"
    chart = tmp_path / "new" / "dir" / "x.png"
    result = runner.invoke(cli, ["inspect", str(alpha), "--chart", str(chart)])
    assert result.exit_code == 0 and chart.is_file()


def test_many_tasks_chart_the_largest_and_fold_the_rest_into_other(tmp_path, monkeypatch):
    from instructkit import charts
    from instructkit.artifacts.inspect import CHART_TASKS, write_composition_chart

    drawn: dict[str, object] = {}

    def capture(path, categories, series, title, ylabel, intervals=None):
        drawn.update(categories=list(categories), series=series, title=title)

    monkeypatch.setattr(charts, "grouped_bar_chart", capture)
    count = CHART_TASKS + 5
    shares = [(i % 7 + 1) / 10 for i in range(count)]  # ties: the earlier task is kept
    tasks = [
        {"name": f"t{i}", "target_share": s, "realized_share": s / 2} for i, s in enumerate(shares)
    ]
    write_composition_chart(
        {"manifest": {"kind": "mix", "tasks": tasks, "total": 10}}, tmp_path / "c.png"
    )
    largest = sorted(range(count), key=lambda i: (-shares[i], i))[:CHART_TASKS]
    assert drawn["categories"] == [f"t{i}" for i in sorted(largest)] + ["other (5 tasks)"]
    target = drawn["series"]["target %"]  # type: ignore[index]
    assert sum(target) == pytest.approx(100 * sum(shares))
    assert target[-1] == pytest.approx(
        100 * sum(s for i, s in enumerate(shares) if i not in largest)
    )
    assert f"{CHART_TASKS} largest of {count} tasks" in drawn["title"]  # type: ignore[operator]
    # few tasks: every task drawn, as before
    write_composition_chart(
        {"manifest": {"kind": "mix", "tasks": tasks[:3], "total": 10}}, tmp_path / "c.png"
    )
    assert drawn["categories"] == ["t0", "t1", "t2"]
    assert "largest" not in drawn["title"]  # type: ignore[operator]


def test_a_rendered_dataset_of_many_tasks_charts_the_largest(tmp_path, monkeypatch):
    from instructkit import charts
    from instructkit.artifacts.inspect import CHART_TASKS, write_composition_chart

    drawn: dict[str, object] = {}
    monkeypatch.setattr(
        charts, "grouped_bar_chart", lambda path, names, series, **_: drawn.update(names=names)
    )
    per_task = {f"t{i:02d}": i + 1 for i in range(CHART_TASKS + 2)}  # t00, t01 are smallest
    info = {"path": "x", "manifest": {}, "tasks": {"train": per_task}}
    write_composition_chart(info, tmp_path / "r.png")
    assert drawn["names"] == [f"t{i:02d}" for i in range(2, CHART_TASKS + 2)] + ["other (2 tasks)"]

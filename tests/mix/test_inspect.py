"""instructkit inspect: any dataset directory as a table, JSON, or a composition chart."""

from __future__ import annotations

import json

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

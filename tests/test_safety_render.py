"""Issue 12, sections 2, 4 and 5 for render, preview and templates import: bounded workers and
template work, nothing garbled written silently, one-line errors. CLI level only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instructkit.cli import cli

REPO_ROOT = Path(__file__).resolve().parent.parent
DIALOGS = REPO_ROOT / "examples" / "data" / "dialogs"


def small_jsonl(path: Path, rows: int = 3) -> Path:
    lines = DIALOGS.joinpath("dialogsum.train.jsonl").read_text().splitlines()[:rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line(result, *needles: str) -> str:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result.output


def make_pack(root: Path, prompt: str, completion: str = "{{ summary }}") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text("task: t\ntemplates:\n  a: {kind: original}\n")
    (root / "a.jinja").write_text(
        f"{{% block prompt %}}{prompt}{{% endblock %}}"
        f"{{% block completion %}}{completion}{{% endblock %}}"
    )
    return root


@pytest.fixture
def src(tmp_path):
    return small_jsonl(tmp_path / "small.jsonl")


# ---------------------------------------------------------------- 2. workers


class _PoolSpy:
    """Stands in for multiprocessing pools: records how many workers were asked for."""

    asked: list[int] = []

    def __init__(self, processes=None, *args, **kwargs):
        _PoolSpy.asked.append(processes)
        raise RuntimeError(f"test: refused to start {processes} workers")


@pytest.fixture
def pool_spy(monkeypatch):
    import concurrent.futures
    import multiprocessing.pool

    _PoolSpy.asked = []
    monkeypatch.setattr(multiprocessing.pool, "Pool", _PoolSpy)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _PoolSpy)
    return _PoolSpy


def test_render_refuses_num_proc_far_above_the_cores(runner, tmp_path, src, pool_spy):
    args = ["render", str(src), "--templates", "samsum", "--out", str(tmp_path / "o"),
            "--num-proc", "100000", "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), "--num-proc", "100000")
    assert pool_spy.asked == []
    assert not (tmp_path / "o").exists()


def test_render_starts_no_more_workers_than_there_is_work(runner, tmp_path, src, pool_spy):
    args = ["render", str(src), "--templates", "samsum", "--out", str(tmp_path / "o"),
            "--num-proc", "2", "-q"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output  # 3 rows are one batch: no worker at all
    assert pool_spy.asked == []


def test_score_refuses_num_proc_far_above_the_cores(runner, tmp_path, pool_spy):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"prediction": "a", "reference": "a"}) + "\n")
    result = runner.invoke(cli, ["score", str(predictions), "--num-proc", "100000"])
    one_line(result, "--num-proc", "100000")


def test_evaluate_refuses_num_proc_far_above_the_cores(runner, tmp_path):
    args = ["evaluate", str(tmp_path), "--model", "nowhere", "--out", str(tmp_path / "e"),
            "--num-proc", "100000"]  # fmt: skip
    one_line(runner.invoke(cli, args), "--num-proc", "100000")


# ---------------------------------------------------------------- 2. template work


def _render_in_subprocess(tmp_path: Path, pack: Path, src: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "instructkit", "render", str(src), "--templates", str(pack),
            "--out", str(tmp_path / "o"), "-q"]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=90)


def test_nested_loops_are_bounded_with_template_and_row_named(tmp_path, src):
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"
    result = _render_in_subprocess(tmp_path, make_pack(tmp_path / "p", loops), src)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Template 't/a'" in result.stderr and "train[0]" in result.stderr
    assert "loop" in result.stderr


def test_a_huge_constant_is_refused_not_a_memory_error(tmp_path, src):
    result = _render_in_subprocess(tmp_path, make_pack(tmp_path / "p", '{{ "x" * 10**12 }}'), src)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert "Template 't/a'" in result.stderr


def test_output_size_per_row_is_bounded(runner, tmp_path, src):
    many = "{% for i in range(60000) %}{{ dialogue }}{% endfor %}"
    args = ["render", str(src), "--templates", str(make_pack(tmp_path / "p", many)),
            "--out", str(tmp_path / "o"), "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), "Template 't/a'", "train[0]", "characters")


# ---------------------------------------------------------------- 4. garbage


def test_a_list_field_never_reaches_a_prompt_as_python_repr(runner, tmp_path):
    data = tmp_path / "lists.jsonl"
    data.write_text(json.dumps({"dialogue": ["A: hi", "B: yo"], "summary": "greeting"}) + "\n")
    pack = make_pack(tmp_path / "p", "Summarize: {{ dialogue }}")
    out = tmp_path / "o"
    args = ["render", str(data), "--templates", str(pack), "--out", str(out), "-q"]
    one_line(runner.invoke(cli, args), "Template 't/a'", "dialogue", "list", "join")
    assert not out.exists()


def test_a_list_field_joined_by_the_template_is_fine(runner, tmp_path):
    data = tmp_path / "lists.jsonl"
    data.write_text(json.dumps({"dialogue": ["A: hi", "B: yo"], "summary": "greeting"}) + "\n")
    pack = make_pack(tmp_path / "p", "Summarize: {{ dialogue | join(' / ') }}")
    args = ["render", str(data), "--templates", str(pack), "--out", str(tmp_path / "o"), "-q"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output


def test_empty_completions_are_counted_and_reported(runner, tmp_path, src):
    pack = make_pack(tmp_path / "p", "Summarize: {{ dialogue }}", completion="{{ '' }}")
    out = tmp_path / "o"
    args = ["render", str(src), "--templates", str(pack), "--out", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "empty completion" in result.output
    manifest = json.loads((out / "instructkit.json").read_text())
    assert manifest["empty_completions"] == {"train": {"a": 3}}


def test_empty_completions_fail_with_on_empty_fail(runner, tmp_path, src):
    pack = make_pack(tmp_path / "p", "Summarize: {{ dialogue }}", completion="{{ '' }}")
    args = ["render", str(src), "--templates", str(pack), "--out", str(tmp_path / "o"),
            "--on-empty", "fail", "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), "Template 't/a'", "empty completion", "train[0]")


PS_TWO_SEPARATORS = """dataset: samsum
templates:
  a1: !Template
    id: a1
    name: Sum up
    jinja: "Summarize: {{dialogue}} ||| {{summary}} ||| and more"
    metadata: !TemplateMetadata
      original_task: true
"""


def test_promptsource_import_refuses_text_after_a_second_separator(runner, tmp_path):
    source = tmp_path / "templates.yaml"
    source.write_text(PS_TWO_SEPARATORS)
    out = tmp_path / "ps"
    result = runner.invoke(cli, ["templates", "import", str(source), "--out", str(out)])
    one_line(result, "sum_up", "|||")
    assert not out.exists()


# ---------------------------------------------------------------- 5. one-line errors


@pytest.mark.parametrize(
    "ratios", ["nan,0.5,0.5", "inf,0,0", "0.5,0.5,nan", "-0.5,1.0,0.5", "1e309,0,0"]
)
def test_non_finite_split_ratios_are_one_line(runner, tmp_path, src, ratios):
    args = ["render", str(src), "--templates", "samsum", "--out", str(tmp_path / "o"),
            "--split-ratios", ratios, "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), "--split-ratios")


@pytest.mark.parametrize("size", ["-5", "-1M", "0", "inf", "nan"])
def test_bad_max_shard_size_is_one_line(runner, tmp_path, src, size):
    args = ["render", str(src), "--templates", "samsum", "--out", str(tmp_path / "o"),
            "--max-shard-size", size, "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), "--max-shard-size")
    assert not (tmp_path / "o").exists()


def test_a_missing_attribute_does_not_suggest_column_map(runner, tmp_path, src):
    pack = make_pack(tmp_path / "p", "{{ dialogue.speaker }}")
    args = ["render", str(src), "--templates", str(pack), "--out", str(tmp_path / "o"), "-q"]
    output = one_line(runner.invoke(cli, args), "Template 't/a'", "speaker", "train[0]")
    assert "--column-map" not in output and "uses field" not in output

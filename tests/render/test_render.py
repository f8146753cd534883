"""render_dataset and `instructkit render`: layouts, determinism, assignment, every bad input."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.manifest import read_manifest
from instructkit.cli import cli
from instructkit.errors import InstructkitError
from instructkit.render import run as render
from instructkit.render.run import render_dataset

TURNS = [
    "Are we still on for lunch today?",
    "Yes, see you at noon by the station.",
    "Could you bring the report we talked about?",
    "I will print it tonight and bring two copies.",
    "The bus was late again this morning.",
]


def dialog(i: int) -> str:
    lines = [f"#Person{1 + k % 2}#: {TURNS[(i + k) % len(TURNS)]} ({i})" for k in range(2 + i % 4)]
    return "\n".join(lines)


def write_dialogsum(directory: Path, n_train: int = 40, n_test: int = 6) -> Path:
    """A tiny folder in DialogSum's official layout (our own text)."""
    directory.mkdir(parents=True, exist_ok=True)
    train = [
        {"fname": f"train_{i}", "dialogue": dialog(i), "summary": f"Plan number {i} is made.",
         "topic": f"plan {i % 3}"}
        for i in range(n_train)
    ]  # fmt: skip
    test = [
        {"fname": f"test_{i}", "dialogue": dialog(100 + i),
         **{f"summary{k}": f"Summary {k} of talk {i}." for k in (1, 2, 3)},
         **{f"topic{k}": f"topic {k}.{i}" for k in (1, 2, 3)}}
        for i in range(n_test)
    ]  # fmt: skip
    for name, rows in (("train", train), ("dev", train[:5]), ("test", test)):
        lines = [json.dumps(r) for r in rows]
        (directory / f"dialogsum.{name}.jsonl").write_text("\n".join(lines))
    return directory


@pytest.fixture
def dialogsum_dir(tmp_path) -> Path:
    return write_dialogsum(tmp_path / "dialogsum")


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_render_dialogsum_layout(dialogsum_dir, tmp_path, runner):
    out = tmp_path / "out"
    args = ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--out", str(out), "-q"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "rows/s" in result.output and "summarize_before" in result.output
    import datasets

    loaded = datasets.load_from_disk(str(out))
    assert set(loaded) == {"train", "validation", "test"}
    assert loaded["train"].num_rows == 40
    test_row = loaded["test"][0]
    assert test_row["references"] == [f"Summary {k} of talk 0." for k in (1, 2, 3)]
    assert test_row["completion"] == test_row["references"][0]
    assert set(loaded["test"]["template_id"]) <= {
        tid for tid, t in read_manifest(out)["templates"].items() if t["kind"] == "original"
    }
    manifest = read_manifest(out)
    assert manifest["kind"] == "render" and manifest["task"] == "dialogsum"
    assert manifest["metrics"] == ["rouge"]
    assert manifest["inputs"][0]["sha256"]
    assert sum(manifest["counts"]["train"].values()) == 40


def test_pack_name_picks_its_preset(dialogsum_dir, tmp_path):
    result = render_dataset("dialogsum_topic", tmp_path / "t", data_dir=str(dialogsum_dir))
    table = artifact.open_split(tmp_path / "t", "test")
    assert set(table.column("task").to_pylist()) == {"dialogsum_topic"}
    assert table.column("references").to_pylist()[0] == ["topic 1.0", "topic 2.0", "topic 3.0"]
    assert result.manifest["metrics"] == ["rouge"]


def test_same_seed_same_bytes_any_num_proc(dialogsum_dir, tmp_path):
    render_dataset("dialogsum", tmp_path / "a", data_dir=str(dialogsum_dir), seed=3, batch_size=7)
    render_dataset(
        "dialogsum", tmp_path / "b", data_dir=str(dialogsum_dir), seed=3, num_proc=2, batch_size=5
    )
    render_dataset("dialogsum", tmp_path / "c", data_dir=str(dialogsum_dir), seed=4)
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert shard_bytes(tmp_path / "a") != shard_bytes(tmp_path / "c")


def test_balanced_quotas_are_exact_and_order_independent(tmp_path):
    rows = [{"id": f"r{i}", "dialogue": dialog(i), "summary": f"s{i}"} for i in range(50)]
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    for name, data in (("a", rows), ("b", shuffled)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in data))
        render_dataset(str(path), tmp_path / name, templates="samsum", key_column="id")
    tables = [artifact.open_split(tmp_path / n, "train") for n in "ab"]
    picks = [
        dict(zip(t["example_id"].to_pylist(), t["template_id"].to_pylist(), strict=True))
        for t in tables
    ]
    assert picks[0] == picks[1]
    quotas = Counter(picks[0].values())
    assert len(quotas) == 9 and max(quotas.values()) - min(quotas.values()) <= 1


def test_all_assignment_renders_every_template(dialogsum_dir, tmp_path):
    render_dataset("dialogsum", tmp_path / "o", data_dir=str(dialogsum_dir), assignment="all")
    table = artifact.open_split(tmp_path / "o", "train")
    assert table.num_rows == 40 * 9
    assert table["template_id"].to_pylist()[:9] == [
        t.id for t in render.load_pack("dialogsum").templates
    ]


def test_eval_inverted_option(dialogsum_dir, tmp_path):
    render_dataset(
        "dialogsum", tmp_path / "o", data_dir=str(dialogsum_dir), assignment="all",
        eval_inverted=True,
    )  # fmt: skip
    assert artifact.open_split(tmp_path / "o", "test").num_rows == 6 * 9


def test_split_ratios_cut_exact_counts(tmp_path):
    path = tmp_path / "all.jsonl"
    path.write_text(
        "\n".join(json.dumps({"dialogue": dialog(i), "summary": f"s{i}"}) for i in range(30))
    )
    result = render_dataset(
        str(path), tmp_path / "o", templates="samsum", split_ratios=[0.6, 0.2, 0.2]
    )
    sizes = {r.name: r.info.num_rows for r in result.splits}
    assert sizes == {"train": 18, "validation": 6, "test": 6}


def test_empty_fields_are_skipped_and_counted(tmp_path):
    rows = [
        {"id": "1", "dialogue": "", "summary": "s"},
        {"id": "2", "dialogue": "A: hi", "summary": "s2"},
        {"id": "3", "dialogue": "B: yo", "summary": None},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = render_dataset(str(path), tmp_path / "o", templates="samsum")
    assert result.manifest["skipped"]["train"] == {"empty:dialogue": 1, "empty:summary": 1}
    assert result.num_rows == 1


def test_token_budget_trims_the_dialogue_only(tmp_path):
    from instructkit.tiny import default_corpus, train_tokenizer

    tok_dir = tmp_path / "tok"
    train_tokenizer(default_corpus() + TURNS * 5, vocab_size=300).save_pretrained(tok_dir)
    long = "\n".join(f"Amanda: {TURNS[k % 5]}" for k in range(40))
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"id": "1", "dialogue": long, "summary": "They plan lunch."}))
    result = render_dataset(
        str(path), tmp_path / "o", templates="samsum", template_ids=["summarize_before"],
        tokenizer=str(tok_dir), max_prompt_tokens=60,
    )  # fmt: skip
    row = artifact.open_split(tmp_path / "o", "train").to_pylist()[0]
    assert row["prompt"].startswith("Summarize this dialogue:\n\nAmanda:")
    assert long.startswith(row["prompt"].split("\n\n", 1)[1])  # a prefix, whole turns
    assert row["completion"] == "They plan lunch."
    assert result.manifest["truncations"]["train"] == {"summarize_before": 1}
    stats = result.manifest["length_stats"]["train"]["summarize_before"]["prompt"]
    assert stats["max"] <= 60


# ---------------------------------------------------------------- bad input: one line, exit 1


def run_error(runner, args: list[str], out: Path) -> str:
    result = runner.invoke(cli, ["render", *args, "--out", str(out), "-q"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))
    return result.output


def test_error_missing_file(runner, tmp_path):
    assert "does not exist" in run_error(
        runner, [str(tmp_path / "nope.jsonl"), "--templates", "samsum"], tmp_path / "o"
    )


def test_error_unknown_preset(runner, tmp_path):
    output = run_error(runner, ["samsun"], tmp_path / "o")
    assert "not a preset" in output


def test_error_bad_jsonl_line(runner, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"dialogue": "a", "summary": "b"}\n{"dialogue": oops}\n')
    assert f"{path}:2:" in run_error(runner, [str(path), "--templates", "samsum"], tmp_path / "o")


def test_error_template_syntax(runner, tmp_path, dialogsum_dir):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: broken\ntemplates:\n  t1: {kind: original}\n")
    (pack / "t1.jinja").write_text("{% block prompt %}\n{{ dialogue }\n{% endblock %}")
    output = run_error(
        runner,
        ["dialogsum", "--data-dir", str(dialogsum_dir), "--templates", str(pack)],
        tmp_path / "o",
    )
    assert f"{pack / 't1.jinja'}:2:" in output


def test_error_field_missing_in_row(runner, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"dialogue": "A: hi", "summary": "s"}\n{"dialogue": "B: yo"}\n')
    output = run_error(
        runner, [str(path), "--templates", "samsum", "--on-empty", "fail"], tmp_path / "o"
    )
    assert "train[1]" in output and "'summary'" in output


def test_error_field_missing_in_data(runner, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "A: hi", "summary": "s"}\n')
    output = run_error(runner, [str(path), "--templates", "samsum"], tmp_path / "o")
    assert "'dialogue'" in output and "--column-map dialogue=COLUMN" in output


def test_column_map_fixes_missing_field(runner, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "A: hi", "summary": "s"}\n')
    args = ["render", str(path), "--templates", "samsum", "--column-map", "dialogue=text"]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0, result.output


def test_error_empty_dataset(runner, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("")
    assert "No rows" in run_error(runner, [str(path), "--templates", "samsum"], tmp_path / "o")


def test_error_unknown_split(runner, tmp_path, dialogsum_dir):
    output = run_error(
        runner, ["dialogsum", "--data-dir", str(dialogsum_dir), "--splits", "dev2"], tmp_path / "o"
    )
    assert "Unknown split 'dev2'" in output and "validation" in output


def test_error_ratios_do_not_sum_to_one(runner, tmp_path, dialogsum_dir):
    output = run_error(
        runner,
        ["dialogsum", "--data-dir", str(dialogsum_dir), "--split-ratios", "0.5,0.2,0.2"],
        tmp_path / "o",
    )
    assert "sum to 1" in output


def test_error_output_exists(runner, tmp_path, dialogsum_dir):
    out = tmp_path / "o"
    out.mkdir()
    result = runner.invoke(
        cli, ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--out", str(out)]
    )
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert list(out.iterdir()) == []


def test_interrupted_run_leaves_nothing(runner, tmp_path, dialogsum_dir, monkeypatch):
    calls = []

    def interrupt(self, batch):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact.SplitWriter, "write", interrupt)
    out = tmp_path / "o"
    result = runner.invoke(
        cli, ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--out", str(out)]
    )
    assert calls and result.exit_code == 130
    assert "Interrupted" in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "dialogsum"]


def test_budget_without_tokenizer_is_a_usage_error(runner, tmp_path, dialogsum_dir):
    args = ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--max-prompt-tokens", "5"]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--tokenizer" in result.output


def test_library_errors_are_instructkit_errors(tmp_path):
    with pytest.raises(InstructkitError, match="not a preset"):
        render_dataset("nothing-here", tmp_path / "o")


# ---------------------------------------------------------------- real data (small slices)


def slice_lines(src: Path, dst: Path, n: int) -> None:
    with open(src, encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(n)]
    dst.write_text("".join(lines).rstrip("\n"), encoding="utf-8")


@pytest.mark.shared_data
def test_real_samsum_slice_keeps_text_unchanged(shared_data_dir, tmp_path):
    data = tmp_path / "samsum"
    data.mkdir()
    for name in ("train", "validation", "test"):
        slice_lines(shared_data_dir / "samsum" / f"{name}.jsonl", data / f"{name}.jsonl", 60)
    render_dataset(
        "samsum", tmp_path / "o", data_dir=str(data), assignment="all", template_ids=["tldr"]
    )
    source = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows = artifact.open_split(tmp_path / "o", "train").to_pylist()
    by_id = {r["id"]: r for r in source}
    for row in rows:
        # the pack's separator (a newline) ends the prompt: prompt + completion is the text
        assert row["prompt"] == by_id[row["example_id"]]["dialogue"] + "\n\nTL;DR:\n"
    assert any("\r\n" in r["prompt"] for r in rows)


@pytest.mark.shared_data
def test_real_dialogsum_slice_has_three_references(shared_data_dir, tmp_path):
    data = tmp_path / "dialogsum"
    data.mkdir()
    for name in ("train", "dev", "test"):
        src = shared_data_dir / "dialogsum" / f"dialogsum.{name}.jsonl"
        slice_lines(src, data / f"dialogsum.{name}.jsonl", 50)
    render_dataset("dialogsum", tmp_path / "o", data_dir=str(data))
    test = artifact.open_split(tmp_path / "o", "test").to_pylist()
    assert all(len(r["references"]) == 3 for r in test)
    assert test[0]["example_id"] == "test_0"


def test_render_takes_typed_options_or_their_fields(dialogsum_dir, tmp_path):
    from instructkit.render.run import RenderOptions

    options = RenderOptions(data_dir=str(dialogsum_dir), seed=5)
    render_dataset("dialogsum", tmp_path / "typed", options)
    render_dataset("dialogsum", tmp_path / "fields", data_dir=str(dialogsum_dir), seed=5)
    render_dataset("dialogsum", tmp_path / "both", options, batch_size=3)
    assert shard_bytes(tmp_path / "typed") == shard_bytes(tmp_path / "fields")
    assert shard_bytes(tmp_path / "typed") == shard_bytes(tmp_path / "both")
    assert options.batch_size == RenderOptions().batch_size  # the caller's options are kept

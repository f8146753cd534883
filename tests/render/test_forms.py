"""Row forms from render: the separator in the data, conversational rows, system prompts,
few-shot demonstrations; mix carries the form; the artifact contract holds for both forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_render import shard_bytes, write_dialogsum

from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.manifest import read_manifest
from instructkit.cli import cli
from instructkit.errors import InstructkitError, MixError
from instructkit.mix.run import mix_datasets
from instructkit.mix.spec import load_mix_spec
from instructkit.render.run import render_dataset


@pytest.fixture
def dialogsum_dir(tmp_path) -> Path:
    return write_dialogsum(tmp_path / "dialogsum")


def rows(out: Path, split: str = "train") -> list[dict]:
    return artifact.open_split(out, split).to_pylist()


def render(data: Path, out: Path, **options) -> Path:
    render_dataset("dialogsum", out, data_dir=str(data), template_ids=["tldr"], **options)
    return out


# ---------------------------------------------------------------- text: the join is data


def test_text_prompts_end_with_the_separator(dialogsum_dir, tmp_path):
    out = render(dialogsum_dir, tmp_path / "o")
    source = {
        json.loads(line)["fname"]: json.loads(line)
        for line in (dialogsum_dir / "dialogsum.train.jsonl").read_text().splitlines()
    }
    for row in rows(out):
        assert row["prompt"] == source[row["example_id"]]["dialogue"] + "\n\nTL;DR:\n"
        assert row["completion"] == source[row["example_id"]]["summary"]  # never touched
    manifest = read_manifest(out)
    assert manifest["form"] == "text" and manifest["framing"]["separator"] == "\n"


@pytest.mark.parametrize("separator", ["", " ", "\nAnswer: "])
def test_separator_per_run(dialogsum_dir, tmp_path, separator):
    out = render(dialogsum_dir, tmp_path / "o", separator=separator)
    assert all(r["prompt"].endswith("TL;DR:" + separator) for r in rows(out))


def test_pack_sets_separator_form_and_system(dialogsum_dir, tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text(
        "task: talk\nseparator: ' => '\nsystem: Be brief.\ntemplates:\n  t: {kind: original}\n"
    )
    (pack / "t.jinja").write_text(
        "{% block prompt %}{{ dialogue }}{% endblock %}{% block completion %}{{ summary }}"
        "{% endblock %}"
    )
    out = tmp_path / "o"
    render_dataset("dialogsum", out, data_dir=str(dialogsum_dir), templates=str(pack))
    first = rows(out)[0]
    assert first["prompt"].startswith("Be brief.\n\n#Person") and first["prompt"].endswith(" => ")
    (pack / "pack.yaml").write_text(
        "task: talk\nform: conversational\nsystem: Be brief.\ntemplates:\n  t: {kind: original}\n"
    )
    render_dataset("dialogsum", out, data_dir=str(dialogsum_dir), templates=str(pack),
                   overwrite=True)  # fmt: skip
    prompt = rows(out)[0]["prompt"]
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert prompt[0]["content"] == "Be brief."
    # the run's --system wins over the pack's, and '' removes it
    render_dataset("dialogsum", out, data_dir=str(dialogsum_dir), templates=str(pack),
                   overwrite=True, system="")  # fmt: skip
    assert [m["role"] for m in rows(out)[0]["prompt"]] == ["user"]


def test_bad_pack_form_is_one_line(dialogsum_dir, tmp_path, runner):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: t\nform: chatml\ntemplates:\n  t: {kind: original}\n")
    (pack / "t.jinja").write_text("{% block prompt %}x{% endblock %}{% block completion %}y"
                                  "{% endblock %}")  # fmt: skip
    args = ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--templates", str(pack)]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "'form' must be text or conversational" in (
        result.output
    )


# ---------------------------------------------------------------- conversational


def test_conversational_rows_follow_the_artifact_contract(dialogsum_dir, tmp_path):
    from datasets import load_from_disk

    out = render(dialogsum_dir, tmp_path / "o", form="conversational", system="Be brief.")
    test = rows(out, "test")
    first = test[0]
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert first["prompt"][1]["content"].endswith("TL;DR:")  # no separator: the template joins
    assert first["completion"] == [{"content": "Summary 1 of talk 0.", "role": "assistant"}]
    assert first["references"] == [f"Summary {k} of talk 0." for k in (1, 2, 3)]  # still text
    loaded = load_from_disk(str(out))
    features = loaded["train"].features
    assert features["prompt"].feature["role"].dtype == "string"
    assert loaded["test"][0]["prompt"] == first["prompt"]
    assert read_manifest(out)["form"] == "conversational"
    assert read_manifest(out)["framing"]["separator"] is None


def test_conversational_rows_train_and_evaluate_as_text_in_chat_tools(dialogsum_dir, tmp_path):
    from instructkit.chat import CONVERSATIONAL, table_form

    out = render(dialogsum_dir, tmp_path / "o", form="conversational")
    assert table_form(artifact.open_split(out, "train")) == CONVERSATIONAL


def test_form_from_the_cli(dialogsum_dir, tmp_path, runner):
    out = tmp_path / "o"
    args = ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--template", "tldr"]
    extra = ["--form", "conversational", "--system", "S.", "--few-shot", "1", "-q"]
    result = runner.invoke(cli, [*args, *extra, "--out", str(out)])
    assert result.exit_code == 0, result.output
    prompt = rows(out)[0]["prompt"]
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]


# ---------------------------------------------------------------- few-shot


def test_few_shot_is_deterministic_and_never_the_row_itself(dialogsum_dir, tmp_path):
    first = render(dialogsum_dir, tmp_path / "a", form="conversational", few_shot=2, seed=3)
    again = render(dialogsum_dir, tmp_path / "b", form="conversational", few_shot=2, seed=3)
    assert shard_bytes(first) == shard_bytes(again)
    other = render(dialogsum_dir, tmp_path / "c", form="conversational", few_shot=2, seed=4)
    assert rows(first) != rows(other)  # the seed draws the demonstrations
    train = {r["example_id"]: r for r in rows(first)}
    train_users = {r["prompt"][-1]["content"]: r["example_id"] for r in train.values()}
    for split in ("train", "validation", "test"):
        for row in rows(first, split):
            prompt = row["prompt"]
            assert [m["role"] for m in prompt] == ["user", "assistant"] * 2 + ["user"]
            for demo in prompt[:-1:2]:
                # from the train split, never the row's own example
                assert train_users[demo["content"]] != row["example_id"]
            for user, assistant in zip(prompt[:-1:2], prompt[1:-1:2], strict=True):
                source = train[train_users[user["content"]]]
                assert assistant["content"] == source["completion"][0]["content"]


def test_few_shot_text_uses_flan_layout(dialogsum_dir, tmp_path):
    out = render(dialogsum_dir, tmp_path / "o", few_shot=1)
    for row in rows(out, "test"):
        demo, own = row["prompt"].split("\n\n#Person", 1)[0], row["prompt"]
        assert demo.count("TL;DR:\n") == 1  # demo prompt + separator + demo completion
        assert own.endswith("TL;DR:\n") and own.count("TL;DR:\n") == 2


def test_few_shot_rendering_only_evaluation_splits_draws_from_train(dialogsum_dir, tmp_path):
    out = render(dialogsum_dir, tmp_path / "o", form="conversational", few_shot=1,
                 splits=["test"])  # fmt: skip
    assert artifact.list_splits(out) == ["test"]
    assert all(len(r["prompt"]) == 3 for r in rows(out, "test"))


def test_few_shot_without_train_is_an_error(dialogsum_dir, tmp_path):
    (dialogsum_dir / "dialogsum.train.jsonl").unlink()
    with pytest.raises(InstructkitError, match="few-shot draws demonstrations from a train"):
        render(dialogsum_dir, tmp_path / "o", few_shot=1)


# ---------------------------------------------------------------- mix


def test_mix_carries_the_form_and_refuses_two(dialogsum_dir, tmp_path, runner):
    chat = render(dialogsum_dir, tmp_path / "chat", form="conversational")
    chat2 = tmp_path / "chat2"
    render_dataset("dialogsum_topic", chat2, data_dir=str(dialogsum_dir), form="conversational")
    spec = {"tasks": [{"path": str(chat), "count": 20}, {"path": str(chat2), "count": 10}]}
    result = mix_datasets(load_mix_spec(spec), tmp_path / "mix")
    assert result.manifest["form"] == "conversational"
    mixed = rows(tmp_path / "mix")
    assert len(mixed) == 30 and all(isinstance(r["prompt"], list) for r in mixed)
    assert isinstance(rows(tmp_path / "mix", "test")[0]["completion"], list)
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "mix"))["train"].num_rows == 30
    text = render(dialogsum_dir, tmp_path / "text")
    with pytest.raises(MixError, match="Cannot mix row forms"):
        mix_datasets(load_mix_spec({"tasks": [{"path": str(chat)}, {"path": str(text)}]}),
                     tmp_path / "bad")  # fmt: skip
    tasks = ["--task", str(text), "--task", str(chat)]
    cli_run = runner.invoke(cli, ["mix", *tasks, "--out", str(tmp_path / "x")])
    assert cli_run.exit_code != 0 and cli_run.output.count("\n") == 1, cli_run.output
    assert "is conversational" in cli_run.output and "--form" in cli_run.output

"""`instructkit export`: every format loads back with `datasets` and fits its consumer's schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from instructkit.artifacts.dataset import open_split
from instructkit.artifacts.export import FORMATS, export_dataset
from instructkit.cli import cli
from instructkit.errors import OptionsError, OutputExistsError
from instructkit.paths import demo_data_dir

MESSAGE_KEYS = {"role", "content"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """A real render of both demo tasks, mixed: the lineage an export must carry."""
    from instructkit.mix.run import mix_datasets
    from instructkit.mix.spec import load_mix_spec
    from instructkit.render.run import RenderOptions, render_dataset

    root = tmp_path_factory.mktemp("export")
    for pack in ("dialogsum", "dialogsum_topic"):
        render_dataset(pack, root / pack, RenderOptions(data_dir=str(demo_data_dir()), quiet=True))
    tasks = [{"path": str(root / p), "weight": 1} for p in ("dialogsum", "dialogsum_topic")]
    spec = load_mix_spec({"strategy": "weights", "total": 60, "seed": 0, "tasks": tasks})
    mix_datasets(spec, root / "mix", quiet=True)
    return root / "mix"


def load_back(out: Path, split: str):
    import datasets

    info = json.loads((out / "instructkit.json").read_text())
    path = out / info["files"][split]["path"]
    builder = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(builder, data_files={split: str(path)}, split=split)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_back_with_datasets(mixed, tmp_path, fmt):
    out = tmp_path / fmt
    result = export_dataset(mixed, out, fmt)
    for split in ("train", "validation", "test"):
        source = open_split(mixed, split)
        loaded = load_back(out, split)
        assert loaded.num_rows == source.num_rows == result.files[split]["num_rows"]
        row, first = loaded[0], source.slice(0, 1).to_pylist()[0]
        if fmt in ("jsonl", "parquet"):  # TRL prompt-completion, lineage columns kept
            assert set(source.column_names) <= set(loaded.column_names)
            assert row["prompt"] == first["prompt"] and row["references"] == first["references"]
        elif fmt == "conversational":
            assert row["prompt"] == [{"role": "user", "content": first["prompt"]}]
            assert row["completion"] == [{"role": "assistant", "content": first["completion"]}]
        elif fmt == "messages":
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
            assert row["messages"][1]["content"] == first["completion"]
        elif fmt == "alpaca":
            assert row == {
                "instruction": first["prompt"], "input": "", "output": first["completion"]
            }  # fmt: skip
        elif fmt == "sharegpt":
            assert row["conversations"] == [
                {"from": "human", "value": first["prompt"]},
                {"from": "gpt", "value": first["completion"]},
            ]


@pytest.mark.parametrize("fmt", ["conversational", "messages"])
def test_trl_recognises_the_conversational_shapes(mixed, tmp_path, fmt):
    data_utils = pytest.importorskip("trl.data_utils")
    export_dataset(mixed, tmp_path / fmt, fmt)
    row = load_back(tmp_path / fmt, "train")[0]
    assert data_utils.is_conversational(row)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "messages", "alpaca", "sharegpt"])
def test_llamafactory_dataset_info_maps_existing_columns(mixed, tmp_path, fmt):
    """LLaMA-Factory's data/README: alpaca maps prompt/query/response, sharegpt messages+tags."""
    out = tmp_path / fmt
    export_dataset(mixed, out, fmt, name="dialogs")
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"dialogs", "dialogs_validation", "dialogs_test"}
    entry = info["dialogs"]
    assert entry["file_name"] == f"train.{'parquet' if fmt == 'parquet' else 'jsonl'}"
    row = load_back(out, "train")[0]
    if entry["formatting"] == "alpaca":
        assert set(entry["columns"]) <= {"prompt", "query", "response", "system", "history"}
        assert set(entry["columns"].values()) <= set(row)
        assert row[entry["columns"]["response"]]
    else:
        assert entry["formatting"] == "sharegpt"
        turns = row[entry["columns"]["messages"]]
        tags = entry["tags"]
        assert [t[tags["role_tag"]] for t in turns] == [tags["user_tag"], tags["assistant_tag"]]
        assert all(t[tags["content_tag"]] for t in turns)


@pytest.mark.parametrize("fmt", ["jsonl", "messages", "alpaca", "sharegpt", "parquet"])
def test_axolotl_snippet_names_a_real_file_and_a_known_type(mixed, tmp_path, fmt):
    out = tmp_path / fmt
    export_dataset(mixed, out, fmt)
    (entry,) = yaml.safe_load((out / "axolotl.yaml").read_text())["datasets"]
    assert Path(entry["path"]).is_file() and entry["ds_type"] in ("json", "parquet")
    row = load_back(out, "train")[0]
    kind = entry["type"]
    if kind == "chat_template":
        turns = row[entry["field_messages"]]
        mapping = entry["message_property_mappings"]
        assert set(mapping.values()) == set(turns[0])
    elif kind == "alpaca":
        assert {"instruction", "input", "output"} == set(row)
    else:  # axolotl's user-defined instruction format
        assert row[kind["field_instruction"]] and row[kind["field_output"]]
        assert kind["format"] == kind["no_input_format"] == "{instruction}"


def test_conversational_has_no_llamafactory_or_axolotl_files(mixed, tmp_path):
    export_dataset(mixed, tmp_path / "c", "conversational")
    assert not (tmp_path / "c" / "dataset_info.json").exists()
    assert not (tmp_path / "c" / "axolotl.yaml").exists()


def test_card_front_matter_loads_the_folder_and_carries_the_lineage(mixed, tmp_path):
    import datasets

    out = tmp_path / "card"
    export_dataset(mixed, out, "messages")
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    files = {f["split"]: f["path"] for f in front["configs"][0]["data_files"]}
    assert files == {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}
    loaded = datasets.load_dataset(str(out))  # what the hub does after an upload
    sizes = {split: rows.num_rows for split, rows in loaded.items()}
    assert sizes == {"train": 60, "validation": 200, "test": 200}
    manifest = json.loads((mixed / "instructkit.json").read_text())
    for task in manifest["tasks"]:
        render = task["input_manifest"]
        assert f"### Task `{task['name']}`" in card
        for item in render["inputs"]:
            assert item["sha256"] in card
        for info in render["templates"].values():
            assert info["sha256"] in card
    assert '"dialogsum": 30' in card  # the counts
    record = json.loads((out / "instructkit.json").read_text())
    assert record["source"]["manifest"] == manifest


def test_overwrite_and_split_selection_and_bad_combinations(mixed, tmp_path, runner):
    out = tmp_path / "o"
    args = ["export", str(mixed), "--format", "alpaca", "--split", "train", "--out", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "train: 60 rows" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "axolotl.yaml", "dataset_info.json", "instructkit.json", "train.jsonl"
    ]  # fmt: skip
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "already exists: pass --overwrite" in again.output
    assert runner.invoke(cli, [*args, "--overwrite", "--file-type", "parquet"]).exit_code == 0
    assert (out / "train.parquet").is_file() and not (out / "train.jsonl").exists()
    with pytest.raises(OutputExistsError):
        export_dataset(mixed, out, "alpaca")
    with pytest.raises(OptionsError, match="drop --file-type parquet"):
        export_dataset(mixed, tmp_path / "x", "jsonl", file_type="parquet")
    with pytest.raises(OptionsError, match="Split 'dev' not found"):
        export_dataset(mixed, tmp_path / "x", "jsonl", splits=["dev"])
    assert not (tmp_path / "x").exists()


def test_exports_are_byte_identical_across_runs(mixed, tmp_path):
    for fmt in ("jsonl", "sharegpt"):
        export_dataset(mixed, tmp_path / "a", fmt, overwrite=True)
        export_dataset(mixed, tmp_path / "b", fmt, overwrite=True)
        for path in (tmp_path / "a").iterdir():
            if path.name != "axolotl.yaml":  # names its own folder
                assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path


def test_command_choices_match_the_library():
    from instructkit.artifacts import export
    from instructkit.commands import export as command

    assert command.FORMATS == export.FORMATS and command.FILE_TYPES == export.FILE_TYPES


def test_overwrite_replaces_only_an_export_and_never_its_input(mixed, tmp_path):
    from instructkit.errors import OutputError

    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("x")
    with pytest.raises(OutputError):
        export_dataset(mixed, mine, "jsonl", overwrite=True)
    assert (mine / "chapter1.tex").is_file()
    with pytest.raises(OutputError):
        export_dataset(mixed, mixed / "inside", "jsonl", overwrite=True)
    export_dataset(mixed, tmp_path / "e", "jsonl")
    export_dataset(mixed, tmp_path / "e", "alpaca", overwrite=True)  # an export: replaced
    assert (tmp_path / "e" / "dataset_info.json").is_file()

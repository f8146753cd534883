"""The dataset directory every stage writes: atomic, byte-stable, readable by `datasets`."""

from __future__ import annotations

import pyarrow as pa
import pytest

from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.manifest import write_manifest
from instructkit.errors import DatasetDirError, OutputError, OutputExistsError


def rows(count: int, task: str = "t") -> pa.Table:
    return pa.table(
        {
            "prompt": [f"prompt {i}" for i in range(count)],
            "completion": [f"completion {i}" for i in range(count)],
            "references": [[f"completion {i}", f"alt {i}"] for i in range(count)],
            "task": [task] * count,
            "template_id": ["a" if i % 2 else "b" for i in range(count)],
            "example_id": [str(i) for i in range(count)],
            "source_split": ["train"] * count,
            "source_index": list(range(count)),
        }
    )


def write(out, splits, rows_per_shard=None):
    with artifact.atomic_output_dir(out, overwrite=True) as tmp:
        for name, table in splits.items():
            artifact.write_split(tmp, name, [table], rows_per_shard=rows_per_shard)
        artifact.write_dataset_dict(tmp, list(splits))
        write_manifest(tmp, {"kind": "test"})
    return out


def test_load_from_disk_reads_what_we_write(tmp_path):
    import datasets

    out = write(tmp_path / "ds", {"train": rows(10), "test": rows(3)}, rows_per_shard=4)
    loaded = datasets.load_from_disk(str(out))
    assert loaded["train"].num_rows == 10 and loaded["test"].num_rows == 3
    assert loaded["train"][5]["references"] == ["completion 5", "alt 5"]
    assert loaded["train"].features["source_index"].dtype == "int64"
    shards = sorted(p.name for p in (out / "train").glob("*.arrow"))
    assert shards == [f"data-0000{i}-of-00003.arrow" for i in range(3)]


def test_same_rows_same_bytes(tmp_path):
    first = write(tmp_path / "a", {"train": rows(50)}, rows_per_shard=20)
    second = write(tmp_path / "b", {"train": rows(50)}, rows_per_shard=20)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_shards_roll_over_by_size(tmp_path):
    with artifact.atomic_output_dir(tmp_path / "ds") as tmp:
        info = artifact.write_split(tmp, "train", [rows(100)] * 3, max_shard_bytes=1)
    assert info.num_rows == 300
    assert len(info.shards) == 3
    assert sum(s.num_rows for s in info.shards) == 300


def test_empty_split_still_loads(tmp_path):
    out = write(tmp_path / "ds", {"train": rows(2), "test": rows(0)})
    assert artifact.open_split(out, "test").num_rows == 0


def test_failure_leaves_nothing_and_keeps_the_old_output(tmp_path):
    out = write(tmp_path / "ds", {"train": rows(2)})
    with pytest.raises(RuntimeError), artifact.atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "half-written").write_text("x")
        raise RuntimeError("boom")
    assert artifact.open_split(out, "train").num_rows == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_interrupt_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), artifact.atomic_output_dir(tmp_path / "new") as tmp:
        (tmp / "x").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        with artifact.atomic_output_dir(tmp_path / "ds"):
            pass


def test_a_file_in_the_way_is_a_one_line_error(tmp_path):
    (tmp_path / "ff").write_text("x")
    with pytest.raises(OutputError, match=r"Cannot create output .*/ff' is a file"):
        with artifact.atomic_output_dir(tmp_path / "ff" / "x"):
            pass
    with pytest.raises(OutputError, match="is a file: remove it"):
        with artifact.atomic_output_dir(tmp_path / "ff", overwrite=True):
            pass
    assert (tmp_path / "ff").read_text() == "x"


def test_reading_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(DatasetDirError, match="does not exist"):
        artifact.open_split(tmp_path / "nope", "train")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetDirError, match="is not an instructkit dataset"):
        artifact.list_splits(tmp_path / "plain")
    out = write(tmp_path / "ds", {"train": rows(1)})
    with pytest.raises(DatasetDirError, match="Split 'test' not found .* it has train"):
        artifact.open_split(out, "test")
    with pytest.raises(DatasetDirError, match="no 'prompt' column"):
        artifact.require_columns(pa.table({"x": [1]}), ["prompt"], "Split 'train'")


def test_cli_turns_stray_os_errors_into_one_line(runner, tmp_path):
    import click

    from instructkit.cli import cli

    @cli.command(name="os-error-test")
    def broken():
        open(tmp_path / "missing" / "file")

    @cli.command(name="decode-error-test")
    def undecodable():
        b"caf\xe9".decode("utf-8")

    try:
        result = runner.invoke(cli, ["os-error-test"])
        assert result.exit_code == 1
        assert result.output.startswith("Error: No such file or directory: '")
        assert len(result.output.strip().splitlines()) == 1
        result = runner.invoke(cli, ["decode-error-test"])
        assert result.exit_code == 1
        assert "re-encode the file as UTF-8" in result.output
    finally:
        cli.commands.pop("os-error-test")
        cli.commands.pop("decode-error-test")
    assert isinstance(cli, click.Group)

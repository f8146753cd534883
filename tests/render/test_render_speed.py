"""The whole-process speed work (issue 17) changes no byte: profile flag, background writer,
render spec in one process against separate runs, and the shard hashes main wrote before it."""

from __future__ import annotations

import hashlib
import json
import mmap
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from test_render import shard_bytes, write_dialogsum

from instructkit import profiling
from instructkit.cli import cli
from instructkit.errors import OptionsError
from instructkit.render import run as render_run
from instructkit.render.run import render_dataset
from instructkit.render.spec import load_render_spec, render_spec


@pytest.fixture
def dialogsum_dir(tmp_path) -> Path:
    return write_dialogsum(tmp_path / "dialogsum")


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data" / "dialogs"

# Shard sha256 of the shipped example data, seed 3, as main wrote them without issue 17's work
# (main at 21f5609, pyarrow 26): the fast paths must keep every byte. Main then had no
# separator after the prompt, so the check renders with an empty one.
GOLDEN = {
    "balanced": {
        "train": "d37ad4220f3538ac824772575749d7a0b697d831fbcc85679e5125238fb49340",
        "validation": "b9010978c2093eaa5722c192984c4a5b8a14a3243f6616c360eba92b8bc69e67",
        "test": "90a35dee25e396b6675ab8b84d239b480978cc7ead5abe441ee1c14d2760308e",
    },
    "all": {
        "train": "563eb246de8e4f91a48dc63284e5a790841be7912d00a7982c0f8e1b0a05f655",
        "validation": "23594fa20cf86ad554be87a4244cf2959bcd8734ba3c04d4c43fc0d573f018ac",
        "test": "2971d1d0e7b960c979372d5e6f6401de9814b72ef173705696fb9c0ce70daa29",
    },
}


@pytest.mark.skipif(pa.__version__.split(".")[0] != "26", reason="golden bytes from pyarrow 26")
@pytest.mark.parametrize("assignment", ["balanced", "all"])
def test_example_data_shards_keep_mains_bytes(tmp_path, assignment):
    result = render_dataset(
        "dialogsum",
        tmp_path / "out",
        data_dir=str(EXAMPLES),
        assignment=assignment,
        seed=3,
        separator="",
    )
    hashes = {s.name: [shard.sha256 for shard in s.info.shards] for s in result.splits}
    assert hashes == {split: [digest] for split, digest in GOLDEN[assignment].items()}
    for split, digest in GOLDEN[assignment].items():
        data = (tmp_path / "out" / split / "data-00000-of-00001.arrow").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest


class _SynchronousWriter:
    """The reference: write each table in the caller's thread, as before the background writer."""

    def __init__(self, write, depth: int = 2) -> None:
        self.write = write

    def put(self, table) -> None:
        self.write(table)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


@pytest.mark.parametrize("assignment", ["all", "balanced"])
def test_background_writer_matches_the_synchronous_reference(tmp_path, monkeypatch, assignment):
    # 1,500 dialogues x 9 templates: several 8,192-row record batches and a carried remainder
    data = write_dialogsum(tmp_path / "data", n_train=1500, n_test=4)
    options = {"data_dir": str(data), "assignment": assignment, "seed": 1, "batch_size": 1000}
    render_dataset("dialogsum", tmp_path / "fast", **options)
    render_dataset("dialogsum", tmp_path / "fast2", num_proc=2, **options)
    monkeypatch.setattr(render_run, "BackgroundWriter", _SynchronousWriter)
    render_dataset("dialogsum", tmp_path / "reference", **options)
    assert shard_bytes(tmp_path / "fast") == shard_bytes(tmp_path / "reference")
    assert shard_bytes(tmp_path / "fast2") == shard_bytes(tmp_path / "reference")


def test_a_write_error_in_the_background_reaches_the_caller(tmp_path, monkeypatch):
    data = write_dialogsum(tmp_path / "data", n_train=40)

    def broken(self, batch):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render_run.SplitWriter, "write", broken)
    with pytest.raises(OSError, match="No space left"):
        render_dataset("dialogsum", tmp_path / "out", data_dir=str(data))
    assert not (tmp_path / "out").exists()


def test_profile_flag_prints_phases_and_changes_no_byte(tmp_path, dialogsum_dir):
    runner = CliRunner()
    base = ["render", "dialogsum", "--data-dir", str(dialogsum_dir), "--assignment", "all"]
    try:
        plain = runner.invoke(cli, [*base, "--out", str(tmp_path / "a"), "-q"])
        profiled = runner.invoke(cli, [*base, "--out", str(tmp_path / "b"), "-q", "--profile"])
    finally:
        profiling.enable(False)
    assert plain.exit_code == 0, plain.output
    assert profiled.exit_code == 0, profiled.output
    text = profiled.stderr if hasattr(profiled, "stderr") else profiled.output
    for phase in ("read inputs", "scan", "assign templates", "render", "write shards",
                  "checksums (shards)", "manifest", "total (process)"):  # fmt: skip
        assert phase in text, (phase, text)
    assert "wall s" not in plain.output
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")


def test_profile_report_sums_phases():
    profiling.enable()
    try:
        profiling.command_started()
        with profiling.phase("read"):
            pass
        with profiling.phase("read"):
            pass
        with profiling.phase("touch fresh pages"):
            fresh = mmap.mmap(-1, 64 * mmap.PAGESIZE)
            for page in range(64):
                fresh[page * mmap.PAGESIZE] = 1
            fresh.close()
        profiling.add("  hash", 0.25, 0.125, overlapped=True)
        report = profiling.report()
    finally:
        profiling.enable(False)
    lines = {line.split("  ")[0].strip(): line for line in report.splitlines()}
    header = report.splitlines()[0].split()
    assert header[-2:] == ["calls", "faults"]
    assert lines["read"].split()[-2] == "2"
    assert int(lines["touch fresh pages"].split()[-1].replace(",", "")) >= 64
    assert "hash (thread)" in report and "0.250" in report
    assert "total (process)" in report


def _spec_tasks(data: Path, out: Path) -> list[dict]:
    return [
        {"source": "dialogsum", "data-dir": str(data), "out": str(out / "summary")},
        {"source": "dialogsum_topic", "data-dir": str(data), "out": str(out / "topic"),
         "seed": 2, "template": "headline,topic_before"},
        {"source": "dialogsum", "data-dir": str(data), "out": str(out / "sub"),
         "splits": "train,test", "assignment": "random"},
    ]  # fmt: skip


def test_render_spec_writes_what_separate_runs_write(tmp_path, dialogsum_dir):
    import yaml

    tasks = _spec_tasks(dialogsum_dir, tmp_path / "spec")
    spec = tmp_path / "tasks.yaml"
    spec.write_text(yaml.safe_dump({"defaults": {"assignment": "all"}, "tasks": tasks}))
    runner = CliRunner()
    result = runner.invoke(cli, ["render-spec", str(spec), "-q"])
    assert result.exit_code == 0, result.output
    assert "3 tasks" in result.output
    for task in tasks:
        name = Path(task["out"]).name
        args = ["render", task["source"], "--data-dir", task["data-dir"], "-q"]
        args += ["--assignment", task.get("assignment", "all")]
        if "seed" in task:
            args += ["--seed", str(task["seed"])]
        if "template" in task:
            args += ["--template", task["template"]]
        if "splits" in task:
            args += ["--splits", task["splits"]]
        separate = tmp_path / "separate" / name
        run = runner.invoke(cli, [*args, "--out", str(separate)])
        assert run.exit_code == 0, run.output
        spec_files = shard_bytes(Path(task["out"]))
        separate_files = shard_bytes(separate)
        assert spec_files.keys() == separate_files.keys()
        for key in spec_files:
            if key == "instructkit.json":
                continue
            assert spec_files[key] == separate_files[key], key
        assert json.loads(spec_files["instructkit.json"]) == json.loads(
            separate_files["instructkit.json"]
        )
        assert spec_files["instructkit.json"] == separate_files["instructkit.json"]


def test_render_spec_checks_every_output_before_rendering(tmp_path, dialogsum_dir):
    tasks = _spec_tasks(dialogsum_dir, tmp_path)[:1] + [
        {"source": "dialogsum", "data-dir": str(dialogsum_dir), "out": str(tmp_path / "taken")}
    ]
    (tmp_path / "taken").mkdir()
    with pytest.raises(Exception, match="already exists"):
        render_spec(load_render_spec({"tasks": tasks}))
    assert not (tmp_path / "summary").exists()  # nothing was rendered


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"tasks": []}, "needs 'tasks'"),
        ({"tasks": [{"source": "dialogsum"}]}, "needs both"),
        ({"tasks": [{"source": "s", "out": "o", "colour": 1}]}, "unknown option 'colour'"),
        ({"tasks": [{"source": "s", "out": "o"}, {"source": "t", "out": "o"}]}, "Two tasks"),
    ],
)
def test_render_spec_errors(spec, message):
    with pytest.raises(OptionsError, match=message):
        load_render_spec(spec)


def test_profiling_works_without_the_resource_module():
    """Windows has no ``resource``: the profile still prints, with no fault counts."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['resource'] = None\n"
        "from instructkit import profiling\n"
        "profiling.enable(); profiling.command_started()\n"
        "with profiling.phase('read'):\n    pass\n"
        "print(profiling.report())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    read = next(line for line in result.stdout.splitlines() if line.startswith("read"))
    assert read.split()[-1] == "0"

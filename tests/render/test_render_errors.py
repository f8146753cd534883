"""Regression tests from the render QA pass: Ctrl-C with workers, bad bytes, failing templates,
lint listing every problem, empty prompts, and messages that say what to do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instructkit.artifacts.manifest import read_manifest
from instructkit.cli import cli
from instructkit.render.run import render_dataset
from instructkit.render.sources import from_hub

BLOCKS = "{% block prompt %}PROMPT{% endblock %}{% block completion %}{{ summary }}{% endblock %}"


def make_pack(root: Path, bodies: dict[str, str], kinds: dict[str, str] | None = None) -> Path:
    """A pack folder: pack.yaml listing ``kinds`` (default: every body, original)."""
    root.mkdir(parents=True, exist_ok=True)
    kinds = kinds or {tid: "original" for tid in bodies}
    entries = "".join(f"  {tid}: {{kind: {kind}}}\n" for tid, kind in kinds.items())
    (root / "pack.yaml").write_text(f"task: t\ntemplates:\n{entries}")
    for tid, prompt in bodies.items():
        (root / f"{tid}.jinja").write_text(BLOCKS.replace("PROMPT", prompt))
    return root


def write_rows(path: Path, n: int) -> Path:
    rows = (json.dumps({"dialogue": f"A: line {i}", "summary": f"s{i}"}) for i in range(n))
    path.write_text("\n".join(rows) + "\n")
    return path


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    return result.output


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


# ---------------------------------------------------------------- 1. Ctrl-C with --num-proc


def test_ctrl_c_with_workers_exits_130_and_leaves_nothing(tmp_path):
    # A slow (row-by-row) template over enough rows that the workers are busy when the
    # terminal's SIGINT reaches the whole process group.
    pack = make_pack(
        tmp_path / "slow", {"t": "{% for i in range(300) %}{{ dialogue }}{% endfor %}"}
    )
    data = write_rows(tmp_path / "train.jsonl", 40_000)
    out = tmp_path / "o"
    command = [sys.executable, "-m", "instructkit", "render", str(data), "--templates", str(pack)]
    command += ["--out", str(out), "--num-proc", "2", "-q", "--assignment", "all"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A background job (nohup, `cmd &` in a script) inherits SIGINT ignored, and Python then
    # keeps ignoring it: restore the default so the child behaves as on a terminal.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".o.tmp-*")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(1.0)  # the pool is up and rendering
        assert proc.poll() is None, "render finished before the interrupt: make it slower"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr.decode()
    assert "Interrupted: nothing was written." in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert_nothing_written(out)


def test_error_in_a_worker_is_one_line(runner, tmp_path):
    pack = make_pack(tmp_path / "p", {"t": "{{ dialogue }} {{ 1/0 }}"})
    data = write_rows(tmp_path / "train.jsonl", 50)
    out = tmp_path / "o"
    args = ["render", str(data), "--templates", str(pack), "--out", str(out), "--num-proc", "2"]
    assert "division by zero" in one_line_error(runner.invoke(cli, [*args, "-q"]))
    assert_nothing_written(out)


# ---------------------------------------------------------------- 2. templates import


PROMPTSOURCE_YAML = """dataset: samsum
templates:
  a1: !Template
    id: a1
    name: Sum up
    jinja: "Summarize: {{dialogue}} ||| {{summary}}"
    metadata: !TemplateMetadata
      original_task: true
"""


def test_import_refuses_an_existing_folder_without_overwrite(runner, tmp_path):
    source = tmp_path / "templates.yaml"
    source.write_text(PROMPTSOURCE_YAML)
    out = tmp_path / "keep"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    result = runner.invoke(cli, ["templates", "import", str(source), "--out", str(out)])
    output = one_line_error(result)
    assert f"Output '{out}' already exists: pass --overwrite to replace it." in output
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    args = ["templates", "import", str(source), "--out", str(out), "--overwrite"]
    output = one_line_error(runner.invoke(cli, args))  # not ours: --overwrite refuses it too
    assert f"Refusing to replace '{out}' with --overwrite: it holds mine.txt" in output
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()  # an empty folder may be replaced
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["pack.yaml", "sum_up.jinja"]
    assert not list(tmp_path.glob(".keep.*"))


def test_import_of_broken_yaml_is_one_line(runner, tmp_path):
    source = tmp_path / "templates.yaml"
    source.write_text('dataset: x\ntemplates:\n  a: !Template\n    jinja: "{{ x }}\n')
    out = tmp_path / "p"
    result = runner.invoke(cli, ["templates", "import", str(source), "--out", str(out)])
    assert f"{source}:" in one_line_error(result) and "not valid YAML" in result.output
    assert not out.exists()


# ---------------------------------------------------------------- 3. bytes that are not UTF-8


@pytest.mark.parametrize(
    ("name", "content", "line", "byte"),
    [
        ("train.jsonl", b'{"dialogue": "a", "summary": "b"}\n{"dialogue": oops \xff}\n', 2, 0xFF),
        ("train.jsonl", b'{"dialogue": "a", "summary": "b"}\n{"dialogue": "caf\xe9"}\n', 2, 0xE9),
        ("train.csv", b"dialogue,summary\nx,y\nz,\xff\n", 3, 0xFF),
        ("train.json", b'[{"dialogue": "caf\xe9", "summary": "b"}]', 1, 0xE9),
    ],
)  # fmt: skip
def test_bytes_not_utf8_name_file_and_line(runner, tmp_path, name, content, line, byte):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "o"
    offset = content.index(bytes([byte]))
    expected = (
        f"{path}:{line}: not valid UTF-8 (byte 0x{byte:02x} at offset {offset}): "
        f"re-encode the file as UTF-8."
    )
    args = ["render", str(path), "--templates", "samsum", "--out", str(out), "-q"]
    assert expected in one_line_error(runner.invoke(cli, args))
    assert_nothing_written(out)
    preview = runner.invoke(cli, ["preview", str(path), "--templates", "samsum"])
    assert expected in one_line_error(preview)


def test_template_file_not_utf8_is_one_line(runner, tmp_path):
    pack = make_pack(tmp_path / "p", {"t": "{{ dialogue }}"})
    (pack / "t.jinja").write_bytes(b"{% block prompt %}caf\xe9{% endblock %}")
    result = runner.invoke(cli, ["templates", "show", str(pack)])
    assert f"{pack / 't.jinja'}:1: not valid UTF-8 (byte 0xe9" in one_line_error(result)


# ---------------------------------------------------------------- 4 and 7. templates that raise


def test_template_raising_while_rendering_is_one_line(runner, tmp_path):
    pack = make_pack(tmp_path / "p", {"t": "{{ dialogue }} {{ 1/0 }}"})
    data = write_rows(tmp_path / "train.jsonl", 3)
    out = tmp_path / "o"
    args = ["render", str(data), "--templates", str(pack), "--out", str(out), "-q"]
    output = one_line_error(runner.invoke(cli, args))
    assert "Template 't/t' failed on row train[0] (example_id '" in output
    assert output.rstrip().endswith("division by zero.")
    assert_nothing_written(out)
    lint = runner.invoke(cli, ["templates", "lint", str(pack)])
    assert lint.exit_code == 1 and "Traceback" not in lint.output
    assert "failed on the sample row: division by zero." in lint.output


def test_sandbox_error_ends_with_one_period(tmp_path):
    pack = make_pack(tmp_path / "p", {"t": "{{ dialogue.__class__ }}"})
    data = write_rows(tmp_path / "train.jsonl", 2)
    with pytest.raises(Exception, match=r"is unsafe\.$"):
        render_dataset(str(data), tmp_path / "o", templates=str(pack))


# ---------------------------------------------------------------- 5. lint lists every problem


def test_lint_lists_every_problem(runner, tmp_path):
    pack = make_pack(
        tmp_path / "p",
        {"b": "{{ dialogue }}", "c": "{{ dialogue }", "d": "Say: {{ dialogue }}"},
        kinds={"a": "original", "b": "weird", "c": "original", "d": "original"},
    )
    (pack / "extra.jinja").write_text(BLOCKS.replace("PROMPT", "x"))
    result = runner.invoke(cli, ["templates", "lint", str(pack)])
    assert result.exit_code == 1
    assert f"'{pack / 'a.jinja'}' is missing" in result.output
    assert "template 'b' has kind 'weird'" in result.output
    assert f"{pack / 'c.jinja'}:1: template syntax error" in result.output
    assert f"{pack / 'extra.jinja'}: not listed" in result.output
    assert "b.jinja: not listed" not in result.output  # listed, only its kind is wrong
    assert "Error: 4 problem(s)" in result.output


def test_invalid_pack_yaml_is_one_line(runner, tmp_path):
    pack = tmp_path / "p"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: [\n")
    output = one_line_error(runner.invoke(cli, ["templates", "lint", str(pack)]))
    assert f"{pack / 'pack.yaml'}:2:1: not valid YAML (" in output


# ---------------------------------------------------------------- 6. empty prompts


def test_empty_prompts_are_counted_and_warned(runner, tmp_path):
    pack = make_pack(tmp_path / "p", {"t": "{% if false %}x{% endif %}", "u": "{{ dialogue }}"})
    data = write_rows(tmp_path / "train.jsonl", 6)
    out = tmp_path / "o"
    args = ["render", str(data), "--templates", str(pack), "--assignment", "all", "-q"]
    result = runner.invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Warning: 6 prompt(s) rendered empty (train/t 6)" in result.output
    assert read_manifest(out)["empty_prompts"] == {"train": {"t": 6}}
    failed = runner.invoke(cli, [*args, "--out", str(tmp_path / "f"), "--on-empty", "fail"])
    assert "'t/t' rendered an empty prompt for row train[0]" in one_line_error(failed)
    assert_nothing_written(tmp_path / "f")


def test_no_warning_without_empty_prompts(runner, tmp_path):
    pack = make_pack(tmp_path / "p", {"u": "{{ dialogue }}"})
    data = write_rows(tmp_path / "train.jsonl", 3)
    args = ["render", str(data), "--templates", str(pack), "--out", str(tmp_path / "o"), "-q"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0 and "Warning" not in result.output
    assert read_manifest(tmp_path / "o")["empty_prompts"] == {"train": {}}


# ---------------------------------------------------------------- 8 and 9. hints


def test_hub_failure_suggests_data_dir_and_names_offline_mode(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "o"
    output = one_line_error(runner.invoke(cli, ["render", "samsum", "--out", str(out), "-q"]))
    assert "or pass --data-dir DIR with the official files (train.json" in output
    assert "HF_HUB_OFFLINE is set" in output
    preview = one_line_error(runner.invoke(cli, ["preview", "dialogsum"]))
    assert "official files (dialogsum.train.jsonl" in preview


def test_hub_failure_without_offline_mode_does_not_mention_it(monkeypatch):
    import datasets

    def unreachable(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(Exception, match="check the name or your connection") as info:
        from_hub("someone/data")
    assert "OFFLINE" not in str(info.value)


def test_folder_with_preset_files_suggests_the_preset(runner, tmp_path):
    folder = tmp_path / "dialogsum"
    folder.mkdir()
    (folder / "dialogsum.train.jsonl").write_text('{"fname": "a", "dialogue": "x"}\n')
    args = ["render", str(folder), "--templates", "dialogsum", "--out", str(tmp_path / "o")]
    output = one_line_error(runner.invoke(cli, args))
    assert f"instructkit render dialogsum --data-dir {folder}" in output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("how", ["source", "data-file"])
def test_a_pipe_as_input_is_refused_with_what_to_do(runner, tmp_path, how):
    pipe = tmp_path / "train.jsonl"
    os.mkfifo(pipe)  # nothing ever writes to it: a read would wait forever
    out = tmp_path / "o"
    if how == "source":
        args = ["render", str(pipe), "--templates", "dialogsum", "--out", str(out)]
    else:
        args = ["render", "x", "--templates", "dialogsum", "--data-file", f"train={pipe}"]
        args += ["--out", str(out)]
    output = one_line_error(runner.invoke(cli, args))
    assert "is a pipe or a device, not a data file: write the data to a file" in output
    assert not out.exists()


def test_a_folder_as_data_file_is_named_a_folder(runner, tmp_path):
    folder = tmp_path / "train.jsonl"
    folder.mkdir()
    args = ["render", "x", "--templates", "dialogsum", "--data-file", f"train={folder}"]
    output = one_line_error(runner.invoke(cli, [*args, "--out", str(tmp_path / "o")]))
    assert f"'{folder}' is a folder, not a data file" in output

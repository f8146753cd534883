"""Issue 12, sections 1 and 6: --overwrite never deletes what instructkit did not write, an output
never overlaps an input, concurrent runs never replace each other, SIGTERM and stale temp
folders leave nothing behind. Tested through the CLI only (no module paths)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from instructkit.cli import cli

REPO_ROOT = Path(__file__).resolve().parent.parent
DIALOGS = REPO_ROOT / "examples" / "data" / "dialogs"

PROMPTSOURCE_YAML = """dataset: samsum
templates:
  a1: !Template
    id: a1
    name: Sum up
    jinja: "Summarize: {{dialogue}} ||| {{summary}}"
    metadata: !TemplateMetadata
      original_task: true
"""


def small_jsonl(path: Path, rows: int = 3) -> Path:
    lines = DIALOGS.joinpath("dialogsum.train.jsonl").read_text().splitlines()[:rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def foreign_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "chapter1.tex").write_text("precious")
    return path


def refused(result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result.output


def render(runner, src: Path, out: Path, *extra: str):
    args = ["render", str(src), "--templates", "samsum", "--out", str(out), "-q", *extra]
    return runner.invoke(cli, args)


@pytest.fixture
def src(tmp_path):
    return small_jsonl(tmp_path / "small.jsonl")


@pytest.fixture
def rendered(runner, tmp_path, src):
    out = tmp_path / "rendered"
    assert render(runner, src, out).exit_code == 0
    return out


# ---------------------------------------------------------------- render


def test_render_overwrite_refuses_a_folder_it_did_not_write(runner, tmp_path, src):
    thesis = foreign_folder(tmp_path / "thesis")
    output = refused(render(runner, src, thesis, "--overwrite"), str(thesis), "chapter1.tex")
    assert "--overwrite" in output
    assert (thesis / "chapter1.tex").read_text() == "precious"


def test_render_overwrite_replaces_its_own_output_and_an_empty_folder(runner, tmp_path, src):
    out = tmp_path / "again"
    assert render(runner, src, out).exit_code == 0
    result = render(runner, src, out, "--overwrite")
    assert result.exit_code == 0, result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = render(runner, src, empty, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (empty / "dataset_dict.json").is_file()


def test_render_overwrite_refuses_another_kind_of_instructkit_output(runner, tmp_path, src):
    mixed = tmp_path / "mixed"
    rendered = tmp_path / "r"
    assert render(runner, src, rendered).exit_code == 0
    args = ["mix", "--task", str(rendered), "--out", str(mixed), "-q"]
    assert runner.invoke(cli, args).exit_code == 0
    refused(render(runner, src, mixed, "--overwrite"), str(mixed))
    assert json.loads((mixed / "instructkit.json").read_text())["kind"] == "mix"


def test_render_out_equal_to_its_input_folder_is_refused(runner, tmp_path):
    data = tmp_path / "indata"
    data.mkdir()
    small_jsonl(data / "train.jsonl")
    refused(render(runner, data, data, "--overwrite"), str(data), "input")
    assert (data / "train.jsonl").is_file()


def test_render_out_containing_its_input_is_refused(runner, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    source = small_jsonl(folder / "small.jsonl")
    refused(render(runner, source, folder, "--overwrite"), "input")
    assert source.is_file()


def test_render_out_inside_its_data_dir_is_refused(runner, tmp_path):
    data = tmp_path / "dialogs"
    data.mkdir()
    for name in ("train", "dev", "test"):
        small_jsonl(data / f"dialogsum.{name}.jsonl")
    args = ["render", "dialogsum", "--data-dir", str(data), "--out", str(data / "build"), "-q"]
    refused(runner.invoke(cli, args), "input")
    assert sorted(p.name for p in data.iterdir()) == [
        "dialogsum.dev.jsonl",
        "dialogsum.test.jsonl",
        "dialogsum.train.jsonl",
    ]


def test_a_preset_name_is_not_mistaken_for_an_input_folder(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["render", "dialogsum", "--data-dir", str(DIALOGS), "--out", "dialogsum", "-q",
            "--splits", "validation"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, [*args, "--overwrite"])  # the folder is the output, not the data
    assert result.exit_code == 0, result.output


def test_render_out_dot_overwrite_leaves_no_dotdot_tmp(runner, tmp_path, src, monkeypatch):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    result = render(runner, src, Path("."), "--overwrite")
    assert result.exit_code == 0, result.output
    leftovers = [p.name for p in (*here.iterdir(), *tmp_path.iterdir()) if ".tmp-" in p.name]
    assert leftovers == []
    assert (tmp_path / "cwd" / "dataset_dict.json").is_file()


# ---------------------------------------------------------------- templates import


def test_templates_import_overwrite_refuses_a_hand_written_pack(runner, tmp_path):
    source = tmp_path / "templates.yaml"
    source.write_text(PROMPTSOURCE_YAML)
    pack = tmp_path / "mine"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: mine\ntemplates:\n  a: {kind: original}\n")
    (pack / "a.jinja").write_text("{% block prompt %}x{% endblock %}")
    args = ["templates", "import", str(source), "--out", str(pack), "--overwrite"]
    refused(runner.invoke(cli, args), str(pack))
    assert (pack / "a.jinja").is_file()


def test_templates_import_overwrite_replaces_its_own_import(runner, tmp_path):
    source = tmp_path / "templates.yaml"
    source.write_text(PROMPTSOURCE_YAML)
    pack = tmp_path / "ps"
    args = ["templates", "import", str(source), "--out", str(pack)]
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output


def test_templates_import_out_equal_to_the_yaml_folder_is_refused(runner, tmp_path):
    folder = tmp_path / "ps"
    folder.mkdir()
    source = folder / "templates.yaml"
    source.write_text(PROMPTSOURCE_YAML)
    args = ["templates", "import", str(source), "--out", str(folder), "--overwrite"]
    refused(runner.invoke(cli, args), "input")
    assert source.is_file()


# ---------------------------------------------------------------- mix


def test_mix_out_equal_to_a_task_is_refused(runner, rendered):
    before = (rendered / "instructkit.json").read_text()
    args = ["mix", "--task", str(rendered), "--out", str(rendered), "--overwrite", "-q"]
    refused(runner.invoke(cli, args), str(rendered), "input")
    assert (rendered / "instructkit.json").read_text() == before


def test_mix_overwrite_refuses_a_foreign_folder(runner, rendered, tmp_path):
    thesis = foreign_folder(tmp_path / "thesis")
    args = ["mix", "--task", str(rendered), "--out", str(thesis), "--overwrite", "-q"]
    refused(runner.invoke(cli, args), str(thesis), "chapter1.tex")
    assert (thesis / "chapter1.tex").is_file()


# ---------------------------------------------------------------- train, tiny-model, evaluate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from instructkit.testing import make_tiny_dataset, make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return make_tiny_dataset(root / "data", train_rows=8), make_tiny_model(root / "t5", "t5")


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def test_train_overwrite_refuses_a_foreign_folder(runner, tiny, tmp_path):
    data, model = tiny
    thesis = foreign_folder(tmp_path / "thesis")
    args = ["train", str(data), "-b", "full", "-m", str(model), "--out", str(thesis),
            "--overwrite", "-o", "max_steps=1", "-q"]  # fmt: skip
    refused(runner.invoke(cli, args), str(thesis), "chapter1.tex")
    assert (thesis / "chapter1.tex").is_file()


@pytest.mark.parametrize("which", ["model", "dataset"])
def test_train_out_equal_to_an_input_is_refused(runner, tiny, which):
    data, model = tiny
    target = model if which == "model" else data
    before = _snapshot(target)
    args = ["train", str(data), "-b", "full", "-m", str(model), "--out", str(target),
            "--overwrite", "-o", "max_steps=1", "-q"]  # fmt: skip
    refused(runner.invoke(cli, args), "input")
    assert _snapshot(target) == before


def test_tiny_model_overwrite_refuses_a_foreign_folder(runner, tmp_path):
    thesis = foreign_folder(tmp_path / "thesis")
    refused(runner.invoke(cli, ["tiny-model", str(thesis), "--overwrite"]), str(thesis))
    assert (thesis / "chapter1.tex").is_file()


def test_tiny_model_out_equal_to_its_corpus_is_refused(runner, tiny):
    data, _ = tiny
    before = _snapshot(data)
    args = ["tiny-model", str(data), "--corpus", str(data), "--overwrite"]
    refused(runner.invoke(cli, args), "input")
    assert _snapshot(data) == before


def test_evaluate_out_equal_to_the_model_is_refused(runner, tiny):
    data, model = tiny
    before = _snapshot(model)
    args = ["evaluate", str(data), "--model", str(model), "--split", "validation",
            "--out", str(model), "--overwrite", "--max-rows", "1", "-q"]  # fmt: skip
    refused(runner.invoke(cli, args), "input")
    assert _snapshot(model) == before


def test_evaluate_overwrite_refuses_a_foreign_folder(runner, tiny, tmp_path):
    data, model = tiny
    thesis = foreign_folder(tmp_path / "thesis")
    args = ["evaluate", str(data), "--model", str(model), "--split", "validation",
            "--out", str(thesis), "--overwrite", "--max-rows", "1", "-q"]  # fmt: skip
    refused(runner.invoke(cli, args), str(thesis), "chapter1.tex")
    assert (thesis / "chapter1.tex").is_file()


def test_evaluate_compare_out_equal_to_the_dataset_is_refused(runner, tiny):
    data, model = tiny
    before = _snapshot(data)
    args = ["evaluate", "--compare", f"a={model}", f"b={model}", str(data), "--split",
            "validation", "--out", str(data), "--overwrite", "--max-rows", "1", "-q"]  # fmt: skip
    refused(runner.invoke(cli, args), "input")
    assert _snapshot(data) == before


def test_models_get_overwrite_refuses_a_foreign_folder_before_any_download(runner, tmp_path):
    thesis = foreign_folder(tmp_path / "thesis")
    args = ["models", "get", "smollm2-135m-instruct", str(thesis), "--overwrite",
            "--no-download"]  # fmt: skip
    refused(runner.invoke(cli, args), str(thesis), "chapter1.tex")
    assert (thesis / "chapter1.tex").is_file()


def test_demo_overwrite_refuses_a_foreign_folder(runner, tmp_path):
    thesis = foreign_folder(tmp_path / "thesis")
    refused(runner.invoke(cli, ["demo", "--out", str(thesis), "--overwrite"]), str(thesis))
    assert (thesis / "chapter1.tex").is_file()


def test_demo_out_equal_to_its_data_dir_is_refused(runner, tmp_path):
    data = tmp_path / "dialogs"
    data.mkdir()
    small_jsonl(data / "dialogsum.train.jsonl")
    args = ["demo", "--data-dir", str(data), "--out", str(data), "--overwrite"]
    refused(runner.invoke(cli, args), "input")
    assert (data / "dialogsum.train.jsonl").is_file()


# ---------------------------------------------------------------- score and inspect files


def test_score_out_equal_to_the_predictions_file_is_refused(runner, tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps({"prediction": "a b", "reference": "a b"}) + "\n")
    before = predictions.read_text()
    result = runner.invoke(cli, ["score", str(predictions), "--out", str(predictions)])
    refused(result, "input")
    assert predictions.read_text() == before


def test_inspect_chart_into_the_dataset_is_refused(runner, rendered):
    manifest = rendered / "instructkit.json"
    before = manifest.read_text()
    result = runner.invoke(cli, ["inspect", str(rendered), "--chart", str(manifest)])
    refused(result, "input")
    assert manifest.read_text() == before


# ---------------------------------------------------------------- concurrent runs


def _appear_plugin(out: Path):
    """A Jinja filter plugin that, on its first use, makes another run's output appear."""
    from instructkit import hookimpl

    class Appear:
        __name__ = "appear"

        @hookimpl
        def prepare_jinja2_environment(self, env):
            def appear(value):
                if not out.exists():
                    out.mkdir()
                    (out / "other-run.txt").write_text("theirs")
                return value

            env.filters["appear"] = appear

    return Appear()


def test_an_output_that_appears_during_the_run_is_not_replaced(runner, tmp_path, src):
    from instructkit.plugins import pm

    out = tmp_path / "race"
    plugin = _appear_plugin(out)
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: t\ntemplates:\n  a: {kind: original}\n")
    (pack / "a.jinja").write_text(
        "{% block prompt %}{{ dialogue | appear }}{% endblock %}"
        "{% block completion %}{{ summary }}{% endblock %}"
    )
    pm.register(plugin, name="appear-test")
    try:
        args = ["render", str(src), "--templates", str(pack), "--out", str(out), "-q"]
        refused(runner.invoke(cli, args), str(out))
    finally:
        pm.unregister(name="appear-test")
    assert (out / "other-run.txt").read_text() == "theirs"
    assert not list(tmp_path.glob(".race.tmp-*"))


# ---------------------------------------------------------------- SIGTERM and stale temp folders


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import instructkit
    from instructkit.plugins import pm

    class Term:
        __name__ = "term"

        @instructkit.hookimpl
        def prepare_jinja2_environment(self, env):
            def term(value):
                os.kill(os.getpid(), signal.SIGTERM)
                return value
            env.filters["term"] = term

    pm.register(Term(), name="term-test")
    from instructkit.cli import cli
    cli(sys.argv[1:], prog_name="instructkit")
    """
)


def test_sigterm_is_handled_like_ctrl_c(tmp_path, src):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: t\ntemplates:\n  a: {kind: original}\n")
    (pack / "a.jinja").write_text(
        "{% block prompt %}{{ dialogue | term }}{% endblock %}"
        "{% block completion %}{{ summary }}{% endblock %}"
    )
    out = tmp_path / "out"
    args = ["render", str(src), "--templates", str(pack), "--out", str(out), "-q"]
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_SCRIPT, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 128 + signal.SIGTERM, (result.returncode, result.stderr)
    assert "Terminated: nothing was written." in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stale_temp_folders_of_a_dead_run_are_removed_on_the_next_run(runner, tmp_path, src):
    dead = _dead_pid()
    stale = tmp_path / f".out.tmp-{dead}-0123abcd"
    stale.mkdir()
    (stale / "half.arrow").write_text("x")
    legacy = tmp_path / ".out.tmp-89abcdef"  # the name older versions used, left long ago
    legacy.mkdir()
    old = time.time() - 2 * 24 * 3600
    os.utime(legacy, (old, old))
    mine = tmp_path / ".out.tmp-keep"  # not one of our names: never touched
    mine.mkdir()
    result = render(runner, src, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not legacy.exists()
    assert mine.is_dir()


def test_a_live_runs_temp_folder_is_left_alone(runner, tmp_path, src):
    live = tmp_path / f".out.tmp-{os.getppid()}-0123abcd"
    live.mkdir()
    result = render(runner, src, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert live.is_dir()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid

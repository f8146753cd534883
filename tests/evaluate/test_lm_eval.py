"""lm-evaluation-harness: packs exported as harness tasks (no harness needed), and the engine."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from instructkit.artifacts.dataset import open_split
from instructkit.cli import cli
from instructkit.errors import TemplateError
from instructkit.evaluate import harness
from instructkit.render import lm_eval_export
from instructkit.render.run import render_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DIALOGS = REPO_ROOT / "examples" / "data" / "dialogs"


class HarnessLoader(yaml.SafeLoader):
    """Reads the harness's ``!function module.name`` tag, as lm_eval's own loader does."""


HarnessLoader.add_constructor("!function", lambda loader, node: ("function", node.value))


def load_task(path):
    return yaml.load(path.read_text(), Loader=HarnessLoader)  # noqa: S506 - our loader


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm-eval") / "tasks"
    export = lm_eval_export.export_pack("dialogsum", out, data_dir=str(DIALOGS), max_rows=20)
    return out, export


def test_export_writes_a_valid_task_per_original_phrasing(exported):
    out, export = exported
    from instructkit.render.templates import load_pack

    pack = load_pack("dialogsum")
    originals = [t.id for t in pack.templates if t.kind == "original"]
    assert [p.name for p in export.tasks] == [f"instructkit_dialogsum_{t}.yaml" for t in originals]
    assert export.tag == "instructkit_dialogsum"
    for path, template_id in zip(export.tasks, originals, strict=True):
        task = load_task(path)
        assert task["task"] == path.stem and task["tag"] == ["instructkit_dialogsum"]
        assert task["dataset_path"] == "json" and task["test_split"] == "test"
        assert task["dataset_kwargs"]["data_files"]["test"] == str(export.data)
        assert task["output_type"] == "generate_until"
        assert {m["metric"] for m in task["metric_list"]} == {"rougeL", "exact_match"}
        assert all(m["aggregation"] == "mean" for m in task["metric_list"])
        kind, target = task["process_results"]
        assert kind == "function"
        module, function = target.split(".")
        assert module == lm_eval_export.UTILS_MODULE
        assert function == f"process_results_{template_id}"
        assert task["metadata"]["instructkit_template_sha256"] == pack.template(template_id).sha256
    assert len(export.data.read_text().splitlines()) == 20


def test_harness_jinja_renders_exactly_what_render_writes(exported, tmp_path):
    """The exported doc_to_text/doc_to_target, in a plain Jinja environment (the harness's),
    give the very prompts and completions 'instructkit render' writes for the same rows."""
    out, export = exported
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    docs = [json.loads(line) for line in export.data.read_text().splitlines()]
    for path in export.tasks:
        task = load_task(path)
        template_id = task["metadata"]["instructkit_template"]
        rendered = tmp_path / template_id
        render_dataset(
            "dialogsum", rendered, data_dir=str(DIALOGS), template_ids=[template_id],
            splits=["test"], quiet=True,
        )  # fmt: skip
        table = open_split(rendered, "test").to_pylist()[:20]
        prompts = [env.from_string(task["doc_to_text"]).render(**doc) for doc in docs]
        targets = [env.from_string(task["doc_to_target"]).render(**doc) for doc in docs]
        assert prompts == [row["prompt"] for row in table]
        assert targets == [row["completion"] for row in table]


def test_exported_scoring_uses_every_reference(exported):
    out, export = exported
    spec = importlib.util.spec_from_file_location("exported_utils", export.utils)
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    doc = json.loads(export.data.read_text().splitlines()[0])
    second = doc["instructkit_variants"]["summary"][1]
    scores = utils.process_results_summarize_before(doc, [f" {second}\n"])
    assert scores == {"rougeL": 100.0, "exact_match": 100.0}
    assert utils.process_results_summarize_before(doc, ["nothing alike"])["exact_match"] == 0.0


def test_lstrip_and_trim_blocks_are_carried_over():
    block = "\n  {% if x %}\n  Say {{ x }}\n  {% endif %}\n  Done\n"
    # a pack strips the block's edges (template text only), then renders with both options
    ours = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(block.strip())
    theirs = jinja2.Environment().from_string(lm_eval_export.harness_jinja(block))
    assert theirs.render(x="hi") == ours.render(x="hi") == "  Say hi\n  Done"
    plain = jinja2.Environment().from_string(block.strip())
    assert plain.render(x="hi") != ours.render(x="hi")  # so the rewrite is needed


def test_a_template_the_harness_cannot_render_is_refused(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.yaml").write_text("task: t\ntemplates:\n  p: {kind: original}\n")
    (pack / "p.jinja").write_text(
        "{% block prompt %}{{ text | word_count }}{% endblock %}"
        "{% block completion %}{{ label }}{% endblock %}"
    )
    data = tmp_path / "test.jsonl"
    data.write_text('{"text": "a", "label": "b"}\n')
    with pytest.raises(TemplateError, match="does not render in the harness"):
        lm_eval_export.export_pack(
            str(data), tmp_path / "out", data_files={"test": str(data)}, templates=str(pack)
        )


def test_cli_export(runner, tmp_path):
    out = tmp_path / "tasks"
    args = [
        "templates",
        "lm-eval",
        "dialogsum_topic",
        "--data-dir",
        str(DIALOGS),
        "--out",
        str(out),
    ]
    result = runner.invoke(cli, [*args, "--template", "topic_before", "--max-rows", "3"])
    assert result.exit_code == 0, result.output
    assert (out / "instructkit_dialogsum_topic_topic_before.yaml").is_file()
    assert "--tasks instructkit_dialogsum_topic" in result.output


def test_compare_without_the_harness_says_how_to_install(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "harness_available", lambda: False)
    args = ["evaluate", "--compare", "a=x", "b=y", str(tmp_path), "--out", str(tmp_path / "o")]
    result = runner.invoke(cli, [*args, "--lm-eval-tasks", "hellaswag"])
    assert result.exit_code == 1
    assert "pip install 'instructkit[lm-eval]'" in result.output


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_local_harness_task_for_base_and_lora_in_the_same_report(exported, runner, tmp_path):
    pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")
    from evaluate_helpers import make_adapter

    from instructkit.testing import make_tiny_model

    base = make_tiny_model(tmp_path / "base", "gpt2")
    lora = make_adapter(base, tmp_path / "lora")
    out, export = exported
    tasks = tmp_path / "tasks"
    lm_eval_export.export_pack(
        "dialogsum", tasks, data_dir=str(DIALOGS), template_ids=["summarize_before"],
        max_rows=2, max_gen_toks=3,
    )  # fmt: skip
    report_dir = tmp_path / "report"
    args = ["evaluate", "--compare", f"base={base}", f"lora={lora}", str(export.data.parent)]
    args = ["evaluate", "--compare", f"base={base}", f"lora={lora}"]
    rendered = tmp_path / "rendered"
    render_dataset("dialogsum", rendered, data_dir=str(DIALOGS), splits=["test"], quiet=True)
    result = runner.invoke(
        cli,
        [*args, str(rendered), "--out", str(report_dir), "--max-rows", "2", "--max-new-tokens",
         "3", "--bootstrap", "20", "--quiet", "--lm-eval-tasks",
         "instructkit_dialogsum_summarize_before", "--lm-eval-include", str(tasks)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((report_dir / "report.json").read_text())
    harness = data["harness"]
    assert set(harness) == {"base", "lora"}
    task = "instructkit_dialogsum_summarize_before"
    assert set(harness["base"][task]) >= {"rougeL", "exact_match"}
    # an untrained LoRA (peft=) is its base: the same harness scores
    assert harness["lora"][task] == harness["base"][task]
    assert "lm-evaluation-harness" in (report_dir / "report.md").read_text()
    assert (report_dir / "lora" / "lm_eval.json").is_file()
    assert "lm_eval" in sys.modules


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "m", "--lm-eval-tasks", "arc_easy"], "adds harness results to --compare"),
        (["--checkpoints", "r", "--lm-eval-tasks", "arc_easy"], "adds harness results"),
        (["--compare", "a=x", "b=y", "--lm-eval-limit", "3"], "need --lm-eval-tasks"),
    ],
)
def test_harness_options_need_compare_and_tasks(runner, tmp_path, extra, message):
    result = runner.invoke(cli, ["evaluate", str(tmp_path), "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 2
    assert message in result.output

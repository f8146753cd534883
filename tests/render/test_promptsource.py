"""promptsource import: an imported template yields what promptsource's Template.apply yields."""

from __future__ import annotations

import pytest

from instructkit.cli import cli
from instructkit.errors import TemplateError
from instructkit.render.formats import compile_pack
from instructkit.render.promptsource import import_promptsource
from instructkit.render.templates import load_pack

# Our own templates, written in promptsource's templates.yaml format.
TEMPLATES_YAML = """\
dataset: tiny_dialogs
templates:
  0b1c6f5e-0000-4000-8000-000000000001: !Template
    answer_choices: null
    id: 0b1c6f5e-0000-4000-8000-000000000001
    jinja: "Summarize this chat:\\n{{dialogue}}\\n|||\\n{{summary}}"
    metadata: !TemplateMetadata
      choices_in_prompt: false
      languages: [en]
      metrics: [ROUGE]
      original_task: true
    name: Summarize this chat
    reference: ''
  0b1c6f5e-0000-4000-8000-000000000002: !Template
    answer_choices: yes ||| no
    id: 0b1c6f5e-0000-4000-8000-000000000002
    jinja: "{{dialogue}}\\nIs this about {{topic}}? {{ answer_choices | join(' or ') }}\\
      \\ ||| {% if label == 1 %}{{ answer_choices[0] }}{% else %}{{ answer_choices[1] }}{% endif %}"
    metadata: !TemplateMetadata
      choices_in_prompt: true
      languages: [en]
      metrics: [Accuracy]
      original_task: false
    name: Summarize this chat
    reference: ''
"""


@pytest.fixture
def pack(tmp_path):
    source = tmp_path / "templates.yaml"
    source.write_text(TEMPLATES_YAML)
    return load_pack(import_promptsource(source, tmp_path / "pack"))


def test_import_writes_a_readable_pack(pack):
    assert pack.task == "tiny_dialogs"
    assert [t.id for t in pack.templates] == ["summarize_this_chat", "summarize_this_chat_2"]
    assert [t.kind for t in pack.templates] == ["original", "inverted"]
    assert pack.templates[0].source == "Summarize this chat:\n{{dialogue}}\n|||\n{{summary}}"


def test_apply_semantics_split_strip_and_protected_pipes(pack):
    summarize = compile_pack(pack)[0]
    row = {"dialogue": "A: a ||| b \n", "summary": " Short. ", "unused": 3}
    # Rendered, split on '|||' (the one in the data is protected), each part stripped.
    assert summarize.render_row(row) == ("Summarize this chat:\nA: a ||| b", "Short.")


def test_answer_choices_are_rendered_and_injected(pack):
    question = compile_pack(pack)[1]
    row = {"dialogue": "A: hi", "topic": "greetings", "label": 1}
    assert question.render_row(row) == ("A: hi\nIs this about greetings? yes or no", "yes")
    assert question.render_row({**row, "label": 0})[1] == "no"


def test_fields_are_truncated_like_promptsource(pack):
    summarize = compile_pack(pack)[0]
    words = " ".join(f"w{i:03d}" for i in range(600))  # 2,999 characters
    prompt, _ = summarize.render_row({"dialogue": words, "summary": "s"})
    kept = prompt.removeprefix("Summarize this chat:\n")
    # jinja's truncate(2048): cut to 2048 - 3 characters, back to a word boundary, add '...'
    assert kept == words[:2045].rsplit(" ", 1)[0] + "..."


def test_reserved_and_missing_fields(pack):
    summarize = compile_pack(pack)[0]
    with pytest.raises(TemplateError, match="answer_choices"):
        summarize.render_row({"dialogue": "x", "summary": "y", "answer_choices": []})
    with pytest.raises(TemplateError, match="'summary'"):
        summarize.render_row({"dialogue": "x"})


def test_render_an_imported_pack(pack, tmp_path, runner):
    data = tmp_path / "train.jsonl"
    data.write_text(
        '{"dialogue": "A: hi ||| there", "summary": "Greeting.", "topic": "t", "label": 1}\n'
    )
    out = tmp_path / "out"
    args = ["render", str(data), "--templates", str(pack.path), "--assignment", "all"]
    result = runner.invoke(cli, [*args, "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    from instructkit.artifacts import dataset as artifact

    rows = artifact.open_split(out, "train").to_pylist()
    assert [r["completion"] for r in rows] == ["Greeting.", "yes"]
    # an imported pack joins prompt and target with a space, as T0 and lm-eval do
    assert rows[0]["prompt"] == "Summarize this chat:\nA: hi ||| there "

"""Template packs: every shipped template renders, the sandbox holds, errors name the culprit."""

from __future__ import annotations

import pytest

import instructkit
from instructkit.cli import cli
from instructkit.errors import TemplateError
from instructkit.plugins import pm
from instructkit.render.formats import compile_pack
from instructkit.render.lint import lint_pack
from instructkit.render.templates import list_packs, load_pack, make_environment

FIXTURE_ROW = {
    "dialogue": "#Person1#: Shall we meet at six?\n#Person2#: Six works, see you then.",
    "summary": "#Person1# and #Person2# agree to meet at six.",
    "topic": "meeting time",
}
SHIPPED = [(path.name, spec.id) for path in list_packs() for spec in load_pack(path).templates]


def test_shipped_packs():
    packs = {p.name: load_pack(p) for p in list_packs()}
    assert {"samsum", "dialogsum", "dialogsum_topic"} <= set(packs)
    for name in ("samsum", "dialogsum"):
        kinds = [t.kind for t in packs[name].templates]
        assert len(kinds) >= 8 and "inverted" in kinds and "original" in kinds
    assert len(packs["dialogsum_topic"].templates) >= 4
    assert packs["dialogsum_topic"].task == "dialogsum_topic"


@pytest.mark.parametrize(("pack", "template_id"), SHIPPED)
def test_every_shipped_template_renders(pack, template_id):
    compiled = {t.template_id: t for t in compile_pack(load_pack(pack))}[template_id]
    assert compiled.all_fields <= set(FIXTURE_ROW)
    prompt, completion = compiled.render_row(FIXTURE_ROW)
    assert prompt.strip() and completion.strip()
    assert prompt == prompt.strip() and completion == completion.strip()
    # Summaries and dialogues land verbatim: nothing is normalised.
    used = [FIXTURE_ROW[f] for f in sorted(compiled.all_fields)]
    assert all(value in prompt + completion for value in used)


def test_shipped_packs_lint_clean():
    for path in list_packs():
        assert lint_pack(str(path)) == []


def write_pack(root, templates: dict[str, str], kinds: dict[str, str] | None = None):
    root.mkdir(parents=True, exist_ok=True)
    entries = "\n".join(f"  {t}: {{kind: {(kinds or {}).get(t, 'original')}}}" for t in templates)
    (root / "pack.yaml").write_text(f"task: custom\ntemplates:\n{entries}\n")
    for tid, body in templates.items():
        (root / f"{tid}.jinja").write_text(body)
    return root


def test_missing_field_names_field_template_and_row(tmp_path):
    pack = write_pack(tmp_path / "p", {"t": "{% block prompt %}{{ dialog }}{% endblock %}"
                                            "{% block completion %}x{% endblock %}"})  # fmt: skip
    template = compile_pack(load_pack(pack))[0]
    with pytest.raises(TemplateError) as info:
        template.render_row({"dialogue": "hi"}, "row train[7]")
    message = str(info.value)
    assert "'dialog'" in message and "custom/t" in message and "train[7]" in message


def test_sandbox_blocks_python_internals(tmp_path):
    body = ("{% block prompt %}{{ dialogue.__class__.__mro__ }}{% endblock %}"
            "{% block completion %}x{% endblock %}")  # fmt: skip
    template = compile_pack(load_pack(write_pack(tmp_path / "p", {"t": body})))[0]
    with pytest.raises(TemplateError, match="failed"):
        template.render_row({"dialogue": "hi"})


def test_syntax_error_names_file_and_line(tmp_path):
    pack = write_pack(tmp_path / "p", {"t": "{% block prompt %}\n\n{% if %}{% endblock %}"})
    with pytest.raises(TemplateError, match=r"t\.jinja:3:"):
        compile_pack(load_pack(pack))


def test_missing_block_is_an_error(tmp_path):
    pack = write_pack(tmp_path / "p", {"t": "{% block prompt %}hi{% endblock %}"})
    with pytest.raises(TemplateError, match="block completion"):
        compile_pack(load_pack(pack))


def test_unknown_pack_lists_known_ones():
    with pytest.raises(TemplateError, match="samsum"):
        load_pack("samsun")


def test_lint_finds_problems(tmp_path):
    same = (
        "{% block prompt %}{{ dialogue }}{% endblock %}"
        "{% block completion %}{{ summary }}{% endblock %}"
    )
    empty = "{% block prompt %}{{ dialogue }}{% endblock %}{% block completion %} {% endblock %}"
    pack = write_pack(tmp_path / "p", {"a": same, "b": same, "c": empty})
    (pack / "stray.jinja").write_text(same)
    problems = "\n".join(lint_pack(str(pack)))
    assert "same body as template 'a'" in problems
    assert "empty completion" in problems
    assert "stray.jinja: not listed" in problems
    data = tmp_path / "train.jsonl"
    data.write_text('{"dialogue": "A: hi"}\n')
    assert "summary" in "\n".join(lint_pack(str(pack), str(data)))


def test_templates_cli(runner):
    listed = runner.invoke(cli, ["templates", "list"])
    assert listed.exit_code == 0 and "dialogsum_topic" in listed.output
    shown = runner.invoke(cli, ["templates", "show", "samsum"])
    assert shown.exit_code == 0 and "{% block prompt %}" in shown.output
    linted = runner.invoke(cli, ["templates", "lint", "dialogsum"])
    assert linted.exit_code == 0 and "no problems" in linted.output


def test_hook_prepare_jinja2_environment(tmp_path):
    class ShoutPlugin:
        __name__ = "ShoutPlugin"

        @instructkit.hookimpl
        def prepare_jinja2_environment(self, env):
            env.filters["shout"] = lambda text: text.upper() + "!"

    pm.register(ShoutPlugin(), name="shout-plugin")
    try:
        env = make_environment()
        assert "speakers" in env.filters  # the built-in filters come through the same hook
        body = (
            "{% block prompt %}{{ dialogue | shout }}{% endblock %}"
            "{% block completion %}{{ dialogue | speakers | join(',') }}{% endblock %}"
        )
        template = compile_pack(load_pack(write_pack(tmp_path / "p", {"t": body})), env)[0]
        assert template.render_row({"dialogue": "Ann: hi\r\nBo: yo"}) == (
            "ANN: HI\r\nBO: YO!",
            "Ann,Bo",
        )
    finally:
        pm.unregister(name="shout-plugin")


def test_every_pack_format_has_one_compiler():
    from instructkit.render.formats import COMPILERS
    from instructkit.render.templates import FORMATS

    assert tuple(COMPILERS) == FORMATS

"""The batched fast path gives the same bytes as rendering each row through Jinja."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from instructkit.render.fast import render_batch, vectorised
from instructkit.render.formats import compile_template
from instructkit.render.templates import TemplateSpec, make_environment

ALPHABET = "ab Z\n\r\t.,:;!?é😀-_|()[]"
FIELDS = ["dialogue", "summary", "topic", "n"]


def random_text(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, longest)))


def random_block(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.5:
            parts.append("{{ " + rng.choice(FIELDS) + " }}")
        else:
            parts.append(random_text(rng, 12))
    return "".join(parts)


def random_rows(rng: random.Random, count: int) -> pa.Table:
    columns = {name: [random_text(rng, 40) for _ in range(count)] for name in FIELDS[:3]}
    columns["n"] = [rng.randint(-(10**12), 10**12) for _ in range(count)]
    return pa.table(columns)


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_matches_per_row_jinja(seed, tmp_path):
    rng = random.Random(seed)
    source = (
        "{% block prompt %}" + random_block(rng) + "{% endblock %}\n"
        "{% block completion %}" + random_block(rng) + "{% endblock %}"
    )
    path = tmp_path / "t.jinja"
    path.write_text(source)
    template = compile_template(
        TemplateSpec("t", "original", path, source), "task", make_environment()
    )
    assert template.plans["prompt"] is not None and template.plans["completion"] is not None
    table = random_rows(rng, 25)
    fast_prompt = vectorised(template.plans["prompt"], table)
    fast_completion = vectorised(template.plans["completion"], table)
    expected = [template.render_row(row) for row in table.to_pylist()]
    assert fast_prompt.to_pylist() == [p for p, _ in expected]
    assert fast_completion.to_pylist() == [c for _, c in expected]


def test_blocks_with_logic_fall_back_to_jinja(tmp_path):
    source = (
        "{% block prompt %}{% if topic %}About {{ topic }}: {% endif %}{{ dialogue | upper }}"
        "{% endblock %}{% block completion %}{{ summary }}{% endblock %}"
    )
    path = tmp_path / "t.jinja"
    path.write_text(source)
    template = compile_template(
        TemplateSpec("t", "original", path, source), "task", make_environment()
    )
    assert template.plans["prompt"] is None
    table = pa.table({"dialogue": ["hi", "yo"], "summary": ["s", "t"], "topic": ["", "x"]})
    prompt, completion = render_batch(template, table, lambda i: f"row {i}")
    assert prompt.to_pylist() == ["HI", "About x: YO"]
    assert completion.to_pylist() == ["s", "t"]

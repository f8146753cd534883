"""Template formats: the one place that maps a pack entry's ``format`` to its compiler.

``blocks`` (a prompt block and a completion block) is compiled in templates.py, ``promptsource``
(one body split on ``|||`` after rendering) in promptsource.py. Both produce a
:class:`~instructkit.render.templates.CompiledTemplate`, so nothing downstream asks which format
a template came from (a whole-row format sets ``row_renderer``).
"""

from __future__ import annotations

from collections.abc import Callable

import jinja2

from instructkit.render.promptsource import compile_promptsource
from instructkit.render.templates import (
    CompiledTemplate,
    Pack,
    TemplateSpec,
    compile_blocks,
    make_environment,
)

Compiler = Callable[[TemplateSpec, str, jinja2.Environment], CompiledTemplate]

COMPILERS: dict[str, Compiler] = {"blocks": compile_blocks, "promptsource": compile_promptsource}


def compile_pack(pack: Pack, env: jinja2.Environment | None = None) -> list[CompiledTemplate]:
    """Compile every phrasing of a pack; a syntax error names the file and line."""
    env = env or make_environment()
    return [compile_template(spec, pack.task, env) for spec in pack.templates]


def compile_template(spec: TemplateSpec, task: str, env: jinja2.Environment) -> CompiledTemplate:
    """Compile one phrasing with its format's compiler."""
    return COMPILERS[spec.format](spec, task, env)

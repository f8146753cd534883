"""``instructkit templates lint``: find what would break or quietly spoil a render."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from jinja2 import nodes

from instructkit.errors import InstructkitError
from instructkit.render.formats import compile_template
from instructkit.render.templates import (
    PACK_FILE,
    CompiledTemplate,
    Pack,
    load_pack,
    make_environment,
    pack_entries,
    parse_source,
    read_pack_file,
)

_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


def lint_pack(name: str, data: str | None = None, data_dir: str | None = None) -> list[str]:
    """Problems in a pack, one line each (an empty list means it is fine).

    Every problem is listed, not only the first: a bad entry in pack.yaml (unknown kind,
    missing file) does not hide syntax errors in the other templates.
    """
    problems: list[str] = []
    pack = load_pack(name, problems)
    env = make_environment()
    problems += _unlisted_files(pack)
    compiled: list[CompiledTemplate] = []
    for spec in pack.templates:
        try:
            compiled.append(compile_template(spec, pack.task, env))
        except InstructkitError as ex:
            problems.append(str(ex))
            continue
        if spec.format == "blocks":
            problems += _text_outside_blocks(spec.path, parse_source(env, spec.source, spec.path))
    problems += _duplicate_bodies(pack)
    row, columns = _sample_row(pack, compiled, data, data_dir)
    for template in compiled:
        problems += _check_template(template, row, columns)
    return problems


def _unlisted_files(pack: Pack) -> list[str]:
    # Every id in pack.yaml counts as listed, even one whose entry has a problem of its own.
    listed = {
        f"{tid}.jinja" for tid in pack_entries(pack.path, read_pack_file(pack.path / PACK_FILE))
    }
    return [
        f"{path}: not listed under 'templates' in {PACK_FILE}, so it is never rendered."
        for path in sorted(pack.path.glob("*.jinja"))
        if path.name not in listed
    ]


def _text_outside_blocks(path: Path, tree: nodes.Template) -> list[str]:
    for node in tree.body:
        if isinstance(node, nodes.Output):
            text = "".join(n.data for n in node.nodes if isinstance(n, nodes.TemplateData))
            if text.strip() or any(not isinstance(n, nodes.TemplateData) for n in node.nodes):
                return [f"{path}: text outside the prompt/completion blocks is ignored."]
    return []


def _duplicate_bodies(pack: Pack) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for spec in pack.templates:
        body = re.sub(r"\s+", " ", _COMMENT.sub("", spec.source)).strip()
        digest = hashlib.sha256(body.encode()).hexdigest()
        if digest in seen:
            problems.append(f"{spec.path}: same body as template '{seen[digest]}'.")
        seen.setdefault(digest, spec.id)
    return problems


def _sample_row(
    pack: Pack, compiled: list[CompiledTemplate], data: str | None, data_dir: str | None
) -> tuple[dict[str, Any], set[str] | None]:
    fields = sorted(set().union(*(t.all_fields for t in compiled))) if compiled else []
    if data is None:
        return {name: f"<{name}>" for name in fields}, None
    from instructkit.render.run import RenderOptions, resolve

    raw, _ = resolve(data, RenderOptions(templates=str(pack.path), data_dir=data_dir))
    split = raw.splits.get("train") or next(iter(raw.splits.values()))
    table = next(split.batches(1), None)
    row = table.to_pylist()[0] if table is not None and table.num_rows else {}
    return row, set(split.column_names)


def _check_template(
    template: CompiledTemplate, row: dict[str, Any], columns: set[str] | None
) -> list[str]:
    where = f"{template.spec.path}"
    if columns is not None:
        missing = sorted(template.all_fields - columns)
        if missing:
            return [f"{where}: uses field(s) {', '.join(missing)} that the data does not have."]
    try:
        prompt, completion = template.render_row(row, "the sample row")
    except InstructkitError as ex:
        return [f"{where}: {ex}"]
    problems = []
    if not prompt.strip():
        problems.append(f"{where}: renders an empty prompt.")
    if not completion.strip():
        problems.append(f"{where}: renders an empty completion.")
    return problems

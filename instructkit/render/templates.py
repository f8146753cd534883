"""Template packs: find them, load them, and render one row through one phrasing.

A pack is a directory ``templates/<task>/`` with a ``pack.yaml`` (task name, default source,
metrics, the long field that budgets may trim, and each template's kind) and one ``<id>.jinja``
file per phrasing. A template file holds two Jinja blocks::

    {% block prompt %}Summarize this dialogue:

    {{ dialogue }}{% endblock %}
    {% block completion %}{{ summary }}{% endblock %}

The template text at the start and end of each block is stripped (so blocks can sit on their
own lines); the data is never touched. Templates imported from promptsource keep their own
format (one body split on ``|||`` after rendering), see :mod:`instructkit.render.promptsource`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2
import yaml
from jinja2 import meta, nodes

from instructkit.errors import TemplateError
from instructkit.paths import template_search_path
from instructkit.sandbox import BoundedSandbox, bounded_join, row_scope

PACK_FILE = "pack.yaml"
KINDS = ("original", "inverted")
BLOCKS = ("prompt", "completion")
FORMATS = ("blocks", "promptsource")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


def make_environment() -> jinja2.Environment:
    """Build the one sandboxed, strict Jinja environment and let plugins add filters."""
    from instructkit.plugins import load_plugins

    env = BoundedSandbox(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )
    load_plugins().hook.prepare_jinja2_environment(env=env)
    return env


# ---------------------------------------------------------------- packs


@dataclass(frozen=True)
class TemplateSpec:
    """One phrasing of a pack as read from disk (not yet compiled)."""

    id: str
    kind: str
    path: Path
    source: str
    format: str = "blocks"
    answer_choices: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()


@dataclass
class Pack:
    """A template pack: the task it defines and its phrasings."""

    task: str
    path: Path
    templates: list[TemplateSpec]
    source: str | None = None
    description: str = ""
    metrics: list[str] = field(default_factory=lambda: ["rouge"])
    trim_field: str | None = None
    # How rows are framed (see render/framing.py): the join between prompt and completion in
    # the text form, the default form, and a system prompt for the conversational form.
    separator: str = "\n"
    form: str = "text"
    system: str | None = None

    def template(self, template_id: str) -> TemplateSpec:
        """The phrasing with this id, or a TemplateError listing the ids there are."""
        for spec in self.templates:
            if spec.id == template_id:
                return spec
        ids = ", ".join(t.id for t in self.templates)
        raise TemplateError(f"Pack '{self.task}' has no template '{template_id}': it has {ids}.")


def list_packs() -> list[Path]:
    """Every pack directory on the search path; the first one of a name shadows the others."""
    seen: dict[str, Path] = {}
    for root in template_search_path():
        if not root.is_dir():
            continue
        for candidate in sorted(root.iterdir()):
            if (candidate / PACK_FILE).is_file() and candidate.name not in seen:
                seen[candidate.name] = candidate
    return [seen[name] for name in sorted(seen)]


def find_pack(name_or_path: str) -> Path | None:
    """The pack directory for a path or a pack name on the search path, else None."""
    as_path = Path(name_or_path)
    if (as_path / PACK_FILE).is_file():
        return as_path
    if "/" in name_or_path or name_or_path.startswith("."):
        return None
    for root in template_search_path():
        if (root / name_or_path / PACK_FILE).is_file():
            return root / name_or_path
    return None


def load_pack(name_or_path: str | Path, problems: list[str] | None = None) -> Pack:
    """Load a pack by name (searched on the template path) or by directory.

    With a ``problems`` list, a bad template entry (unknown kind, missing file) is appended
    there and left out instead of raising, so ``templates lint`` can report all of them.
    """
    path = find_pack(str(name_or_path))
    if path is None:
        names = ", ".join(p.name for p in list_packs()) or "none"
        raise TemplateError(
            f"No template pack '{name_or_path}': known packs are {names} "
            f"(see 'instructkit templates list'), or pass a directory holding a {PACK_FILE}."
        )
    meta_data = read_pack_file(path / PACK_FILE)
    task = str(meta_data.get("task") or path.name)
    templates = []
    for tid, entry in pack_entries(path, meta_data).items():
        try:
            templates.append(_load_spec(path, tid, entry))
        except TemplateError as ex:
            if problems is None:
                raise
            problems.append(str(ex))
    return Pack(
        task=task,
        path=path,
        templates=templates,
        source=meta_data.get("source"),
        description=str(meta_data.get("description", "")),
        metrics=list(meta_data.get("metrics") or ["rouge"]),
        trim_field=meta_data.get("trim_field"),
        separator=_pack_text(path, meta_data, "separator", "\n"),
        form=_pack_form(path, meta_data),
        system=_pack_text(path, meta_data, "system", None) or None,
    )


def _pack_text(path: Path, meta_data: dict[str, Any], key: str, default: str | None) -> Any:
    value = meta_data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise TemplateError(f"{path / PACK_FILE}: '{key}' must be a string, got {value!r}.")
    return value


def _pack_form(path: Path, meta_data: dict[str, Any]) -> str:
    form = meta_data.get("form", "text")
    if form not in ("text", "conversational"):
        raise TemplateError(
            f"{path / PACK_FILE}: 'form' must be text or conversational, got {form!r}."
        )
    return str(form)


def read_pack_file(path: Path) -> dict[str, Any]:
    """The parsed ``pack.yaml``; bad YAML is one line naming the file, line and column."""
    try:
        data = yaml.safe_load(read_utf8(path))
    except yaml.YAMLError as ex:
        raise TemplateError(yaml_error(path, ex, "fix the pack file")) from ex
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping with 'task' and 'templates'.")
    return data


def pack_entries(path: Path, meta_data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``templates`` mapping of a pack file: template id -> its entry."""
    entries = meta_data.get("templates") or {}
    if not isinstance(entries, dict) or not entries:
        raise TemplateError(f"{path / PACK_FILE}: 'templates' must map template ids to kinds.")
    return {str(tid): entry if isinstance(entry, dict) else {} for tid, entry in entries.items()}


def yaml_error(path: str | Path, ex: yaml.YAMLError, fix: str) -> str:
    """One line for a YAML error: ``file:line:column: not valid YAML (problem): fix``."""
    mark = getattr(ex, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(ex, "problem", None) or str(ex).splitlines()[0]
    context = getattr(ex, "context", None)
    detail = f"{problem} {context}" if context and mark is not None else problem
    return f"{where}: not valid YAML ({' '.join(detail.split())}): {fix}."


def read_utf8(path: Path) -> str:
    """A text file's content; bytes that are not UTF-8 are one line naming file and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as ex:
        line = data.count(b"\n", 0, ex.start) + 1
        raise TemplateError(utf8_error(path, line, data[ex.start], ex.start)) from ex


def utf8_error(path: str | Path, line: int, byte: int, offset: int) -> str:
    """The one-line message for a byte that is not UTF-8 (``offset`` counts from the start)."""
    return (
        f"{path}:{line}: not valid UTF-8 (byte 0x{byte:02x} at offset {offset}): "
        f"re-encode the file as UTF-8."
    )


def _load_spec(pack_dir: Path, template_id: str, entry: dict[str, Any]) -> TemplateSpec:
    kind = entry.get("kind", "original")
    if kind not in KINDS:
        raise TemplateError(
            f"{pack_dir / PACK_FILE}: template '{template_id}' has kind '{kind}': "
            f"use one of {', '.join(KINDS)}."
        )
    fmt = entry.get("format", "blocks")
    if fmt not in FORMATS:
        raise TemplateError(
            f"{pack_dir / PACK_FILE}: template '{template_id}' has format '{fmt}': "
            f"use one of {', '.join(FORMATS)}."
        )
    path = pack_dir / f"{template_id}.jinja"
    if not path.is_file():
        raise TemplateError(f"Template file '{path}' is missing: create it or drop the entry.")
    return TemplateSpec(
        id=template_id,
        kind=kind,
        path=path,
        source=read_utf8(path),
        format=fmt,
        answer_choices=entry.get("answer_choices"),
    )


# ---------------------------------------------------------------- compiled templates

# A fast-path plan: the block is a fixed sequence of literal text and plain field lookups.
Plan = list[tuple[str, str]]  # ("text", literal) or ("field", name)


class RowRenderer(Protocol):
    """A template format that renders a whole row into (prompt, completion) at once."""

    def apply(self, row: Mapping[str, Any]) -> tuple[str, str]: ...


@dataclass
class CompiledTemplate:
    """A phrasing ready to render: per row, or per batch through its fast-path plans."""

    spec: TemplateSpec
    template_id: str
    kind: str
    task: str
    jinja: jinja2.Template
    fields: dict[str, frozenset[str]]
    plans: dict[str, Plan | None]
    # Formats that render a whole row at once (promptsource's apply) set this; see formats.py.
    row_renderer: RowRenderer | None = None

    @property
    def whole_row(self) -> bool:
        """Does rendering need every column of the row (not only the template's fields)?"""
        return self.row_renderer is not None

    @property
    def all_fields(self) -> frozenset[str]:
        return self.fields["prompt"] | self.fields["completion"]

    def render_row(self, row: Mapping[str, Any], where: str = "a row") -> tuple[str, str]:
        """Render one row into (prompt, completion); a missing field names template and row."""
        try:
            with row_scope(row):
                if self.row_renderer is not None:
                    return self.row_renderer.apply(row)
                return self.render_block("prompt", row), self.render_block("completion", row)
        except jinja2.UndefinedError as ex:
            if _UNDEFINED_NAME.search(str(ex)) is None:  # 'str object' has no attribute 'x'
                raise TemplateError(
                    f"Template '{self.task}/{self.template_id}' failed on {where}: {ex}."
                ) from ex
            raise self.missing_field_error(ex, row, where) from ex
        except TemplateError:
            raise
        except Exception as ex:  # the sandbox, a filter, or the template's own code (1/0)
            message = str(ex).rstrip(".") or type(ex).__name__
            raise TemplateError(
                f"Template '{self.task}/{self.template_id}' failed on {where}: {message}."
            ) from ex

    def render_block(self, block: str, row: Mapping[str, Any]) -> str:
        context = self.jinja.new_context(dict(row))
        return bounded_join(self.jinja.blocks[block](context), block)

    def missing_field_error(self, ex: Exception, row: Mapping[str, Any], where: str) -> Exception:
        match = _UNDEFINED_NAME.search(str(ex))
        name = match.group(1) if match else str(ex)
        return TemplateError(
            f"Template '{self.task}/{self.template_id}' uses field '{name}', which {where} "
            f"lacks (it has {', '.join(sorted(row)) or 'no fields'}): "
            f"map a column onto it with --column-map {name}=COLUMN."
        )


def compile_blocks(spec: TemplateSpec, task: str, env: jinja2.Environment) -> CompiledTemplate:
    """Compile one phrasing of the ``blocks`` format (a prompt and a completion block)."""
    tree = parse_source(env, spec.source, spec.path)
    blocks = {b.name: b for b in tree.find_all(nodes.Block)}
    missing = [name for name in BLOCKS if name not in blocks]
    if missing:
        raise TemplateError(
            f"{spec.path}: no {{% block {missing[0]} %}}: a template needs a prompt block "
            f"and a completion block."
        )
    for block in blocks.values():
        _strip_block_edges(block)
    try:
        code = env.compile(tree, name=spec.id, filename=str(spec.path))
    except jinja2.TemplateSyntaxError as ex:
        raise _syntax_error(spec.path, ex) from ex
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    return CompiledTemplate(
        spec=spec,
        template_id=spec.id,
        kind=spec.kind,
        task=task,
        jinja=template,
        fields={name: fields_of(blocks[name].body, env) for name in BLOCKS},
        plans={name: fast_plan(blocks[name].body) for name in BLOCKS},
    )


def parse_source(env: jinja2.Environment, source: str, path: Path) -> nodes.Template:
    """Parse template text; a syntax error becomes a TemplateError with file and line."""
    try:
        return env.parse(source, name=path.stem, filename=str(path))
    except jinja2.TemplateSyntaxError as ex:
        raise _syntax_error(path, ex) from ex


def _syntax_error(path: Path, ex: jinja2.TemplateSyntaxError) -> TemplateError:
    return TemplateError(f"{path}:{ex.lineno}: template syntax error: {ex.message}.")


def fields_of(body: list[nodes.Node], env: jinja2.Environment) -> frozenset[str]:
    """Names a block reads from the row (globals such as range() are not fields)."""
    tree = nodes.Template(body)
    tree.set_environment(env)
    names = meta.find_undeclared_variables(tree)
    return frozenset(n for n in names if n not in env.globals)


def _strip_block_edges(block: nodes.Block) -> None:
    # Lets authors put block tags on their own lines without the newlines leaking into
    # the prompt; only literal template text is stripped, never a field's value.
    first = _edge_data(block.body, 0)
    if first is not None:
        first.data = first.data.lstrip()
    last = _edge_data(block.body, -1)
    if last is not None:
        last.data = last.data.rstrip()


def _edge_data(body: list[nodes.Node], end: int) -> nodes.TemplateData | None:
    statement = body[end] if body else None
    if not isinstance(statement, nodes.Output) or not statement.nodes:
        return None
    node = statement.nodes[end]
    return node if isinstance(node, nodes.TemplateData) else None


def fast_plan(body: list[nodes.Node]) -> Plan | None:
    """The block as literal text and field lookups, or None when it needs real Jinja."""
    plan: Plan = []
    for statement in body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                plan.append(("text", node.data))
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                plan.append(("field", node.name))
            else:
                return None
    return plan

"""Import promptsource templates (``templates.yaml``) as a pack, and render them its way.

promptsource's ``Template.apply`` with its defaults: every ``}}`` gets ``| string |
truncate(2048)``, ``|||`` inside string fields is protected, ``answer_choices`` is rendered,
split on ``|||``, stripped and passed in as a list (None without choices), the whole body is
rendered once and split on ``|||``, each part stripped. We reproduce exactly that, inside our
sandbox with StrictUndefined; imported files keep the original Jinja body, one per template.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import meta

from instructkit.artifacts.dataset import atomic_output_dir
from instructkit.errors import TemplateError
from instructkit.output_guard import IMPORTED_PACK_MARK
from instructkit.render.templates import CompiledTemplate, TemplateSpec, read_utf8, yaml_error
from instructkit.sandbox import BoundedSandbox, TemplateLimit, bounded_join

TEXT_VAR_LENGTH = 2048
SEPARATOR = "|||"
_PIPE_PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0"


class _Loader(yaml.SafeLoader):
    """Reads promptsource's !Template / !TemplateMetadata tags as plain mappings."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    return {str(k): v for k, v in loader.construct_mapping(node, deep=True).items()}


_Loader.add_constructor("!Template", _mapping)
_Loader.add_constructor("!TemplateMetadata", _mapping)


def read_promptsource_yaml(path: str | Path) -> dict[str, Any]:
    """The parsed templates.yaml: {'dataset': ..., 'templates': {uuid: {...}}}."""
    try:
        data = yaml.load(read_utf8(Path(path)), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except OSError as ex:
        raise TemplateError(f"Cannot read promptsource file '{path}': {ex.strerror}.") from ex
    except yaml.YAMLError as ex:
        raise TemplateError(yaml_error(path, ex, "fix the promptsource file")) from ex
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise TemplateError(f"'{path}' is not a promptsource templates.yaml (no 'templates').")
    return data


def import_promptsource(
    yaml_path: str | Path,
    out_dir: str | Path,
    task: str | None = None,
    source: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a pack directory holding every template of a promptsource templates.yaml.

    The pack appears whole or not at all; an existing ``out_dir`` needs ``overwrite``.
    """
    data = read_promptsource_yaml(yaml_path)
    out = Path(out_dir)
    task = task or str(data.get("dataset", out.name)).replace("/", "_")
    with atomic_output_dir(out, overwrite, "pack", [yaml_path]) as tmp:
        _write_pack(data, tmp, task, source)
    return out


def _write_pack(data: dict[str, Any], out: Path, task: str, source: str | None) -> None:
    entries: dict[str, dict[str, Any]] = {}
    for template in data["templates"].values():
        template = template if isinstance(template, dict) else {}
        template_id = _unique_slug(str(template.get("name", "template")), entries)
        metadata = template.get("metadata") or {}
        entry: dict[str, Any] = {
            "kind": "inverted" if metadata.get("original_task") is False else "original",
            "format": "promptsource",
        }
        if template.get("answer_choices") is not None:
            entry["answer_choices"] = template["answer_choices"]
        entries[template_id] = entry
        body = template.get("jinja")
        if not isinstance(body, str):
            raise TemplateError(
                f"Template '{template_id}' of the promptsource file has no 'jinja' text: "
                f"fix or remove it."
            )
        if body.count(SEPARATOR) > 1:
            tail = body.split(SEPARATOR, 2)[2].strip()
            raise TemplateError(
                f"Template '{template_id}' of the promptsource file has "
                f"{body.count(SEPARATOR)} '{SEPARATOR}' separators: promptsource drops the text "
                f"after the second ({tail[:30]!r}). Keep one separator (prompt {SEPARATOR} "
                f"completion) and import again."
            )
        (out / f"{template_id}.jinja").write_text(body, encoding="utf-8")
    # T0 and lm-evaluation-harness join a promptsource input and its target with a space
    pack = {
        "task": task,
        "source": source,
        "metrics": ["rouge"],
        "separator": " ",
        "templates": entries,
    }
    (out / "pack.yaml").write_text(
        f"{IMPORTED_PACK_MARK} from a promptsource file.\n"
        + yaml.safe_dump(pack, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )


def _unique_slug(name: str, taken: dict[str, Any]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "template"
    candidate, n = slug, 2
    while candidate in taken:
        candidate, n = f"{slug}_{n}", n + 1
    return candidate


def _choice(choices: list[Any]) -> Any:
    # promptsource picks at random; seeding by the choices keeps shards reproducible.
    return random.Random(repr(choices)).choice(choices)


def _most_frequent(items: list[Any]) -> list[Any] | None:
    if not items:
        return None
    counts = Counter(items).most_common()
    return [item for item, count in counts if count == counts[0][1]]


def promptsource_environment() -> jinja2.Environment:
    """promptsource's Jinja settings (no block trimming) inside our sandbox, strict."""
    from instructkit.plugins import load_plugins

    env = BoundedSandbox(undefined=jinja2.StrictUndefined, finalize=None)
    env.globals["zip"] = zip
    env.filters["choice"] = _choice
    env.filters["most_frequent"] = _most_frequent
    load_plugins().hook.prepare_jinja2_environment(env=env)
    return env


class PromptsourceRenderer:
    """``Template.apply(example)`` of promptsource, for one template."""

    def __init__(self, env: jinja2.Environment, spec: TemplateSpec) -> None:
        truncating = spec.source.replace("}}", f" | string | truncate({TEXT_VAR_LENGTH}) }}}}")
        try:
            self.body = env.from_string(truncating)
            self.choices = env.from_string(spec.answer_choices) if spec.answer_choices else None
        except jinja2.TemplateSyntaxError as ex:
            message = f"{spec.path}:{ex.lineno}: template syntax error: {ex.message}."
            raise TemplateError(message) from ex
        self.fields = (
            frozenset(meta.find_undeclared_variables(env.parse(spec.source)))
            - set(env.globals)
            - {"answer_choices"}
        )

    def apply(self, row: Mapping[str, Any]) -> tuple[str, str]:
        if "answer_choices" in row:
            raise TemplateError(
                "A row has a field named 'answer_choices', which promptsource reserves."
            )
        protected = {k: _protect(v) for k, v in row.items()}
        protected["answer_choices"] = self._answer_choices(protected)
        text = bounded_join(self.body.generate(**protected))
        parts = [_unprotect(p).strip() for p in text.split(SEPARATOR)]
        if len(parts) > 2 and any(parts[2:]):
            raise TemplateLimit(
                f"its output has {len(parts) - 1} '{SEPARATOR}' separators, so the text after "
                f"the second ({parts[2][:30]!r}) would be dropped: keep one separator"
            )
        return parts[0], parts[1] if len(parts) > 1 else ""

    def _answer_choices(self, protected: dict[str, Any]) -> list[str] | None:
        if self.choices is None:
            return None
        rendered = self.choices.render(**protected)
        return [_unprotect(choice.strip()) for choice in rendered.split(SEPARATOR)]


def _protect(value: Any) -> Any:
    return value.replace(SEPARATOR, _PIPE_PROTECTOR) if isinstance(value, str) else value


def _unprotect(text: str) -> str:
    return text.replace(_PIPE_PROTECTOR, SEPARATOR)


def compile_promptsource(
    spec: TemplateSpec, task: str, env: jinja2.Environment
) -> CompiledTemplate:
    """A CompiledTemplate that renders through promptsource's apply semantics."""
    renderer = PromptsourceRenderer(promptsource_environment(), spec)
    return CompiledTemplate(
        spec=spec,
        template_id=spec.id,
        kind=spec.kind,
        task=task,
        jinja=renderer.body,
        fields={"prompt": renderer.fields, "completion": frozenset()},
        plans={"prompt": None, "completion": None},
        row_renderer=renderer,
    )

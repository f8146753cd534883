"""Template packs as lm-evaluation-harness tasks (no harness needed to export).

:func:`export_pack` writes one harness task YAML per phrasing of
a pack — ``doc_to_text`` / ``doc_to_target`` are the template's own Jinja blocks — plus the raw
rows of a split as JSONL (``dataset_path: json``, so the task runs offline) and a small
``instructkit_lm_eval_utils.py`` that scores generations with ROUGE-L against every reference
(``max``, as ``instructkit evaluate`` does) and exact match. Our packs render with
``trim_blocks`` and ``lstrip_blocks`` and strip each block's edges; the harness renders with a
plain Jinja environment, so the block text is rewritten to render the same there, and every
exported phrasing is checked by rendering the exported rows both ways: an export never drifts
from the pack silently.

Inside the harness, prompting is the harness's: the template text as is (as ``instructkit
train`` feeds string rows to a causal model), no chat template unless the harness is asked for
one, and generation stops at a blank line or eos. Scores can differ from ``instructkit
evaluate``'s for that reason (bos handling, stop sequences, the tokenizer's chat template).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.errors import OptionsError, TemplateError

UTILS_MODULE = "instructkit_lm_eval_utils"
VARIANTS_FIELD = "instructkit_variants"
TASK_PREFIX = "instructkit"

_UTILS_SOURCE = '''"""Scoring for tasks exported by 'instructkit templates lm-eval'.

ROUGE-L (max over references) and exact match, the way 'instructkit evaluate' scores them.
Generated: do not edit."""

import re

import jinja2

COMPLETIONS = {completions}
VARIANTS_FIELD = "{variants_field}"
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_SCORER = None


def _references(doc, template_id):
    """The template's completion rendered for every reference variant of the row."""
    template = _ENV.from_string(COMPLETIONS[template_id])
    variants = doc.get(VARIANTS_FIELD) or {{}}
    count = max((len(v) for v in variants.values()), default=0)
    if not count:
        return [template.render(**doc)]
    rows = []
    for index in range(count):
        row = dict(doc)
        for name, values in variants.items():
            if index < len(values) and values[index] is not None:
                row[name] = values[index]
        rows.append(template.render(**row))
    return list(dict.fromkeys(rows))


def _normalize(text):
    return re.sub(r"\\s+", " ", text).strip().casefold()


def score(doc, results, template_id):
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    prediction = results[0].strip()
    references = _references(doc, template_id)
    rouge = max(_SCORER.score(ref, prediction)["rougeL"].fmeasure for ref in references)
    exact = any(_normalize(prediction) == _normalize(ref) for ref in references)
    return {{"rougeL": 100.0 * rouge, "exact_match": 100.0 if exact else 0.0}}

{functions}
'''


# ---------------------------------------------------------------- Jinja for the harness


_BLOCK = re.compile(
    r"\{%-?\s*block\s+(\w+)\s*[-+]?%\}(.*?)\{%-?\s*endblock(?:\s+\w+)?\s*[-+]?%\}", re.S
)


def block_sources(source: str) -> dict[str, str]:
    """The raw text of each ``{% block NAME %}...{% endblock %}`` of a template file."""
    return {match.group(1): match.group(2) for match in _BLOCK.finditer(source)}


def harness_jinja(block: str) -> str:
    """Block text that renders in a plain Jinja environment as our pack environment renders it.

    Applies what ``lstrip_blocks`` (spaces before a tag that starts a line) and ``trim_blocks``
    (the newline after a tag) do, then strips the block's edges as packs do.
    """
    text = re.sub(r"(^|\n)[ \t]+(?=\{[%#](?!\+))", r"\1", block)
    text = re.sub(r"(?<!\+)([%#]\})\n", r"\1", text)
    return text.strip()


def _harness_env() -> Any:
    import jinja2

    # what lm_eval.utils.apply_template uses
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


# ---------------------------------------------------------------- export


@dataclass
class HarnessExport:
    """What :func:`export_pack` wrote: one YAML per phrasing, their tag, the data and utils."""

    tasks: list[Path]
    tag: str
    data: Path
    utils: Path


def export_pack(
    source: str,
    out: str | os.PathLike[str],
    data_dir: str | None = None,
    data_files: Mapping[str, str] | None = None,
    templates: str | None = None,
    split: str = "test",
    template_ids: Sequence[str] | None = None,
    max_rows: int | None = None,
    max_gen_toks: int = 128,
) -> HarnessExport:
    """Write harness task YAMLs for a pack's phrasings, the split's rows and the scoring utils.

    ``source``/``data_dir``/``data_files``/``templates`` name the data and the pack as
    ``instructkit render`` does. Only ``kind: original`` phrasings are exported unless
    ``template_ids`` names others.
    """
    from instructkit.render.formats import compile_pack
    from instructkit.render.run import RenderOptions, resolve

    options = RenderOptions(
        templates=templates, data_dir=data_dir, data_files=dict(data_files) if data_files else None
    )
    raw, pack = resolve(source, options)
    if split not in raw.splits:
        raise OptionsError(
            f"Split '{split}' not found in the data: it has {', '.join(raw.splits)}."
        )
    raw_split = raw.splits[split]
    specs = {spec.id: spec for spec in pack.templates}
    compiled = {c.template_id: c for c in compile_pack(pack)}
    chosen = (
        list(template_ids)
        if template_ids
        else [s.id for s in pack.templates if s.kind == "original"]
    )
    for template_id in chosen:
        pack.template(template_id)  # fails, listing the ids, on an unknown one
        if specs[template_id].format != "blocks":
            raise TemplateError(
                f"Template '{template_id}' is in promptsource format: only block templates "
                f"export to harness Jinja."
            )
    rows = _export_rows(raw_split, max_rows)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    data_path = (root / f"{pack.task}.{split}.jsonl").resolve()
    with open(data_path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    env = _harness_env()
    written, completions = [], {}
    for template_id in chosen:
        blocks = block_sources(specs[template_id].source)
        if "prompt" not in blocks or "completion" not in blocks:
            raise TemplateError(f"Template '{template_id}' has no prompt or completion block.")
        prompt, completion = harness_jinja(blocks["prompt"]), harness_jinja(blocks["completion"])
        _check_same_rendering(compiled.get(template_id), env, prompt, completion, rows, template_id)
        completions[template_id] = completion
        name = f"{TASK_PREFIX}_{pack.task}_{template_id}"
        config = {
            "task": name,
            "tag": [f"{TASK_PREFIX}_{pack.task}"],
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {split: str(data_path)}},
            "test_split": split,
            "output_type": "generate_until",
            # the join lives in the data: render ends every text prompt with the separator
            "doc_to_text": prompt + _jinja_literal(pack.separator),
            "doc_to_target": completion,
            "target_delimiter": "",
            "generation_kwargs": {"until": ["\n\n"], "do_sample": False,
                                  "max_gen_toks": max_gen_toks},
            "metric_list": [
                {"metric": "rougeL", "aggregation": "mean", "higher_is_better": True},
                {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0, "instructkit_pack": pack.task,
                         "instructkit_template": template_id,
                         "instructkit_template_sha256": specs[template_id].sha256},
        }  # fmt: skip
        path = root / f"{name}.yaml"
        path.write_text(_task_yaml(config, template_id), encoding="utf-8")
        written.append(path)
    functions = "\n".join(
        f"\ndef process_results_{_identifier(t)}(doc, results):\n"
        f"    return score(doc, results, {t!r})\n"
        for t in completions
    )
    (root / f"{UTILS_MODULE}.py").write_text(
        _UTILS_SOURCE.format(
            completions=repr(completions), variants_field=VARIANTS_FIELD, functions=functions
        ),
        encoding="utf-8",
    )
    return HarnessExport(
        written, f"{TASK_PREFIX}_{pack.task}", data_path, root / f"{UTILS_MODULE}.py"
    )


def _identifier(template_id: str) -> str:
    return re.sub(r"\W", "_", template_id)


def _task_yaml(config: dict[str, Any], template_id: str) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text_block(dumper: Any, data: str) -> Any:
        # multi-line Jinja reads best as a literal block, exactly as written in the pack
        style = "|" if "\n" in data and data.strip() == data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text_block)
    text = yaml.dump(config, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1000)
    # the harness's custom tag for a Python function, which safe_dump cannot write
    return (
        "# Exported by 'instructkit templates lm-eval': the pack's phrasing as a harness task.\n"
        + text
        + f"process_results: !function {UTILS_MODULE}.process_results_{_identifier(template_id)}\n"
    )


def _export_rows(raw_split: Any, max_rows: int | None) -> list[dict[str, Any]]:
    """Raw rows with aliases applied, and each reference field's variants."""
    rows: list[dict[str, Any]] = []
    for table in raw_split.batches(1024):
        for row in table.to_pylist():
            record = {k: v for k, v in row.items() if not k.startswith("__")}
            variants = {
                field: [row.get(column) for column in columns]
                for field, columns in raw_split.references.items()
            }
            if variants:
                record[VARIANTS_FIELD] = variants
            rows.append(record)
            if max_rows is not None and len(rows) >= max_rows:
                return rows
    return rows


def _check_same_rendering(
    compiled: Any, env: Any, prompt: str, completion: str, rows: list[dict[str, Any]],
    template_id: str,
) -> None:  # fmt: skip
    """Render exported rows with the pack and with the harness's Jinja: they must agree."""
    import jinja2

    if compiled is None:
        return
    for number, row in enumerate(rows[:200], start=1):
        expected = compiled.render_row(row, where=f"row {number}")
        try:
            got = (env.from_string(prompt).render(**row), env.from_string(completion).render(**row))
        except jinja2.TemplateError as ex:
            raise TemplateError(
                f"Template '{template_id}' does not render in the harness's plain Jinja "
                f"environment ({ex}): it uses a filter or feature only instructkit provides."
            ) from ex
        if got != tuple(expected):
            raise TemplateError(
                f"Template '{template_id}' renders differently in the harness on row {number}: "
                f"its whitespace control needs a manual export ({got[0][:60]!r} vs "
                f"{expected[0][:60]!r})."
            )


def _jinja_literal(text: str) -> str:
    """``text`` as Jinja source that renders to itself."""
    if any(mark in text for mark in ("{", "}", "%", "#")):
        return "{% raw %}" + text + "{% endraw %}"
    return text

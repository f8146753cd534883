"""Text for the terminal: the render summary table, previews and pack listings."""

from __future__ import annotations

from typing import Any

from instructkit.render.formats import compile_pack
from instructkit.render.run import RenderOptions, RenderResult, resolve, templates_for_split
from instructkit.render.templates import list_packs, load_pack


def summary_table(result: RenderResult) -> str:
    """Rows per split and template, skipped rows, truncations, time and throughput."""
    lines = [f"Rendered task '{result.task}' into {result.out}", ""]
    lines.append(f"{'split':<12}{'template':<32}{'rows':>8}{'truncated':>11}")
    for report in result.splits:
        for tid in report.templates:
            truncated = report.truncated.get(tid, 0)
            lines.append(f"{report.name:<12}{tid:<32}{report.counts.get(tid, 0):>8}{truncated:>11}")
        skipped = {k: v for k, v in report.skipped.items() if v}
        skipped_text = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"
        lines.append(f"{report.name:<12}{'(total)':<32}{report.info.num_rows:>8}"
                     f"   skipped: {skipped_text}")  # fmt: skip
    lines += _length_lines(result)
    lines += _empty_prompt_lines(result) + _empty_completion_lines(result)
    lines.append("")
    lines.append(
        f"{result.num_rows} rows in {result.seconds:.2f} s ({result.rows_per_second:,.0f} rows/s)"
    )
    return "\n".join(lines)


def _empty_prompt_lines(result: RenderResult) -> list[str]:
    empty = [(r.name, tid, n) for r in result.splits for tid, n in sorted(r.empty_prompts.items())]
    if not empty:
        return []
    total = sum(n for _, _, n in empty)
    where = ", ".join(f"{split}/{tid} {n}" for split, tid, n in empty)
    return [
        "",
        f"Warning: {total} prompt(s) rendered empty ({where}): check the template "
        f"('instructkit templates lint'), or pass --on-empty fail to stop on them.",
    ]


def _empty_completion_lines(result: RenderResult) -> list[str]:
    empty = [
        (r.name, tid, n) for r in result.splits for tid, n in sorted(r.empty_completions.items())
    ]
    if not empty:
        return []
    total = sum(n for _, _, n in empty)
    where = ", ".join(f"{split}/{tid} {n}" for split, tid, n in empty)
    return [
        "",
        f"Warning: {total} empty completion(s) written ({where}): a model trained on them "
        f"learns to say nothing. Check the template and the data, or pass --on-empty fail.",
    ]


def _length_lines(result: RenderResult) -> list[str]:
    stats = result.manifest.get("length_stats") or {}
    if not stats:
        return []
    lines = ["", "tokens (min/median/p95/max)  prompt | completion"]
    for split, per_template in stats.items():
        for tid, parts in per_template.items():
            lines.append(
                f"{split:<12}{tid:<32}{_fmt(parts['prompt'])} | {_fmt(parts['completion'])}"
            )
    return lines


def _fmt(stats: dict[str, Any]) -> str:
    if not stats:
        return "-"
    return f"{stats['min']}/{stats['median']:g}/{stats['p95']:g}/{stats['max']}"


def preview(source: str, split: str, rows: int, template_id: str | None, **options: Any) -> str:
    """Render the first ``rows`` rows of ``split`` through each template (or one)."""
    opts = RenderOptions(**options)
    raw, pack = resolve(source, opts)
    if split not in raw.splits:
        from instructkit.errors import SourceError

        raise SourceError(f"Unknown split '{split}': '{source}' has {', '.join(raw.splits)}.")
    templates = compile_pack(pack)
    if template_id is not None:
        pack.template(template_id)
        templates = [t for t in templates if t.template_id == template_id]
    else:
        templates = templates_for_split(split, templates, RenderOptions(eval_inverted=True))
    table = next(raw.splits[split].batches(rows), None)
    out = []
    for index, row in enumerate(table.to_pylist() if table is not None else []):
        for template in templates:
            prompt, completion = template.render_row(row, f"row {split}[{index}]")
            title = f"===== {split}[{index}] {pack.task}/{template.template_id} ({template.kind})"
            out.append(f"{title} =====\n{prompt}\n----- completion -----\n{completion}\n")
    return "\n".join(out) if out else f"Split '{split}' is empty.\n"


def pack_list() -> str:
    """One line per pack on the search path: name, template count, source, description."""
    lines = []
    for path in list_packs():
        pack = load_pack(path)
        inverted = sum(t.kind == "inverted" for t in pack.templates)
        lines.append(
            f"{pack.task:<18}{len(pack.templates):>3} templates ({inverted} inverted)  "
            f"source: {pack.source or '-':<10} {pack.description}"
        )
    return "\n".join(lines) or "No template packs found (see INSTRUCTKIT_TEMPLATES_PATH)."


def pack_details(name: str) -> str:
    """A pack's metadata and every template's text."""
    pack = load_pack(name)
    templates = compile_pack(pack)
    head = [
        f"task: {pack.task}",
        f"path: {pack.path}",
        f"source: {pack.source or '-'}",
        f"metrics: {', '.join(pack.metrics)}",
        f"trim_field: {pack.trim_field or '-'}",
        "",
    ]
    body = []
    for compiled in templates:
        fields = ", ".join(sorted(compiled.all_fields))
        fast = "yes" if all(compiled.plans.values()) and not compiled.whole_row else "no"
        body.append(
            f"--- {compiled.template_id} ({compiled.kind}; fields: {fields}; fast path: {fast})\n"
            f"{compiled.spec.source.rstrip()}\n"
        )
    return "\n".join(head + body)

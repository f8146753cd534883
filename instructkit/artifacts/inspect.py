"""Describe an instructkit dataset: splits, rows per task, and a mixture's composition."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.manifest import load_manifest
from instructkit.errors import DatasetDirError


def inspect_dataset(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarise a dataset directory: kind, rows per split and per task, and its manifest."""
    splits: dict[str, int] = {}
    tasks: dict[str, dict[str, int]] = {}
    for split in artifact.list_splits(path):
        table = artifact.open_split(path, split)
        splits[split] = table.num_rows
        if "task" in table.column_names:
            counts = pc.value_counts(table["task"]).to_pylist()
            tasks[split] = {str(c["values"]): int(c["counts"]) for c in counts}
    manifest = load_manifest(path).data
    kind = manifest.get("kind") or ("dataset" if manifest else "plain DatasetDict")
    return {"path": str(path), "kind": kind, "splits": splits, "tasks": tasks, "manifest": manifest}


def format_inspection(info: dict[str, Any]) -> str:
    """The summary as text: a header, rows per split x task, and for a mixture its quotas."""
    lines = [f"{info['path']}: {info['kind']}"]
    manifest = info["manifest"]
    for key in ("task", "form", "instructkit_version", "seed", "epoch", "total"):
        if key in manifest and manifest[key] is not None:
            lines.append(f"  {key}: {manifest[key]}")
    task_names = sorted({t for per in info["tasks"].values() for t in per})
    headers = ["split", "rows", *task_names]
    rows = [
        [split, n, *(info["tasks"].get(split, {}).get(t, 0) for t in task_names)]
        for split, n in info["splits"].items()
    ]
    lines += ["", format_table(headers, rows)]
    if manifest.get("kind") == "mix":
        lines += ["", _mixture_table(manifest)]
    return "\n".join(lines)


def _mixture_table(manifest: dict[str, Any]) -> str:
    headers = ["task", "rule", "available", "target", "quota", "realized", "repeat", "metrics"]
    rows = [
        [
            t["name"],
            t["rule"],
            t["available"],
            f"{t['target_share']:.2%}",
            t["quota"],
            f"{t['realized_share']:.2%}",
            f"x{t['repetition']:.2f}",
            ",".join(t.get("metrics") or []) or "-",
        ]
        for t in manifest.get("tasks", [])
    ]
    deviation = (manifest.get("prefix_deviation") or {}).get("max")
    tail = f"\nmax prefix error: {deviation:.2f} rows (bound 1)" if deviation is not None else ""
    return format_table(headers, rows) + tail


# A chart shows at most this many tasks: the largest, in their order, then one "other" bar
# for the rest. One bar per task at 500 tasks drew a 66,000-pixel-wide PNG in ~10-20 s.
CHART_TASKS = 20


def write_composition_chart(info: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """A PNG bar chart: target vs realized train share per task (rows per split otherwise).

    Past CHART_TASKS tasks, the CHART_TASKS largest (by target share, or by rows) are drawn in
    their own order and the rest are summed into one ``other (N tasks)`` bar.
    """
    artifact.check_output_file(path).parent.mkdir(parents=True, exist_ok=True)
    if info["manifest"].get("kind") == "mix":
        _mixture_chart(info["manifest"], path)
    else:
        _rows_chart(info, path)
    return Path(path)


def _mixture_chart(manifest: dict[str, Any], path: str | os.PathLike[str]) -> None:
    from instructkit.charts import grouped_bar_chart

    tasks = manifest["tasks"]
    names, series = fold_small_categories(
        [t["name"] for t in tasks],
        {
            "target %": [100 * t["target_share"] for t in tasks],
            "realized %": [100 * t["realized_share"] for t in tasks],
        },
        [t["target_share"] for t in tasks],
    )
    shown = "" if len(names) == len(tasks) else f", {CHART_TASKS} largest of {len(tasks)} tasks"
    grouped_bar_chart(
        path,
        names,
        series,
        title=f"Mixture composition ({manifest['total']} train rows{shown})",
        ylabel="share of train rows (%)",
    )


def _rows_chart(info: dict[str, Any], path: str | os.PathLike[str]) -> None:
    from instructkit.charts import grouped_bar_chart

    names = sorted({t for per in info["tasks"].values() for t in per})
    if not names:
        raise DatasetDirError(f"'{info['path']}' has no 'task' column to chart.")
    series: dict[str, Sequence[float]] = {
        s: [info["tasks"][s].get(t, 0) for t in names] for s in info["tasks"]
    }
    sizes = [sum(values[i] for values in series.values()) for i in range(len(names))]
    shown_names, shown = fold_small_categories(names, series, sizes)
    title = "Rows per task"
    if len(shown_names) < len(names):
        title += f" ({CHART_TASKS} largest of {len(names)} tasks)"
    grouped_bar_chart(path, shown_names, shown, title=title, ylabel="rows")


def fold_small_categories(
    names: Sequence[str],
    series: dict[str, Sequence[float]],
    sizes: Sequence[float],
    limit: int | None = None,
) -> tuple[list[str], dict[str, Sequence[float]]]:
    """Keep the ``limit`` largest categories (ties: the earlier one) in their order and sum
    the rest into one last ``other (N tasks)`` category; everything when there are few."""
    limit = CHART_TASKS if limit is None else limit
    if len(names) <= limit:
        return list(names), series
    largest = sorted(range(len(names)), key=lambda i: (-sizes[i], i))[:limit]
    keep = sorted(largest)
    rest = sorted(set(range(len(names))) - set(keep))
    folded = [names[i] for i in keep] + [f"other ({len(rest)} tasks)"]
    return folded, {
        label: [values[i] for i in keep] + [sum(values[i] for i in rest)]
        for label, values in series.items()
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table: left-aligned text, right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and rows for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

"""Hand a rendered or mixed dataset to the rest of the ecosystem, in the formats they read.

One file per split (``train.jsonl``, ``test.parquet``, ...) in one of these row shapes:

- ``jsonl`` / ``parquet``: our rows as they are (TRL's *prompt-completion* format: ``prompt``,
  ``completion`` strings, plus ``references``, ``task`` and the other lineage columns);
- ``conversational``: TRL's conversational prompt-completion, ``prompt`` and ``completion`` as
  message lists (``[{"role": "user", "content": ...}]`` / ``[{"role": "assistant", ...}]``);
- ``messages``: one ``messages`` list, user then assistant (TRL conversational language
  modeling, OpenAI's chat format, axolotl's and LLaMA-Factory's ``messages``);
- ``alpaca``: ``instruction``, ``input`` (empty: our prompt is the whole instruction), ``output``;
- ``sharegpt``: ``conversations``: ``[{"from": "human", ...}, {"from": "gpt", ...}]``.

Beside the data: ``dataset_info.json`` (LLaMA-Factory: point ``dataset_dir`` at the folder,
``dataset: NAME``), ``axolotl.yaml`` (a ``datasets:`` entry), and ``README.md``, a dataset card
whose YAML front matter lists each split's file (so the hub's loader and viewer use them after
an upload) and whose body carries the manifest's lineage. ``instructkit.json`` records the
export: format, files with row counts and hashes, and the source manifest verbatim.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from instructkit.artifacts.dataset import (
    atomic_output_dir,
    list_splits,
    open_split,
    require_columns,
)
from instructkit.artifacts.manifest import load_manifest, write_manifest
from instructkit.checksums import file_sha256
from instructkit.errors import OptionsError

FORMATS = ("jsonl", "parquet", "conversational", "messages", "alpaca", "sharegpt")
FILE_TYPES = ("jsonl", "parquet")
BATCH_ROWS = 4096

Row = dict[str, Any]

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_TURN = pa.struct([("from", pa.string()), ("value", pa.string())])


def _user(text: str) -> Row:
    return {"role": "user", "content": text}


def _assistant(text: str) -> Row:
    return {"role": "assistant", "content": text}


@dataclass(frozen=True)
class Shape:
    """A row shape: how one of our rows becomes one of theirs, and its Arrow schema."""

    convert: Callable[[Row], Row] | None  # None: our rows as they are
    schema: pa.Schema | None
    llamafactory: dict[str, Any] | None  # dataset_info.json fields, None when it reads no such
    axolotl: dict[str, Any] | None  # the datasets: entry's fields beyond path and files


SHAPES: dict[str, Shape] = {
    "prompt-completion": Shape(
        None,
        None,
        {"formatting": "alpaca", "columns": {"prompt": "prompt", "response": "completion"}},
        {
            "type": {
                "field_instruction": "prompt",
                "field_output": "completion",
                "format": "{instruction}",
                "no_input_format": "{instruction}",
            }
        },
    ),
    "conversational": Shape(
        lambda r: {"prompt": [_user(r["prompt"])], "completion": [_assistant(r["completion"])]},
        pa.schema([("prompt", pa.list_(_MESSAGE)), ("completion", pa.list_(_MESSAGE))]),
        None,
        None,
    ),
    "messages": Shape(
        lambda r: {"messages": [_user(r["prompt"]), _assistant(r["completion"])]},
        pa.schema([("messages", pa.list_(_MESSAGE))]),
        {
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
            },
        },
        {
            "type": "chat_template",
            "field_messages": "messages",
            "message_property_mappings": {"role": "role", "content": "content"},
        },
    ),
    "alpaca": Shape(
        lambda r: {"instruction": r["prompt"], "input": "", "output": r["completion"]},
        pa.schema([("instruction", pa.string()), ("input", pa.string()), ("output", pa.string())]),
        {
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"},
        },
        {"type": "alpaca"},
    ),
    "sharegpt": Shape(
        lambda r: {
            "conversations": [
                {"from": "human", "value": r["prompt"]},
                {"from": "gpt", "value": r["completion"]},
            ]
        },
        pa.schema([("conversations", pa.list_(_TURN))]),
        {
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
            },
        },
        {
            "type": "chat_template",
            "field_messages": "conversations",
            "message_property_mappings": {"role": "from", "content": "value"},
            "roles": {"user": ["human"], "assistant": ["gpt"]},
        },
    ),
}


def shape_of(fmt: str) -> Shape:
    return SHAPES["prompt-completion" if fmt in FILE_TYPES else fmt]


@dataclass
class ExportResult:
    out: Path
    name: str
    format: str
    file_type: str
    files: dict[str, Row] = field(default_factory=dict)  # split -> {path, num_rows, sha256}


def resolve_file_type(fmt: str, file_type: str | None) -> str:
    """``jsonl``/``parquet`` name their file type; the other shapes default to JSONL."""
    if fmt not in FORMATS:
        raise OptionsError(f"Unknown format '{fmt}': choose one of {', '.join(FORMATS)}.")
    if fmt in FILE_TYPES:
        if file_type not in (None, fmt):
            raise OptionsError(
                f"--format {fmt} writes {fmt} files: drop --file-type {file_type}, or use "
                f"--format {file_type}."
            )
        return fmt
    if file_type is not None and file_type not in FILE_TYPES:
        raise OptionsError(f"Unknown file type '{file_type}': choose jsonl or parquet.")
    return file_type or "jsonl"


def export_dataset(
    dataset_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: str = "jsonl",
    file_type: str | None = None,
    splits: list[str] | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``dataset_dir``'s splits to ``out`` in ``fmt``, with the consumers' config files."""
    kind = resolve_file_type(fmt, file_type)
    available = list_splits(dataset_dir)
    chosen = splits or available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise OptionsError(
            f"Split '{unknown[0]}' not found in '{dataset_dir}': it has {', '.join(available)}."
        )
    manifest = load_manifest(dataset_dir)
    result = ExportResult(Path(out), name or _default_name(dataset_dir), fmt, kind)
    shape = shape_of(fmt)
    with atomic_output_dir(out, overwrite, "export", [dataset_dir]) as tmp:
        for split in chosen:
            table = open_split(dataset_dir, split)
            require_columns(table, ("prompt", "completion"), f"Split '{split}'")
            filename = f"{split}.{kind}"
            _write_split(table, shape, tmp / filename, kind)
            result.files[split] = {
                "path": filename,
                "num_rows": table.num_rows,
                "sha256": file_sha256(tmp / filename),
            }
        _write_consumer_files(tmp, result, shape)
        (tmp / "README.md").write_text(dataset_card(result, manifest.data), encoding="utf-8")
        write_manifest(tmp, _export_record(result, dataset_dir, manifest.data))
    return result


def _default_name(dataset_dir: str | os.PathLike[str]) -> str:
    name = Path(dataset_dir).resolve().name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dataset"


def _batches(table: pa.Table, shape: Shape) -> Iterator[pa.Table]:
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        if shape.convert is None:
            yield pa.Table.from_batches([batch])
        else:
            rows = [shape.convert(row) for row in batch.to_pylist()]
            yield pa.Table.from_pylist(rows, schema=shape.schema)


def _write_split(table: pa.Table, shape: Shape, path: Path, file_type: str) -> None:
    schema = shape.schema or table.schema.remove_metadata()
    if file_type == "parquet":
        with pq.ParquetWriter(path, schema) as writer:
            for piece in _batches(table, shape):
                writer.write_table(piece.cast(schema))
        return
    with path.open("w", encoding="utf-8") as handle:
        for piece in _batches(table, shape):
            for row in piece.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")


# ---------------------------------------------------------------- consumers' files


def llamafactory_info(result: ExportResult, shape: Shape) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json``: ``NAME`` is train, ``NAME_SPLIT`` the others."""
    if shape.llamafactory is None:
        return {}
    info = {}
    for split, record in result.files.items():
        key = result.name if split == "train" else f"{result.name}_{split}"
        info[key] = {"file_name": record["path"], **shape.llamafactory}
    return info


def axolotl_entries(result: ExportResult, shape: Shape, where: str) -> list[dict[str, Any]]:
    """axolotl ``datasets:`` entries for the train split (its eval set comes from test_datasets)."""
    if shape.axolotl is None or "train" not in result.files:
        return []
    data_file = f"{where}/{result.files['train']['path']}"
    ds_type = "json" if result.file_type == "jsonl" else result.file_type
    return [{"path": data_file, "ds_type": ds_type, **shape.axolotl}]


def _write_consumer_files(tmp: Path, result: ExportResult, shape: Shape) -> None:
    import yaml

    info = llamafactory_info(result, shape)
    if info:
        (tmp / "dataset_info.json").write_text(json.dumps(info, indent=2, allow_nan=False) + "\n")
    entries = axolotl_entries(result, shape, str(result.out.resolve()))
    if entries:
        text = yaml.safe_dump({"datasets": entries}, sort_keys=False, allow_unicode=True)
        header = "# axolotl: paste into your config (the path is where this export was written)\n"
        (tmp / "axolotl.yaml").write_text(header + text, encoding="utf-8")


def _export_record(
    result: ExportResult, source: str | os.PathLike[str], manifest: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": "export",
        "format": result.format,
        "file_type": result.file_type,
        "name": result.name,
        "files": result.files,
        "source": {"path": str(Path(source).resolve()), "manifest": manifest},
    }


# ---------------------------------------------------------------- the dataset card


def dataset_card(result: ExportResult, manifest: dict[str, Any]) -> str:
    """README.md: HF dataset-card front matter (a config per split file), then the lineage."""
    import yaml

    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": record["path"]}
                    for split, record in result.files.items()
                ],
            }
        ],
        "tags": ["instructkit", result.format],
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", ""]
    lines += [f"# {result.name}", "", _card_intro(result), ""]
    lines += _split_table(result) + [""] + lineage_lines(manifest)
    return "\n".join(lines) + "\n"


def _card_intro(result: ExportResult) -> str:
    consumers = []
    if (shape_of(result.format)).llamafactory is not None:
        consumers.append(f"LLaMA-Factory (`dataset_info.json`, `dataset: {result.name}`)")
    if shape_of(result.format).axolotl is not None:
        consumers.append("axolotl (`axolotl.yaml`)")
    readers = ", ".join(consumers) if consumers else "TRL's SFTTrainer"
    return (
        f"Exported by `instructkit export` in the `{result.format}` format "
        f"({result.file_type} files). Ready for: {readers}; `datasets.load_dataset` reads it "
        f"with the configs above. `instructkit.json` holds the full source manifest."
    )


def _split_table(result: ExportResult) -> list[str]:
    lines = ["| split | file | rows | sha256 |", "|---|---|--:|---|"]
    for split, record in result.files.items():
        lines.append(
            f"| {split} | `{record['path']}` | {record['num_rows']} | `{record['sha256'][:16]}` |"
        )
    return lines


def lineage_lines(manifest: dict[str, Any]) -> list[str]:
    """The lineage a reader needs: per task its inputs and templates (hashes), and counts."""
    if not manifest:
        return ["## Lineage", "", "The source directory has no instructkit manifest."]
    lines = ["## Lineage", ""]
    kind = manifest.get("kind") or "unknown"
    lines.append(f"- made by: `instructkit {kind}` {manifest.get('instructkit_version', '')}")
    if manifest.get("seed") is not None:
        lines.append(f"- seed: {manifest['seed']}")
    if kind == "mix":
        spec = manifest.get("spec", {})
        lines.append(f"- mixture: strategy `{spec.get('strategy')}`, {manifest.get('total')} rows")
    lines.append("")
    for task, render in task_sources(manifest).items():
        lines += _task_lines(task, render, manifest)
    counts = manifest.get("counts")
    if counts:
        lines += ["### Counts (rows per split and task or template)", "", "```json"]
        lines += [json.dumps(counts, indent=2, sort_keys=True, allow_nan=False), "```", ""]
    return lines


def task_sources(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task name -> the render manifest that made it (a mix keeps its inputs' manifests)."""
    if manifest.get("kind") == "mix":
        return {
            str(t.get("name")): t.get("input_manifest") or {}
            for t in manifest.get("tasks", [])
            if isinstance(t, dict)
        }
    return {str(manifest.get("task") or manifest.get("source") or "dataset"): manifest}


def _task_lines(task: str, render: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    lines = [f"### Task `{task}`", ""]
    pack = render.get("pack") or {}
    if pack:
        lines.append(f"- template pack: `{pack.get('name')}`; source: `{render.get('source')}`")
    for record in manifest.get("tasks", []) if manifest.get("kind") == "mix" else []:
        if isinstance(record, dict) and record.get("name") == task:
            lines.append(
                f"- in the mix: {record.get('quota')} of {record.get('available')} rows "
                f"({record.get('rule')}), source fingerprint `{record.get('fingerprint')}`"
            )
    for item in render.get("inputs", []):
        lines.append(f"- input `{item.get('path')}` ({item.get('split')}): `{item.get('sha256')}`")
    for template, info in sorted((render.get("templates") or {}).items()):
        lines.append(
            f"- template `{template}` ({info.get('kind')}, {info.get('format')}): "
            f"`{info.get('sha256')}`"
        )
    return lines + [""]

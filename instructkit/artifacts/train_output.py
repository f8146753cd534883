"""What ``instructkit train`` leaves beside a model: the training record, the log, the chart.

One home for their names, their strict JSON (NaN and infinities become null) and the record's
readers, so train (which writes them), evaluate (which reads which tasks a model was tuned on,
and where an adapter's base model is) and the trainer contract test agree.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from instructkit.errors import ModelError

METADATA_NAME = "instructkit-train.json"
LOG_NAME = "training_log.jsonl"
CHART_NAME = "loss.png"


def finite(value: Any) -> Any:
    """NaN and infinities become null: the JSON we write is strict (``allow_nan=False``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def strict_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity (they become null)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def write_lines(path: Path, records: Iterable[Mapping[str, Any]], mode: str = "w") -> None:
    """One strict JSON object per line; ``mode="a"`` appends (the live log)."""
    with open(path, mode, encoding="utf-8") as handle:
        for record in records:
            handle.write(strict_dumps(dict(record), sort_keys=True) + "\n")
        handle.flush()


def write_log(path: Path, log: Iterable[Mapping[str, Any]]) -> None:
    """One strict JSON object per line (NaN becomes null), in step order."""
    write_lines(path, log)


def read_train_metadata(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The training record of a model or adapter directory (None when it has none)."""
    path = Path(model_dir) / METADATA_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as ex:
        raise ModelError(f"'{path}' is not valid JSON: {ex}. Re-run 'instructkit train'.") from ex


def resolve_base_model(run_dir: str | os.PathLike[str], recorded: str) -> str:
    """``recorded`` if it exists (or is a hub id); else the run record's relative path, if found.

    Lets an adapter directory copied to another machine, beside its base model as it was,
    find that base although the absolute path it was trained with is gone (the record's
    ``base_model_ref``, written by ``instructkit.train.record.base_model_ref``).
    """
    if Path(recorded).expanduser().exists():
        return recorded
    record = Path(run_dir) / METADATA_NAME
    if not record.is_file():
        return recorded
    try:
        ref = json.loads(record.read_text()).get("base_model_ref") or {}
    except (OSError, ValueError):
        return recorded
    relative = ref.get("relative_path")
    if relative:
        candidate = (Path(run_dir) / relative).resolve()
        if candidate.exists():
            return str(candidate)
    return ref.get("hub_id") or recorded

"""What ``instructkit train`` leaves beside a model: the training record, the log, the chart.

One home for their names and for the record's reader, so train (which writes them), evaluate
(which reads which tasks a model was tuned on) and the trainer contract test agree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from instructkit.errors import ModelError

METADATA_NAME = "instructkit-train.json"
LOG_NAME = "training_log.jsonl"
CHART_NAME = "loss.png"


def write_log(path: Path, log: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, in step order."""
    with open(path, "w") as handle:
        for record in log:
            handle.write(json.dumps(dict(record), sort_keys=True, allow_nan=False) + "\n")


def read_train_metadata(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The training record of a model or adapter directory (None when it has none)."""
    path = Path(model_dir) / METADATA_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as ex:
        raise ModelError(f"'{path}' is not valid JSON: {ex}. Re-run 'instructkit train'.") from ex

"""``instructkit.json``: the manifest every stage writes beside its data, and the one reader.

Render and mix write it (free-form JSON: what shaped the output), train fingerprints it,
evaluate, mix and inspect read it through :func:`load_manifest`, whose :class:`Manifest` knows
the shapes a render and a mix manifest take, so no stage decodes them itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import (
    DATASET_DICT_NAME,
    check_dataset_dir,
    write_json,
)
from instructkit.checksums import file_sha256
from instructkit.errors import DatasetDirError

MANIFEST_NAME = "instructkit.json"
# The manifest layout this version reads and writes. Files carry no version field yet (one
# would change every output's bytes); when the layout changes, writers add "manifest_version"
# and files without it are version 1.
MANIFEST_VERSION = 1


def write_manifest(dataset_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``instructkit.json``; keep it free of timestamps so reruns give identical bytes."""
    write_json(Path(dataset_dir) / MANIFEST_NAME, manifest)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a dataset directory ({} for a plain ``save_to_disk`` DatasetDict)."""
    root = check_dataset_dir(path)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        return {}
    try:
        return json.loads(manifest_path.read_text())
    except ValueError as ex:
        raise DatasetDirError(f"'{manifest_path}' is not valid JSON: {ex}.") from ex


def manifest_fingerprint(path: str | os.PathLike[str]) -> str:
    """A short hash of a dataset's manifest: records which data a model was trained on."""
    root = check_dataset_dir(path)
    manifest_path = root / MANIFEST_NAME
    source = manifest_path if manifest_path.is_file() else root / DATASET_DICT_NAME
    return file_sha256(source)[:16]


@dataclass(frozen=True)
class Manifest:
    """A dataset's manifest, read once: what other stages ask of it, whatever wrote it."""

    data: dict[str, Any]  # the JSON as written ({} for a plain save_to_disk DatasetDict)

    @property
    def kind(self) -> str | None:
        """What wrote it ("render", "mix"), or None when unknown."""
        kind = self.data.get("kind")
        return str(kind) if kind else None

    @property
    def task(self) -> str | None:
        """The task of a single-task dataset (a render's), else None."""
        task = self.data.get("task")
        return task if isinstance(task, str) else None

    def metrics_for(self, task: str) -> list[str]:
        """A task's metrics ([] if the manifest names none).

        A render manifest has ``task`` and a list ``metrics``; a mix manifest maps task names
        to metric lists (``metrics: {task: [...]}``) and also lists per-task records (``tasks:
        [{name, metrics}, ...]``); either is accepted.
        """
        metrics = self.data.get("metrics")
        if isinstance(metrics, dict):
            metrics = metrics.get(task)
        elif self.data.get("task") not in (None, task):
            metrics = None
        if not metrics:
            metrics = _task_record(self.data.get("tasks"), task).get("metrics")
        return list(metrics) if metrics else []


def _task_record(tasks: Any, task: str) -> dict[str, Any]:
    if isinstance(tasks, dict):
        record = tasks.get(task)
        return record if isinstance(record, dict) else {}
    for record in tasks or []:
        if isinstance(record, dict) and record.get("name") == task:
            return record
    return {}


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The typed manifest of a dataset directory; refuses one written by a newer layout."""
    data = read_manifest(path)
    version = data.get("manifest_version", 1)
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise DatasetDirError(
            f"'{Path(path) / MANIFEST_NAME}' has manifest_version {version!r}; this instructkit "
            f"reads up to {MANIFEST_VERSION}: upgrade instructkit."
        )
    return Manifest(data)

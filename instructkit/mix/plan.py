"""The mixture's types: what is read (TaskInput), what is planned (TaskPlan, MixResult).

They live apart from the orchestrator (run.py) so that the writer (write.py) can use them
without importing its caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from instructkit.mix.spec import MixSpec, TaskSpec


@dataclass
class TaskInput:
    """One input dataset, memory-mapped, with what its manifest says about it."""

    spec: TaskSpec
    name: str
    manifest: dict[str, Any]
    fingerprint: str
    train: pa.Table
    evaluation: dict[str, pa.Table]
    form: str = "text"  # text or conversational (instructkit/chat.py)
    # Hand back the train rows' mapped pages once read (artifacts.dataset.MappedSplit): all
    # of them, or one record batch's (one callable per batch of ``train``).
    release_train: Callable[[], None] = field(default=lambda: None)
    train_batch_releasers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(self.manifest.get("metrics") or [])


@dataclass
class TaskPlan:
    """What the mixture takes from one task (one row of the plan table)."""

    name: str
    path: str
    rule: str
    source_rows: int
    duplicates: int
    contaminated: int
    dropped: int
    available: int
    target_rows: float
    quota: int
    repetition: float
    times_used: tuple[int, int]
    eval_rows: dict[str, int]
    tokens: int | None = None  # train tokens in the quota (prompt + completion)
    # set when the task was too large to count whole: tokens is then quota x sampled mean
    tokens_sampled_rows: int | None = None

    def to_json(self, total: int, target_total: float) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if v is not None}
        data["times_used"] = list(self.times_used)
        data["target_share"] = self.target_rows / target_total if target_total else 0.0
        data["realized_share"] = self.quota / total if total else 0.0
        return data


@dataclass
class MixResult:
    """The plan, and for a real run what was written."""

    spec: MixSpec
    epoch: int
    tasks: list[TaskPlan]
    contamination: dict[str, Any]
    out: Path | None = None
    splits: dict[str, int] = field(default_factory=dict)
    max_prefix_deviation: float | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(t.quota for t in self.tasks)

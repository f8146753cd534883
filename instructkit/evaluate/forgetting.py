"""The forgetting report: several models x every task, before/after, as JSON, markdown and PNG.

The first model is the baseline (usually the base model); every other model gets a delta
against it on each task's primary metric. A model trained by ``instructkit train`` records its
tasks in ``instructkit-train.json``; those tasks are marked as tuned-on, so a gain there and a
loss elsewhere (forgetting) read at a glance.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import atomic_output_dir
from instructkit.errors import OptionsError
from instructkit.evaluate.generate import GenerationOptions
from instructkit.evaluate.metrics import Score
from instructkit.evaluate.run import (
    EvaluationResult,
    ScoringOptions,
    evaluate_model,
    load_eval_rows,
)

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
REPORT_CHART = "report.png"
TUNED_MARK = "*"


@dataclass
class ModelEntry:
    """One compared model: its short name, where it came from and the tasks it was tuned on."""

    name: str
    path: str
    adapter: str | None = None
    base: str = ""
    tuned_on: list[str] = field(default_factory=list)
    chat_template: str | None = None  # the template id it was prompted through, None: plain


@dataclass
class TaskRow:
    """One task's primary score for every model."""

    task: str
    metric: str
    primary: str
    num_rows: int
    scores: dict[str, Score]


@dataclass
class ForgettingReport:
    """Models x tasks on each task's primary metric; the first model is the baseline."""

    split: str
    models: list[ModelEntry]
    tasks: list[TaskRow]
    out: Path | None = None

    @property
    def baseline(self) -> str:
        return self.models[0].name

    def delta(self, row: TaskRow, model: str) -> float:
        """How much ``model`` gained (+) or lost (-) on the task against the baseline."""
        return row.scores[model].value - row.scores[self.baseline].value

    def tuned_on(self, task: str) -> list[str]:
        return [m.name for m in self.models if task in m.tuned_on]

    def to_json(self) -> dict[str, Any]:
        others = [m.name for m in self.models[1:]]
        return {
            "split": self.split,
            "baseline": self.baseline,
            "models": [vars(m) for m in self.models],
            "tasks": [
                {
                    "task": row.task,
                    "metric": row.metric,
                    "primary": row.primary,
                    "num_rows": row.num_rows,
                    "scores": {name: score.to_json() for name, score in row.scores.items()},
                    "delta": {name: self.delta(row, name) for name in others},
                    "tuned_on": self.tuned_on(row.task),
                }
                for row in self.tasks
            ],
        }

    def to_markdown(self) -> str:
        """A markdown table: one row per task, each model's score and its delta vs baseline."""
        header = ["task", "metric", "rows", self.baseline]
        for model in self.models[1:]:
            header += [model.name, f"Δ {model.name}"]
        lines = [
            f"Split '{self.split}': each task's primary metric (ROUGE as F-measure x 100), "
            f"Δ against '{self.baseline}'.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---", "--:"] + ["--:"] * (len(header) - 3)) + "|",
        ]
        lines += [self._markdown_row(row) for row in self.tasks]
        lines += ["", f"{TUNED_MARK} tuned on this task (from instructkit-train.json)."]
        return "\n".join(lines) + "\n"

    def _markdown_row(self, row: TaskRow) -> str:
        tuned = set(self.tuned_on(row.task))

        def cell(name: str) -> str:
            mark = f" {TUNED_MARK}" if name in tuned else ""
            return f"{row.scores[name].value:.2f}{mark}"

        cells = [row.task, f"{row.metric}:{row.primary}", str(row.num_rows), cell(self.baseline)]
        for model in self.models[1:]:
            cells += [cell(model.name), f"{self.delta(row, model.name):+.2f}"]
        return "| " + " | ".join(cells) + " |"

    def write_chart(self, path: str | os.PathLike[str]) -> None:
        """Grouped bars: one group per task, one bar per model; tuned-on models under the task."""
        from instructkit import charts

        primaries = {row.primary for row in self.tasks}
        ylabel = primaries.pop() if len(primaries) == 1 else "primary metric"
        charts.grouped_bar_chart(
            path,
            categories=[self._chart_label(row.task) for row in self.tasks],
            series={m.name: [row.scores[m.name].value for row in self.tasks] for m in self.models},
            title=f"Before / after per task ({self.split})",
            ylabel=f"{ylabel} (x 100)",
        )

    def _chart_label(self, task: str) -> str:
        tuned = self.tuned_on(task)
        return f"{task}\n{TUNED_MARK} {', '.join(tuned)}" if tuned else task


def compare_models(
    models: Mapping[str, str],
    datasets: Sequence[str | os.PathLike[str]],
    split: str,
    out: str | os.PathLike[str],
    generation: GenerationOptions | None = None,
    scoring: ScoringOptions | None = None,
    max_rows: int | None = None,
    sample_seed: int | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> ForgettingReport:
    """Evaluate every model on every task and write report.json, report.md and report.png.

    ``models`` maps a short name to a model directory, hub name or adapter directory; the first
    is the baseline. Each model's predictions and metrics go to ``out/<name>/``.
    """
    if len(models) < 2:
        raise OptionsError("Compare at least two models, e.g. base=MODEL tuned=MODEL_OR_ADAPTER.")
    for name in models:
        check_model_name(name)
    # read the data once up front: a missing split fails before any model is loaded
    load_eval_rows(datasets, split, max_rows, sample_seed)
    generation = generation or GenerationOptions()
    modes = shared_encoding(models, generation.chat_template)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        results = {
            name: evaluate_model(
                path,
                datasets,
                split,
                tmp / name,
                generation=replace(generation, chat_template=modes[name]),
                scoring=scoring,
                max_rows=max_rows,
                sample_seed=sample_seed,
                quiet=quiet,
            )  # fmt: skip
            for name, path in models.items()
        }
        report = build_report(split, results)
        write_report(report, tmp)
    report.out = Path(out)
    return report


def shared_encoding(models: Mapping[str, str], mode: str) -> dict[str, str]:
    """Each model's ``chat_template`` mode, so that every model is prompted the same way.

    With ``auto``, a model trained by instructkit is prompted as its record says; a model
    without a record (the base model) gets the encoding the recorded models share, so a tuned
    model's chat-template prompts are not compared with plain prompts to its base. Records that
    disagree are an error: the user picks one encoding with --chat-template on or off.
    """
    if mode != "auto":
        return dict.fromkeys(models, mode)
    from instructkit.modeling import trained_encoding

    recorded = {name: trained_encoding(path).get("chat_template") for name, path in models.items()}
    known = {name: bool(value) for name, value in recorded.items() if value is not None}
    if len(set(known.values())) > 1:
        listing = ", ".join(f"{name}: {'on' if on else 'off'}" for name, on in known.items())
        raise OptionsError(
            f"The compared models were trained with and without the chat template ({listing}): "
            f"pass --chat-template on or off to prompt them all one way."
        )
    shared = "auto" if not known else ("on" if next(iter(known.values())) else "off")
    return {name: "auto" if name in known else shared for name in models}


def build_report(split: str, results: Mapping[str, EvaluationResult]) -> ForgettingReport:
    """A report from each model's evaluation of the same rows."""
    entries = [
        ModelEntry(
            name,
            result.model["model"],
            result.model["adapter"],
            result.model["base"],
            list(result.model["tuned_on"]),
            result.model.get("chat_template_id"),
        )
        for name, result in results.items()
    ]
    first = next(iter(results.values())).report
    rows = []
    for task in first.tasks:
        metric, result = first.primary(task)
        scores = {name: r.report.primary_score(task) for name, r in results.items()}
        rows.append(TaskRow(task, metric, result.primary, result.num_rows, scores))
    return ForgettingReport(split, entries, rows)


def write_report(report: ForgettingReport, out: Path) -> None:
    """Write report.json, report.md and report.png into ``out``."""
    data = report.to_json()
    (out / REPORT_JSON).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    (out / REPORT_MARKDOWN).write_text(report.to_markdown(), encoding="utf-8")
    report.write_chart(out / REPORT_CHART)


_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def check_model_name(name: str) -> str:
    """A model's short name in a report: used as a folder name, so keep it simple."""
    if not _MODEL_NAME.match(name):
        raise OptionsError(
            f"Model name '{name}' must start with a letter or digit and use only letters, "
            f"digits, '.', '_', '+' or '-'."
        )
    return name

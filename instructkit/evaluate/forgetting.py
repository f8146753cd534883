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

from instructkit.artifacts.dataset import atomic_output_dir, check_output_path
from instructkit.errors import OptionsError
from instructkit.evaluate.forgetting_stats import (
    CROSSES_ZERO_MARK,
    crosses_zero,
    format_delta,
    paired_delta,
    probe_markdown,
    probes_json,
    verdicts,
)
from instructkit.evaluate.generate import GenerationOptions
from instructkit.evaluate.harness import HarnessOptions, harness_markdown
from instructkit.evaluate.metrics import Score
from instructkit.evaluate.predictions_cache import PredictionCache
from instructkit.evaluate.probes import ProbeOptions, ProbeResult
from instructkit.evaluate.run import (
    EvaluationResult,
    ScoringOptions,
    evaluate_model,
    load_eval_rows,
)
from instructkit.modeling import check_model_source

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
    # per model: Δ against the baseline with its paired-bootstrap interval
    deltas: dict[str, Score] = field(default_factory=dict)
    # per adapter model: the score of its base model, i.e. with the adapter removed
    adapter_removed: dict[str, Score] = field(default_factory=dict)


@dataclass
class ForgettingReport:
    """Models x tasks on each task's primary metric; the first model is the baseline."""

    split: str
    models: list[ModelEntry]
    tasks: list[TaskRow]
    out: Path | None = None
    # per model, per probe: the loss probe (instructkit.evaluate.probes), when it ran
    probes: dict[str, dict[str, ProbeResult]] = field(default_factory=dict)
    # per model: lm-evaluation-harness results {task: {metric: value}}, when it ran
    harness: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)  # model -> degenerate predictions

    @property
    def baseline(self) -> str:
        return self.models[0].name

    def delta(self, row: TaskRow, model: str) -> float:
        """How much ``model`` gained (+) or lost (-) on the task against the baseline."""
        return row.scores[model].value - row.scores[self.baseline].value

    def delta_score(self, row: TaskRow, model: str) -> Score:
        """The delta with its interval (paired bootstrap); no interval when none was computed."""
        return row.deltas.get(model) or Score(self.delta(row, model))

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
                    "delta_interval": {
                        name: {"low": d.low, "high": d.high, "crosses_zero": crosses_zero(d)}
                        for name in others
                        for d in [self.delta_score(row, name)]
                    },
                    "adapter_removed": {n: s.to_json() for n, s in row.adapter_removed.items()},
                    "tuned_on": self.tuned_on(row.task),
                }
                for row in self.tasks
            ],
            "probes": probes_json(self),
            "harness": self.harness,
            "verdicts": verdicts(self),
        }

    def to_markdown(self) -> str:
        """A markdown table: one row per task, each model's score and its delta vs baseline."""
        header = ["task", "metric", "rows", self.baseline]
        for model in self.models[1:]:
            header += [model.name, f"Δ {model.name}"]
            if self._has_removed(model.name):
                header.append(f"{model.name} adapter removed")
        lines = [
            f"Split '{self.split}': each task's primary metric (ROUGE as F-measure x 100), "
            f"Δ against '{self.baseline}'.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---", "--:"] + ["--:"] * (len(header) - 3)) + "|",
        ]
        lines += [self._markdown_row(row) for row in self.tasks]
        lines += [
            "",
            f"{TUNED_MARK} tuned on this task (from instructkit-train.json). Δ ± half the 95% "
            f"interval of the per-row differences (paired bootstrap); {CROSSES_ZERO_MARK}: the "
            "interval includes 0, no clear change.",
        ]
        lines += probe_markdown(self)
        lines += harness_markdown(self.harness, self.baseline)
        lines += ["", "Verdict:", ""] + [f"- {line}" for line in verdicts(self)]
        return "\n".join(lines) + "\n"

    def _has_removed(self, name: str) -> bool:
        return any(name in row.adapter_removed for row in self.tasks)

    def _markdown_row(self, row: TaskRow) -> str:
        tuned = set(self.tuned_on(row.task))

        def cell(name: str) -> str:
            mark = f" {TUNED_MARK}" if name in tuned else ""
            return f"{row.scores[name].value:.2f}{mark}"

        cells = [row.task, f"{row.metric}:{row.primary}", str(row.num_rows), cell(self.baseline)]
        for model in self.models[1:]:
            cells += [cell(model.name), format_delta(self.delta_score(row, model.name))]
            if self._has_removed(model.name):
                removed = row.adapter_removed.get(model.name)
                cells.append("" if removed is None else f"{removed.value:.2f}")
        return "| " + " | ".join(cells) + " |"

    def write_chart(self, path: str | os.PathLike[str]) -> None:
        """Grouped bars: one group per task, one bar per model; tuned-on models under the task."""
        from instructkit import charts

        primaries = {row.primary for row in self.tasks}
        ylabel = primaries.pop() if len(primaries) == 1 else "primary metric"
        categories = [self._chart_label(row.task) for row in self.tasks]
        series = {m.name: [row.scores[m.name].value for row in self.tasks] for m in self.models}
        intervals = {
            m.name: [(row.scores[m.name].low, row.scores[m.name].high) for row in self.tasks]
            for m in self.models
        }
        for label, scores in harness_chart_bars(self.harness, [m.name for m in self.models]):
            categories.append(label)
            for name, (value, interval) in scores.items():
                series[name].append(value)
                intervals[name].append(interval)
        charts.grouped_bar_chart(
            path,
            categories=categories,
            series=series,
            title=f"Before / after per task ({self.split}); bars: 95% intervals",
            ylabel=f"{ylabel} (x 100)",
            intervals=intervals,
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
    cache: PredictionCache | None = None,
    probe: ProbeOptions | None = None,
    harness: HarnessOptions | None = None,
) -> ForgettingReport:
    """Evaluate every model on every task and write report.json, report.md and report.png.

    ``models`` maps a short name to a model directory, hub name or adapter directory; the first
    is the baseline. Each model's predictions and metrics go to ``out/<name>/``. An adapter
    is also scored with the adapter removed (its base model; the baseline's scores when the
    base is the baseline) into ``out/<name>/adapter-removed/``. ``probe`` runs the loss probe
    on every model; ``harness`` runs lm-evaluation-harness tasks on every model (adapters with
    ``peft=``) into the same report and chart.
    """
    if len(models) < 2:
        raise OptionsError("Compare at least two models, e.g. base=MODEL tuned=MODEL_OR_ADAPTER.")
    for name, path in models.items():
        check_model_name(name)
        check_model_source(path)  # a typo in the last model fails before the first is run
    inputs = [*datasets, *models.values()]
    check_output_path(Path(out), overwrite, "compare", inputs)
    # read the data once up front: a missing split fails before any model is loaded
    load_eval_rows(datasets, split, max_rows, sample_seed)
    generation = generation or GenerationOptions()
    modes = shared_encoding(models, generation.chat_template)
    with atomic_output_dir(out, overwrite, "compare") as tmp:
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
                cache=cache,
                probe=probe,
            )  # fmt: skip
            for name, path in models.items()
        }
        removed = adapter_removed_results(
            results, tmp, datasets, split, generation, scoring, max_rows, sample_seed, quiet, cache,
            modes,
        )  # fmt: skip
        report = build_report(split, results, scoring, removed)
        report.warnings = {name: r.warning for name, r in results.items() if r.warning}
        if harness is not None:
            report.harness = run_harness_for(models, results, harness, tmp)
        write_report(report, tmp)
    report.out = Path(out)
    return report


def adapter_removed_results(
    results: Mapping[str, EvaluationResult],
    tmp: Path,
    datasets: Sequence[str | os.PathLike[str]],
    split: str,
    generation: GenerationOptions | None,
    scoring: ScoringOptions | None,
    max_rows: int | None,
    sample_seed: int | None,
    quiet: bool,
    cache: PredictionCache | None,
    modes: Mapping[str, str] | None = None,
) -> dict[str, EvaluationResult]:
    """Each adapter's base model scored on the same rows (the baseline's result if it is that).

    ``modes`` gives each model's chat-template mode: the base is prompted as its adapter was.
    """
    baseline = next(iter(results.values()))
    removed = {}
    for name, result in results.items():
        if not result.model.get("adapter"):
            continue
        base = str(result.model["base"])
        if not baseline.model.get("adapter") and _same_path(base, baseline.model["model"]):
            removed[name] = baseline
            continue
        if generation is not None and modes is not None:
            generation = replace(generation, chat_template=modes[name])
        removed[name] = evaluate_model(
            base, datasets, split, tmp / name / "adapter-removed", generation=generation,
            scoring=scoring, max_rows=max_rows, sample_seed=sample_seed, quiet=quiet, cache=cache,
        )  # fmt: skip
    return removed


def run_harness_for(
    models: Mapping[str, str],
    results: Mapping[str, EvaluationResult],
    options: HarnessOptions,
    tmp: Path,
) -> dict[str, dict[str, dict[str, float]]]:
    """lm-evaluation-harness results per model, also written to ``<name>/lm_eval.json``."""
    from instructkit.evaluate.harness import run_harness

    table = {}
    for name in models:
        model = results[name].model
        path = str(model["base"]) if model.get("adapter") else str(model["model"])
        table[name] = run_harness(
            path, options.tasks, adapter=model.get("adapter"), include_path=options.include_path,
            limit=options.limit, batch_size=options.batch_size, num_fewshot=options.num_fewshot,
        )  # fmt: skip
        (tmp / name / "lm_eval.json").write_text(
            json.dumps(table[name], indent=2, allow_nan=False) + "\n"
        )
    return table


def harness_chart_bars(
    harness: Mapping[str, Mapping[str, Mapping[str, float]]], names: Sequence[str]
) -> list[tuple[str, dict[str, tuple[float, tuple[float | None, float | None]]]]]:
    """Extra chart groups for harness metrics: x 100 when a metric is a fraction, ±1.96 stderr."""
    from instructkit.evaluate.harness import harness_metrics

    bars = []
    for task, metric in harness_metrics(harness):
        values = [harness.get(n, {}).get(task, {}).get(metric) for n in names]
        if any(v is None for v in values):
            continue
        scale = 100.0 if all(abs(v or 0) <= 1.0 for v in values) else 1.0
        scores = {}
        for name, value in zip(names, values, strict=True):
            assert value is not None
            stderr = harness[name][task].get(f"{metric}_stderr")
            interval: tuple[float | None, float | None] = (None, None)
            if stderr:
                interval = (scale * (value - 1.96 * stderr), scale * (value + 1.96 * stderr))
            scores[name] = (scale * value, interval)
        bars.append((f"{task}\n(lm-eval {metric})", scores))
    return bars


def _same_path(a: str, b: str) -> bool:
    return a == b or (
        Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve()
    )


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


def build_report(
    split: str,
    results: Mapping[str, EvaluationResult],
    scoring: ScoringOptions | None = None,
    removed: Mapping[str, EvaluationResult] | None = None,
) -> ForgettingReport:
    """A report from each model's evaluation of the same rows.

    Δ intervals bootstrap the per-row differences with the scoring options (``bootstrap``
    resamples, ``confidence``, ``seed``); ``removed`` gives adapters' adapter-removed results.
    """
    scoring = scoring or ScoringOptions()
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
        row = TaskRow(task, metric, result.primary, result.num_rows, scores)
        baseline_rows = result.row_scores.get(result.primary)
        for name, other in list(results.items())[1:]:
            mine = other.report.tasks[task][metric].row_scores.get(result.primary)
            if mine is not None and baseline_rows is not None and len(mine) == len(baseline_rows):
                row.deltas[name] = paired_delta(
                    mine, baseline_rows, scoring.bootstrap, scoring.confidence, scoring.seed
                )
        for name, other in (removed or {}).items():
            row.adapter_removed[name] = other.report.primary_score(task)
        rows.append(row)
    probes = {name: r.probes for name, r in results.items() if r.probes is not None}
    return ForgettingReport(split, entries, rows, probes=probes)


def write_report(report: ForgettingReport, out: Path) -> None:
    """Write report.json, report.md and report.png into ``out``."""
    data = report.to_json()
    (out / REPORT_JSON).write_text(
        json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    )
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

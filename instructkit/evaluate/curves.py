"""Forgetting over training: every kept checkpoint of a run scored on every task, as a curve.

``instructkit train -o keep_checkpoints=50,100,...`` keeps the model at those steps in
``OUT/checkpoints/checkpoint-STEP``. :func:`score_curves` scores, for each run, the base model
(step 0), each kept checkpoint and the final model on every task of the datasets, and writes
per task the primary score against the step — learning on the tasks the run was tuned on,
forgetting on the others — as ``curve.json``, ``curve.md`` and ``curve.png`` (one panel per
run, one line per task, the 95% interval as a band). Every point goes through the predictions
cache, so points already scored (the shared base, a rerun, a finished ``evaluate``) are free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import atomic_output_dir, check_output_path
from instructkit.errors import ModelError, OptionsError
from instructkit.evaluate.generate import GenerationOptions
from instructkit.evaluate.metrics import Score
from instructkit.evaluate.predictions_cache import PredictionCache
from instructkit.evaluate.probes import ProbeOptions, ProbeResult
from instructkit.evaluate.run import ScoringOptions, evaluate_model, load_eval_rows

CURVE_JSON = "curve.json"
CURVE_MARKDOWN = "curve.md"
CURVE_CHART = "curve.png"
TUNED_MARK = "*"


@dataclass
class CurvePoint:
    """One model along a run: the base (step 0), a kept checkpoint, or the final model."""

    step: int
    model: str
    kind: str  # "base", "checkpoint" or "final"


@dataclass
class RunCurve:
    """A training run's points and, per task, the primary score at each point."""

    name: str
    path: str
    tuned_on: list[str]
    points: list[CurvePoint]
    scores: dict[str, list[Score]] = field(default_factory=dict)
    cache_hits: int = 0
    probes: list[dict[str, ProbeResult]] = field(default_factory=list)  # per point


@dataclass
class CurveReport:
    """Per run and task, score against step; tasks keep the datasets' order."""

    split: str
    tasks: list[dict[str, Any]]  # {"task", "metric", "primary", "num_rows"}
    runs: list[RunCurve]
    out: Path | None = None
    warnings: dict[str, str] = field(default_factory=dict)  # "run step N" -> degenerate note

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "runs": [
                {
                    "name": run.name,
                    "path": run.path,
                    "tuned_on": run.tuned_on,
                    "points": [vars(p) for p in run.points],
                    "cache_hits": run.cache_hits,
                    "probes": [
                        {"step": point.step, **{n: r.to_json() for n, r in probes.items()}}
                        for point, probes in zip(run.points, run.probes, strict=False)
                    ],
                }
                for run in self.runs
            ],
            "tasks": [
                {
                    **task,
                    "curves": {
                        run.name: [
                            {"step": point.step, **score.to_json()}
                            for point, score in zip(
                                run.points, run.scores[task["task"]], strict=True
                            )
                        ]
                        for run in self.runs
                    },
                }
                for task in self.tasks
            ],
        }

    def to_markdown(self) -> str:
        """One table per run: a row per step, a column per task (primary score, 95% interval)."""
        lines = [
            f"Split '{self.split}': each task's primary metric (ROUGE as F-measure x 100) "
            f"along training; step 0 is the base model. Loss columns: the loss probe "
            f"(nats per token).",
        ]
        for run in self.runs:
            header = ["step", "model"] + [
                t["task"] + (f" {TUNED_MARK}" if t["task"] in run.tuned_on else "")
                for t in self.tasks
            ]
            probe_names = list(run.probes[0]) if run.probes else []
            header += [f"loss: {name}" for name in probe_names]
            lines += [
                "",
                f"### {run.name}",
                "",
                "| " + " | ".join(header) + " |",
                "|--:|---|" + "--:|" * (len(self.tasks) + len(probe_names)),
            ]
            for index, point in enumerate(run.points):
                cells = [str(point.step), point.kind]
                cells += [run.scores[t["task"]][index].format() for t in self.tasks]
                if run.probes:
                    cells += [f"{run.probes[index][name].loss:.3f}" for name in probe_names]
                lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"{TUNED_MARK} the run was tuned on this task. [low, high]: 95% interval."]
        return "\n".join(lines) + "\n"

    def write_chart(self, path: str | os.PathLike[str]) -> None:
        """One panel per run, one line per task (tuned-on tasks marked), intervals as bands."""
        from instructkit import charts

        panels: dict[str, dict[str, charts.Band]] = {}
        for run in self.runs:
            lines: dict[str, charts.Band] = {}
            for task in self.tasks:
                name = task["task"]
                label = f"{name} {TUNED_MARK}" if name in run.tuned_on else name
                scores = run.scores[name]
                lines[label] = (
                    [p.step for p in run.points],
                    [s.value for s in scores],
                    [(s.low, s.high) for s in scores],
                )
            panels[run.name] = lines
        primaries = {t["primary"] for t in self.tasks}
        ylabel = primaries.pop() if len(primaries) == 1 else "primary metric"
        charts.band_line_chart(
            path,
            panels,
            title=f"Score per task along training ({self.split}); * tuned on",
            xlabel="step",
            ylabel=f"{ylabel} (x 100)",
        )


def run_points(run_dir: str | os.PathLike[str]) -> tuple[list[CurvePoint], dict[str, Any]]:
    """The base model (step 0), each kept checkpoint and the final model of a training run."""
    from instructkit.artifacts.train_output import (
        KEPT_CHECKPOINTS_NAME,
        METADATA_NAME,
        read_train_metadata,
    )

    root = Path(run_dir)
    metadata = read_train_metadata(root)
    if metadata is None:
        raise ModelError(
            f"'{run_dir}' has no {METADATA_NAME}: give a directory written by 'instructkit train'."
        )
    points = [CurvePoint(0, str(metadata["base_model"]), "base")]
    kept = sorted(
        (int(p.name.rpartition("-")[2]), p)
        for p in (root / KEPT_CHECKPOINTS_NAME).glob("checkpoint-*")
        if p.is_dir() and p.name.rpartition("-")[2].isdigit()
    )
    points += [CurvePoint(step, str(path), "checkpoint") for step, path in kept]
    final = int(metadata.get("steps") or 0)
    if all(point.step != final for point in points):
        points.append(CurvePoint(final, str(root), "final"))
    return points, metadata


def score_curves(
    runs: Mapping[str, str | os.PathLike[str]],
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
) -> CurveReport:
    """Score every point of every run on every task; write curve.json, curve.md and curve.png.

    ``runs`` maps a short name to an ``instructkit train`` output directory. ``datasets``
    (empty: the run's own training dataset, when all runs share it) gives the tasks. Each
    point's predictions and metrics go to ``out/<run>/step-<N>/``.
    """
    from instructkit.evaluate.forgetting import check_model_name

    if not runs:
        raise OptionsError("Give at least one training run: --checkpoints NAME=RUN_DIR.")
    planned = {}
    for name, path in runs.items():
        check_model_name(name)
        planned[name] = (str(path), *run_points(path))
    if not datasets:
        used = {str(meta.get("dataset", {}).get("path")) for _, _, meta in planned.values()}
        if len(used) != 1:
            raise OptionsError(
                "The runs were trained on different datasets: name the datasets to score "
                "(the mixture and any rendered datasets) as DATA."
            )
        datasets = [used.pop()]
    check_output_path(Path(out), overwrite, "curve", [*datasets, *runs.values()])
    # read the data once up front: a missing split fails before any model is loaded
    load_eval_rows(datasets, split, max_rows, sample_seed)
    curves: list[RunCurve] = []
    warnings: dict[str, str] = {}
    tasks: list[dict[str, Any]] = []
    with atomic_output_dir(out, overwrite, "curve") as tmp:
        for name, (path, points, metadata) in planned.items():
            curve = RunCurve(name, path, list(metadata.get("tasks") or []), points)
            for point in points:
                result = evaluate_model(
                    point.model, datasets, split, tmp / name / f"step-{point.step}",
                    generation=generation, scoring=scoring, max_rows=max_rows,
                    sample_seed=sample_seed, quiet=quiet, cache=cache, probe=probe,
                )  # fmt: skip
                if result.probes is not None:
                    curve.probes.append(result.probes)
                if result.warning:
                    warnings[f"{name} step {point.step}"] = result.warning
                if result.predictions_cache and result.predictions_cache.get("hit"):
                    curve.cache_hits += 1
                report = result.report
                for task in report.tasks:
                    curve.scores.setdefault(task, []).append(report.primary_score(task))
                if not tasks:
                    for task in report.tasks:
                        metric, metric_result = report.primary(task)
                        tasks.append(
                            {
                                "task": task,
                                "metric": metric,
                                "primary": metric_result.primary,
                                "num_rows": metric_result.num_rows,
                            }
                        )
            curves.append(curve)
        curve_report = CurveReport(split, tasks, curves, warnings=warnings)
        (tmp / CURVE_JSON).write_text(
            json.dumps(curve_report.to_json(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        )
        (tmp / CURVE_MARKDOWN).write_text(curve_report.to_markdown(), encoding="utf-8")
        curve_report.write_chart(tmp / CURVE_CHART)
    curve_report.out = Path(out)
    return curve_report

"""Evaluate a model on a split, or score an existing predictions file.

``evaluate_model`` generates a prediction for every row of a split (of one or more instructkit
datasets) and writes ``predictions.jsonl`` and ``metrics.json``; ``score_file`` scores predictions
made elsewhere. Both go through ``score_rows``, so the same rows give the same numbers. The
metric of each task comes from the dataset manifest (the template pack's ``metrics``) unless the
caller names metrics; the first metric of a task is its primary one.
"""

from __future__ import annotations

import json
import os
import random
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import (
    atomic_output_dir,
    check_output_path,
    open_split,
    require_columns,
)
from instructkit.artifacts.manifest import load_manifest
from instructkit.artifacts.train_output import read_train_metadata
from instructkit.errors import EvaluateError, OptionsError
from instructkit.evaluate.generate import GenerationOptions, generate
from instructkit.evaluate.metrics import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    DEFAULT_METRIC,
    MULTI_REF_MODES,
    Metric,
    MetricResult,
    Score,
    aggregate,
    get_metric,
    reduce_references,
    score_pairs,
)
from instructkit.evaluate.predictions_cache import PredictionCache
from instructkit.evaluate.probes import ProbeOptions, ProbeResult
from instructkit.progress import progress_bar, working
from instructkit.resources import check_num_proc

PREDICTIONS_NAME = "predictions.jsonl"
METRICS_NAME = "metrics.json"
PREDICTION_FIELDS = ("task", "template_id", "example_id", "prompt", "prediction", "references")


@dataclass
class ScoringOptions:
    """How predictions are scored: metrics, multi-reference mode, bootstrap and processes."""

    metrics: Sequence[str] | None = None  # None: each task's metrics from its manifest
    multi_ref: str = "max"
    num_proc: int = 1
    bootstrap: int = DEFAULT_BOOTSTRAP
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.multi_ref not in MULTI_REF_MODES:
            raise OptionsError(
                f"Unknown multi-reference mode '{self.multi_ref}': use "
                f"{', '.join(MULTI_REF_MODES)}."
            )
        check_num_proc(self.num_proc)
        for name in self.metrics or ():
            get_metric(name)  # fail before generating, not after

    def to_json(self) -> dict[str, Any]:
        return {
            "multi_ref": self.multi_ref,
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "seed": self.seed,
        }


@dataclass
class ScoreReport:
    """Per task and overall, each metric's result for one multi-reference mode."""

    multi_ref: str
    tasks: dict[str, dict[str, MetricResult]]
    overall: dict[str, MetricResult]

    def primary(self, task: str) -> tuple[str, MetricResult]:
        """The task's primary metric name and result (its first metric)."""
        name, result = next(iter(self.tasks[task].items()))
        return name, result

    def primary_score(self, task: str) -> Score:
        _, result = self.primary(task)
        return result.scores[result.primary]

    def to_json(self) -> dict[str, Any]:
        return {
            "multi_ref": self.multi_ref,
            "tasks": {task: _results_json(results) for task, results in self.tasks.items()},
            "overall": _results_json(self.overall),
        }


def _results_json(results: dict[str, MetricResult]) -> dict[str, Any]:
    num_rows = max((r.num_rows for r in results.values()), default=0)
    return {"num_rows": num_rows, "metrics": {n: r.to_json() for n, r in results.items()}}


# ---------------------------------------------------------------- reading rows


def load_eval_rows(
    datasets: Sequence[str | os.PathLike[str]],
    split: str,
    max_rows: int | None = None,
    sample_seed: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Rows of ``split`` from every dataset, and each task's metrics from the manifests.

    Only the rows that are scored are read: the ``task`` column picks them (the same rows
    :func:`limit_rows` keeps from the whole split), then just those rows are taken from the
    memory-mapped Arrow shards. ``--max-rows 20`` on a 300k-row split no longer decodes it all.
    """
    if max_rows is not None and max_rows < 1:
        raise OptionsError(f"max_rows must be at least 1, got {max_rows}.")
    rows: list[dict[str, Any]] = []
    task_metrics: dict[str, list[str]] = {}
    origin: dict[str, str] = {}
    for dataset in datasets:
        manifest = load_manifest(dataset)
        table = open_split(dataset, split)
        require_columns(table, ["prompt"], f"Split '{split}' of '{dataset}'")
        default_task = str(manifest.data.get("task") or Path(dataset).name)
        tasks = _row_tasks(table, default_task)
        for task in dict.fromkeys(tasks):
            if task in origin:
                raise EvaluateError(
                    f"Task '{task}' is in both '{origin[task]}' and '{dataset}': "
                    f"pass each task's dataset once."
                )
            origin[task] = str(dataset)
            task_metrics[task] = manifest.metrics_for(task) or [DEFAULT_METRIC]
        keep = select_rows(tasks, max_rows, sample_seed)
        rows.extend(_split_rows(table, keep, tasks))
    return rows, task_metrics


def _row_tasks(table: Any, default_task: str) -> list[str]:
    """Each row's task (the manifest's task, or the dataset's name, where the column is empty)."""
    if "task" not in table.column_names:
        return [default_task] * table.num_rows
    import pyarrow.compute as pc

    # dictionary-encode: a 300k-row column has a handful of distinct strings
    encoded = pc.dictionary_encode(table.column("task")).combine_chunks()
    names = [default_task if not name else str(name) for name in encoded.dictionary.to_pylist()]
    return [default_task if i is None else names[i] for i in encoded.indices.to_pylist()]


def select_rows(
    tasks: Sequence[str], max_rows: int | None, sample_seed: int | None = None
) -> list[int]:
    """Indices of the rows kept, in input order: at most ``max_rows`` per task.

    The first ``max_rows`` rows of each task, or a seeded sample (``sample_seed``) that is the
    same on every run and platform: :func:`limit_rows` applied to the whole split keeps the
    very same rows.
    """
    if max_rows is None:
        return list(range(len(tasks)))
    by_task: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_task.setdefault(task, []).append(index)
    keep: list[int] = []
    for task, indices in by_task.items():
        if sample_seed is None or len(indices) <= max_rows:
            keep.extend(indices[:max_rows])
        else:
            # a string seed is hashed with sha512: the same sample on every run and platform
            keep.extend(random.Random(f"{sample_seed}:{task}").sample(indices, max_rows))
    return sorted(keep)


_ROW_COLUMNS = ("prompt", "completion", "references", "template_id", "example_id")


def _split_rows(table: Any, keep: list[int], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The kept rows in the shape evaluation uses (only these rows are decoded)."""
    import pyarrow as pa

    columns = [c for c in _ROW_COLUMNS if c in table.column_names]
    selected = table.select(columns)
    if len(keep) == table.num_rows:
        decoded = selected.to_pylist()
    else:
        # batch by batch: Table.take would first concatenate every chunk of the columns,
        # touching (and paging in) the whole split
        decoded = []
        start, position = 0, 0
        for batch in selected.to_batches():
            end = start + batch.num_rows
            local = []
            while position < len(keep) and keep[position] < end:
                local.append(keep[position] - start)
                position += 1
            if local:
                decoded.extend(batch.take(pa.array(local, type=pa.int64())).to_pylist())
            start = end
    rows = []
    for index, row in zip(keep, decoded, strict=True):
        completion = row.get("completion")
        if isinstance(completion, list):  # conversational: the assistant message's text
            completion = completion[-1].get("content") if completion else ""
        references = row.get("references") or [completion or ""]
        rows.append(
            {
                "task": tasks[index],
                "template_id": row.get("template_id") or "",
                "example_id": row.get("example_id") or str(index),
                "prompt": row["prompt"],
                "references": list(references),
            }
        )
    return rows


def limit_rows(
    rows: list[dict[str, Any]], max_rows: int | None, sample_seed: int | None = None
) -> list[dict[str, Any]]:
    """At most ``max_rows`` rows per task: the first ones, or a seeded sample, in input order."""
    if max_rows is not None and max_rows < 1:
        raise OptionsError(f"max_rows must be at least 1, got {max_rows}.")
    keep = select_rows([row["task"] for row in rows], max_rows, sample_seed)
    return [rows[index] for index in keep]


# ---------------------------------------------------------------- scoring


def score_rows(
    rows: Sequence[dict[str, Any]],
    task_metrics: dict[str, list[str]],
    scoring: ScoringOptions,
    modes: Sequence[str] | None = None,
) -> dict[str, ScoreReport]:
    """Score rows (with ``prediction`` and ``references``) per task, for each mode."""
    if not rows:
        raise EvaluateError("No rows to score: the predictions or the split are empty.")
    modes = list(modes or [scoring.multi_ref])
    plan = {task: list(scoring.metrics or task_metrics.get(task) or [DEFAULT_METRIC])
            for task in dict.fromkeys(row["task"] for row in rows)}  # fmt: skip
    reports = {mode: ScoreReport(mode, {task: {} for task in plan}, {}) for mode in modes}
    for name in dict.fromkeys(m for metrics in plan.values() for m in metrics):
        metric = get_metric(name)
        selected = [i for i, row in enumerate(rows) if name in plan[row["task"]]]
        pairs = score_pairs(
            metric,
            [rows[i]["prediction"] for i in selected],
            [rows[i]["references"] for i in selected],
            num_proc=scoring.num_proc,
        )
        for mode in modes:
            row_scores = reduce_references(metric, pairs, mode)
            _aggregate_by_task(reports[mode], metric, rows, selected, row_scores, scoring)
    for report in reports.values():
        # each task lists its metrics in its own order, the first being its primary one
        report.tasks = {t: {n: report.tasks[t][n] for n in plan[t]} for t in plan}
    return reports


def _aggregate_by_task(
    report: ScoreReport,
    metric: Metric,
    rows: Sequence[dict[str, Any]],
    selected: list[int],
    row_scores: dict[str, list[float]],
    scoring: ScoringOptions,
) -> None:
    def summarize(positions: list[int]) -> MetricResult:
        subset = {key: [values[p] for p in positions] for key, values in row_scores.items()}
        return aggregate(
            metric, subset, report.multi_ref, scoring.bootstrap, scoring.confidence, scoring.seed
        )

    positions_by_task: dict[str, list[int]] = {}
    for position, index in enumerate(selected):
        positions_by_task.setdefault(rows[index]["task"], []).append(position)
    for task, positions in positions_by_task.items():
        report.tasks[task][metric.name] = summarize(positions)
    report.overall[metric.name] = summarize(list(range(len(selected))))


# ---------------------------------------------------------------- evaluating a model


@dataclass
class EvaluationResult:
    """What ``evaluate_model`` wrote and scored."""

    out: Path
    report: ScoreReport
    model: dict[str, Any]
    rows: list[dict[str, Any]] = field(repr=False, default_factory=list)
    predictions_cache: dict[str, Any] | None = None  # {"hit": bool, "key": str | None}
    probes: dict[str, ProbeResult] | None = None  # the loss probe, when asked for

    @property
    def warning(self) -> str | None:
        """A line to show when the predictions say the model has not learned to answer yet."""
        from instructkit.evaluate.degenerate import degenerate_note

        return degenerate_note([str(row.get("prediction", "")) for row in self.rows])


def evaluate_model(
    model: str,
    datasets: Sequence[str | os.PathLike[str]],
    split: str,
    out: str | os.PathLike[str],
    adapter: str | None = None,
    generation: GenerationOptions | None = None,
    scoring: ScoringOptions | None = None,
    max_rows: int | None = None,
    sample_seed: int | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    cache: PredictionCache | None = None,
    probe: ProbeOptions | None = None,
) -> EvaluationResult:
    """Generate predictions for a split, score them, write predictions.jsonl and metrics.json.

    With a ``cache`` (:class:`instructkit.evaluate.predictions_cache.PredictionCache`), predictions
    already generated for the same model, rows and generation options are reused: the model is
    not even loaded. ``metrics.json`` says which (``predictions_cache.hit``). With ``probe``
    (:class:`instructkit.evaluate.probes.ProbeOptions`), the loss probe also runs on the scored rows
    and the plain-text sample, into ``loss_probe.json``.
    """
    generation = generation or GenerationOptions()
    scoring = scoring or ScoringOptions()
    check_output_path(Path(out), overwrite, "evaluate", [*datasets, model, adapter])
    rows, task_metrics = load_eval_rows(datasets, split, max_rows, sample_seed)
    if not rows:
        raise EvaluateError(f"Split '{split}' has no rows in {', '.join(map(str, datasets))}.")
    if not scoring.metrics:
        for name in dict.fromkeys(m for names in task_metrics.values() for m in names):
            get_metric(name)  # a pack naming an unknown metric fails before generation
    with atomic_output_dir(out, overwrite, "evaluate") as tmp:
        model_info = predict_rows(model, adapter, rows, generation, quiet, cache)
        report = score_rows(rows, task_metrics, scoring)[scoring.multi_ref]
        write_predictions(tmp / PREDICTIONS_NAME, rows)
        metrics = {
            "model": model_info,
            "split": split,
            "datasets": [str(d) for d in datasets],
            "generation": generation.to_json(),
            "scoring": scoring.to_json(),
            **report.to_json(),
        }
        cache_info = model_info.pop("predictions_cache", None)
        if cache_info is not None:
            metrics["predictions_cache"] = cache_info
        _write_json(tmp / METRICS_NAME, metrics)
        probes = None
        if probe is not None:
            from instructkit.evaluate.probes import run_probe

            def load(name: str, extra: str | None) -> Any:
                return load_model(name, extra, quiet=True)

            probes = run_probe(model, adapter, rows, probe, load, tmp)
    return EvaluationResult(Path(out), report, model_info, rows, cache_info, probes)


def predict_rows(
    model: str,
    adapter: str | None,
    rows: list[dict[str, Any]],
    generation: GenerationOptions,
    quiet: bool = False,
    cache: PredictionCache | None = None,
) -> dict[str, Any]:
    """Fill in each row's ``prediction``; return a description of the model used.

    On a ``cache`` hit the model is not loaded; the description then carries
    ``predictions_cache: {"hit": true, "key": ...}`` (``hit`` false after generating).
    """
    from instructkit.modeling import chat_template_id, generation_chat

    prompts = [r["prompt"] for r in rows]
    lookup = None
    if cache is not None:
        lookup = cache.lookup(model, adapter, prompts, generation.to_json(), _device_kind())
    if lookup is not None and lookup.predictions is not None:
        predictions = lookup.predictions
        cached = lookup.model_info or {}
        adapter, base = _model_and_adapter(model, adapter)
        info = {
            "adapter": adapter,
            "base": base,
            "seq2seq": cached.get("seq2seq"),
            "chat_template_id": cached.get("chat_template_id"),
        }
    else:
        loaded = load_model(model, adapter, quiet)
        chat = generation_chat(loaded, prompts, generation.chat_template)
        with progress_bar(len(rows), f"Generating with {Path(model).name}", quiet) as bar:
            predictions = generate(loaded, prompts, generation, bar.update)
        info = {
            "adapter": loaded.adapter,
            "base": loaded.base,
            "seq2seq": loaded.seq2seq,
            "chat_template_id": chat_template_id(loaded.tokenizer) if chat else None,
        }
        if lookup is not None and lookup.key is not None and cache is not None:
            cache.store(
                lookup.key,
                predictions,
                {"seq2seq": loaded.seq2seq, "chat_template_id": info["chat_template_id"]},
            )
    for row, prediction in zip(rows, predictions, strict=True):
        row["prediction"] = prediction
    described = {
        "model": model,
        "adapter": info["adapter"],
        "base": info["base"],
        "seq2seq": info["seq2seq"],
        "tuned_on": tuned_on_tasks(info["adapter"] or model),
        "chat_template_id": info["chat_template_id"],
    }
    if lookup is not None:
        described["predictions_cache"] = {"hit": lookup.hit, "key": lookup.key}
    return described


def _model_and_adapter(model: str, adapter: str | None) -> tuple[str | None, str]:
    """(adapter, base) as ``load_for_inference`` resolves them, without loading anything."""
    from instructkit.modeling import adapter_base_model, is_adapter_dir

    if adapter is None and is_adapter_dir(model):
        return model, adapter_base_model(model)
    return adapter, model


def _device_kind() -> str:
    """Where ``load_model`` puts the model: the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(model: str, adapter: str | None = None, quiet: bool = False) -> Any:
    """Load a model or model + adapter for generation, on the GPU when there is one."""
    import torch
    from transformers.utils import logging as hf_logging

    from instructkit.modeling import load_for_inference

    if quiet or not sys.stderr.isatty():
        # transformers' "Loading weights" bars would interleave with our one-line output
        hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        # peft calls transformers APIs deprecated in v5: noise the user can do nothing about
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        with working(f"Loading model {model}", quiet):
            loaded = load_for_inference(model, adapter)
    if torch.cuda.is_available():
        loaded.model.to("cuda")
    else:
        # float32 on CPU, as train uses there: a bf16 checkpoint (SmolLM2) generates differently
        # once prompts are left-padded into a batch, so greedy predictions would depend on the
        # batch; in float32 they are those of apply_chat_template + generate, row by row
        loaded.model.float()
    return loaded


def tuned_on_tasks(model_dir: str | os.PathLike[str]) -> list[str]:
    """The tasks ``instructkit train`` trained this model or adapter on ([] if unknown)."""
    info = read_train_metadata(model_dir) or {}
    tasks = info.get("tasks") or []
    return list(tasks) if isinstance(tasks, list) else list(dict(tasks))


def write_predictions(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """One JSON object per row with the fields in PREDICTION_FIELDS."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            record = {name: row.get(name) for name in PREDICTION_FIELDS}
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )


# ---------------------------------------------------------------- scoring a predictions file


def score_file(
    predictions: str | os.PathLike[str],
    references: Sequence[str | os.PathLike[str]] = (),
    reference_fields: Sequence[str] | None = None,
    scoring: ScoringOptions | None = None,
    modes: Sequence[str] | None = None,
) -> dict[str, ScoreReport]:
    """Score a predictions file (jsonl, or text with one prediction per line), per mode.

    ``modes`` None: every multi-reference mode when some row has several references.
    """
    scoring = scoring or ScoringOptions()
    rows = read_predictions(predictions)
    if references:
        refs = read_references(references, reference_fields)
        if len(refs) != len(rows):
            raise EvaluateError(
                f"'{predictions}' has {len(rows)} predictions but the references have "
                f"{len(refs)} rows: give one prediction per reference row."
            )
        for row, row_refs in zip(rows, refs, strict=True):
            row["references"] = row_refs
    missing = next((i for i, row in enumerate(rows) if not row.get("references")), None)
    if missing is not None:
        raise EvaluateError(
            f"Prediction {missing + 1} of '{predictions}' has no references: "
            f"pass --references FILE."
        )
    if modes is None:
        # with several references per row the modes differ, and seeing all three is the point
        several = any(len(row["references"]) > 1 for row in rows)
        modes = list(MULTI_REF_MODES) if several else [scoring.multi_ref]
    return score_rows(rows, {}, scoring, modes)


def read_predictions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows with ``prediction`` (and ``references``, ``task`` when a jsonl file has them)."""
    lines = _read_lines(path, what="Predictions file")
    if not is_jsonl(path, lines):
        return [{"task": "all", "prediction": line, "references": []} for line in lines]
    rows = []
    for number, record in _parse_jsonl(path, lines):
        if "prediction" not in record:
            raise EvaluateError(
                f"Line {number} of '{path}' has no 'prediction' field: "
                f"it has {', '.join(record) or 'no fields'}."
            )
        if not isinstance(record["prediction"], str):
            shown = json.dumps(record["prediction"], allow_nan=True)  # not written: a message
            raise EvaluateError(
                f"Line {number} of '{path}': 'prediction' must be a string, got "
                f'{shown}; write the text in quotes ("" if empty).'
            )
        key = "references" if "references" in record else "reference"
        refs = record.get(key) or []
        rows.append(
            {
                "task": record.get("task") or "all",
                "prediction": record["prediction"],
                "references": _texts(refs, f"Line {number} of '{path}': '{key}'"),
            }
        )
    return rows


def read_references(
    paths: Sequence[str | os.PathLike[str]], fields: Sequence[str] | None = None
) -> list[list[str]]:
    """References per row: text files give one each per line, jsonl files the named fields."""
    columns: list[list[list[str]]] = []
    for path in paths:
        lines = _read_lines(path, what="References file")
        if is_jsonl(path, lines):
            columns.append(_jsonl_references(path, _parse_jsonl(path, lines), fields))
        else:
            columns.append([[line] for line in lines])
    counts = {len(column) for column in columns}
    if len(counts) > 1:
        sizes = ", ".join(f"'{p}' has {len(c)}" for p, c in zip(paths, columns, strict=True))
        raise EvaluateError(f"Reference files differ in length ({sizes}): give one row per line.")
    return [[ref for column in columns for ref in column[i]] for i in range(len(columns[0]))]


def _jsonl_references(
    path: str | os.PathLike[str],
    records: list[tuple[int, dict[str, Any]]],
    fields: Sequence[str] | None,
) -> list[list[str]]:
    fields = list(fields or ["references"])
    rows = []
    for number, record in records:
        missing = [name for name in fields if name not in record]
        if missing:
            raise EvaluateError(
                f"Line {number} of '{path}' has no {', '.join(missing)} field: it has "
                f"{', '.join(record)}; choose fields with --reference-fields a,b,c."
            )
        row: list[str] = []
        for name in fields:
            row.extend(_texts(record[name], f"Line {number} of '{path}': field '{name}'"))
        rows.append(row)
    return rows


def _texts(value: Any, where: str) -> list[str]:
    """A reference value as a list of strings: a string, or a list of strings, nothing else."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        shown = json.dumps(value, allow_nan=True)[:60]  # not written: a message
        raise EvaluateError(
            f"{where} must be a string or a list of strings, got {shown}: write each "
            f"reference as text in quotes."
        )
    return values


def is_jsonl(path: str | os.PathLike[str], lines: Sequence[str]) -> bool:
    """A .jsonl/.json file, or one whose first line is a JSON object."""
    if Path(path).suffix in (".jsonl", ".json"):
        return True
    return bool(lines) and lines[0].lstrip().startswith("{")


def _read_lines(path: str | os.PathLike[str], what: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise EvaluateError(f"{what} '{path}' does not exist.")
    # split on "\n" only: str.splitlines also breaks at U+2028 and friends found in real text
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as ex:
        raise EvaluateError(
            f"{what} '{path}' is not valid UTF-8 (byte {ex.object[ex.start : ex.start + 1]!r} "
            f"at offset {ex.start}): re-encode it as UTF-8."
        ) from ex
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()  # the final newline and trailing blank lines end the file, not a row
    if not any(line.strip() for line in lines):
        raise EvaluateError(f"{what} '{path}' is empty: give one row per line.")
    return lines


def _parse_jsonl(
    path: str | os.PathLike[str], lines: Sequence[str]
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as ex:
            raise EvaluateError(f"Line {number} of '{path}' is not JSON: {ex}.") from ex
        if not isinstance(record, dict):
            raise EvaluateError(f"Line {number} of '{path}' is not a JSON object.")
        records.append((number, record))
    return records

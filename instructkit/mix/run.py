"""Mix rendered datasets into one exact, reproducible multitask dataset.

Order of work (each step reported in the manifest):
1. read every input (memory-mapped) and its manifest;
2. hygiene on the train candidates: exact duplicates (first occurrence in spec order kept),
   then n-gram overlap with every validation/test split and any extra evaluation set
   (reported, or dropped with ``decontaminate: drop``);
3. quotas from what remains (so a dropped row is replaced by another row of the same task,
   never by a row of another task), by largest remainder so they sum exactly to the total;
4. the train split, streamed in chunks: a low-discrepancy schedule of tasks, each task's
   rows in a seeded order (full passes plus a seeded remainder);
5. validation and test: every task's rows in spec order, tagged by ``task``, optionally capped.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructkit import profiling
from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.dataset import EVAL_SPLITS
from instructkit.artifacts.manifest import Manifest, load_manifest, manifest_fingerprint
from instructkit.chat import table_form
from instructkit.errors import MixError
from instructkit.memory import use_fast_pool
from instructkit.mix.hygiene import (
    ContaminationReport,
    WordIndex,
    duplicate_masks,
    find_contamination,
    row_text,
    word_index,
)
from instructkit.mix.plan import MixResult, TaskInput, TaskPlan
from instructkit.mix.quotas import TaskDraw, compute_quotas
from instructkit.mix.spec import MixSpec, TaskSpec
from instructkit.mix.write import RowGatherer, write_mixture
from instructkit.progress import progress_bar

TokenCounter = Callable[[list[str]], Sequence[int]]


# ---------------------------------------------------------------- entry points


def mix_datasets(
    spec: MixSpec,
    out: str | os.PathLike[str] | None,
    *,
    epoch: int = 0,
    dry_run: bool = False,
    overwrite: bool = False,
    num_shards: int | None = None,
    count_tokens: TokenCounter | None = None,
    quiet: bool = True,
    command: Mapping[str, Any] | None = None,
) -> MixResult:
    """Plan the mixture and, unless ``dry_run``, write it to ``out`` as a dataset directory."""
    use_fast_pool()
    if not dry_run:
        if out is None:
            raise MixError("No output directory: pass --out DIR (or --dry-run to only plan).")
        # fail before the (possibly long) planning, with the same checks the writer makes
        paths = [t.path for t in spec.tasks] + list(spec.eval_sets) + [spec.tokenizer]
        artifact.check_output_path(Path(out), overwrite, "mix", paths)
    if count_tokens is None and spec.tokenizer:
        count_tokens = load_token_counter(spec.tokenizer)
    with profiling.phase("read inputs"):
        inputs = read_inputs(spec)
    with profiling.phase("hygiene (dedup, decontamination)"):
        hygiene = _hygiene(spec, inputs, quiet)
        for task in inputs:  # dedup and decontamination read every row: hand the pages back
            task.release_train()
    with profiling.phase("plan (tokens, quotas, draws)"):
        tasks, draws = _plan(spec, inputs, hygiene, epoch, count_tokens)
    result = MixResult(spec, epoch, tasks, _contamination_json(spec, hygiene.report))
    if dry_run:
        return result
    assert out is not None
    write_mixture(result, inputs, draws, Path(out), overwrite, num_shards, quiet, command)
    return result


def load_token_counter(name: str) -> TokenCounter:
    """Count tokens with a Hugging Face tokenizer (a hub name or a local directory)."""
    from instructkit.modeling import auto_tokenizer

    try:
        import transformers  # noqa: F401
    except ImportError as ex:  # token shares are optional: data building works without torch
        raise MixError(
            "Counting tokens needs transformers: pip install 'instructkit[train]'."
        ) from ex
    try:
        tokenizer = auto_tokenizer(name)
    except (OSError, ValueError) as ex:
        raise MixError(
            f"Tokenizer '{name}' could not be loaded: give a local path or hub id."
        ) from ex

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return count


# ---------------------------------------------------------------- inputs


def read_inputs(spec: MixSpec) -> list[TaskInput]:
    """Open every task's dataset directory and check it can be mixed."""
    inputs = [_read_input(task) for task in spec.tasks]
    check_one_form(inputs)
    names = [i.name for i in inputs]
    for name in names:
        if names.count(name) > 1:
            raise MixError(
                f"Two tasks are named '{name}': set a unique 'name' on one of them in the spec."
            )
    return inputs


def _read_input(task: TaskSpec) -> TaskInput:
    splits = artifact.list_splits(task.path)
    if "train" not in splits:
        raise MixError(
            f"'{task.path}' has no train split (it has {', '.join(splits) or 'none'}): "
            f"mix needs train rows."
        )
    manifest = load_manifest(task.path)
    mapped = artifact.map_split(task.path, "train")
    train = mapped.table
    artifact.require_columns(train, artifact.SCHEMA.names, f"'{task.path}' train split")
    evaluation = {s: artifact.open_split(task.path, s) for s in EVAL_SPLITS if s in splits}
    form = table_form(train, f"'{task.path}' train split")
    for split, table in evaluation.items():
        if table_form(table, f"'{task.path}' {split} split") != form:
            raise MixError(f"'{task.path}' has {form} train rows but not in its {split} split.")
    return TaskInput(
        spec=task,
        name=task.name or _task_name(task.path, manifest, train),
        manifest=manifest.data,
        fingerprint=manifest_fingerprint(task.path),
        train=train,
        evaluation=evaluation,
        form=form,
        release_train=mapped.release,
        train_batch_releasers=mapped.batch_releasers(),
    )


def check_one_form(inputs: list[TaskInput]) -> None:
    """A mixture holds one row form: text and conversational rows cannot share a column."""
    forms = {i.form for i in inputs}
    if len(forms) > 1:
        text = next(i for i in inputs if i.form != "conversational")
        chat = next(i for i in inputs if i.form == "conversational")
        raise MixError(
            f"Cannot mix row forms: '{chat.spec.path}' is conversational, '{text.spec.path}' is "
            f"text; render every input with the same --form."
        )


def _task_name(path: str, manifest: Manifest, train: pa.Table) -> str:
    if manifest.task is not None:
        return manifest.task
    values = pc.unique(train["task"]).to_pylist()
    if len(values) == 1 and values[0]:
        return str(values[0])
    raise MixError(
        f"'{path}' holds several tasks ({', '.join(map(str, values[:3]))}): "
        f"give it a 'name' in the spec."
    )


# ---------------------------------------------------------------- hygiene


@dataclass
class Hygiene:
    """The train rows left per task, and what was taken out and why."""

    candidates: list[np.ndarray]
    duplicates: list[int]
    dropped: list[int]
    report: ContaminationReport | None


def _hygiene(spec: MixSpec, inputs: list[TaskInput], quiet: bool) -> Hygiene:
    """Candidate train rows per task after dedup and (with drop) decontamination."""
    duplicates = [np.zeros(i.train.num_rows, dtype=bool) for i in inputs]
    if spec.dedup:
        duplicates = duplicate_masks([i.train for i in inputs], [i.release_train for i in inputs])
    report = _contamination(spec, inputs, quiet) if spec.decontaminate != "off" else None
    dropped = [np.zeros_like(d) for d in duplicates]
    if report is not None and spec.decontaminate == "drop":
        dropped = [m & ~d for m, d in zip(report.masks, duplicates, strict=True)]
    return Hygiene(
        candidates=[np.flatnonzero(~(d | x)) for d, x in zip(duplicates, dropped, strict=True)],
        duplicates=[int(d.sum()) for d in duplicates],
        dropped=[int(x.sum()) for x in dropped],
        report=report,
    )


def _contamination(spec: MixSpec, inputs: list[TaskInput], quiet: bool) -> ContaminationReport:
    evaluation = [(f"{i.name}/{s}", t) for i in inputs for s, t in i.evaluation.items()]
    evaluation += _extra_eval_sets(spec.eval_sets)
    # find_contamination asks for each train set twice and each evaluation set three times,
    # one at a time: the word indexes of every set at once outgrew memory at 500 tasks
    # (29 GB). Up to WORD_CACHE_WORDS words are kept between passes instead of recomputed.
    passes = 2 * len(inputs) + 3 * len(evaluation)
    cache = _WordCache(WORD_CACHE_WORDS)
    with progress_bar(passes, "decontaminate", quiet, unit="passes") as bar:

        def train_words(task: TaskInput) -> WordIndex:
            words = cache.get(id(task), lambda: word_index(row_text(task.train)))
            task.release_train()
            bar.update(1)
            return words

        def eval_words(table: pa.Table) -> WordIndex:
            words = cache.get(id(table), lambda: word_index(row_text(table)))
            bar.update(1)
            return words

        return find_contamination(
            [(i.name, functools.partial(train_words, i)) for i in inputs],
            [(name, functools.partial(eval_words, t)) for name, t in evaluation],
            spec.ngram,
            spec.boilerplate_fraction,
        )


# Words of the sets decontamination keeps between its passes (16 bytes a word: ~1 GB).
WORD_CACHE_WORDS = 64 * 1024 * 1024


class _WordCache:
    """Word indexes kept while they fit in ``budget`` words; the rest computed each time."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.kept: dict[int, WordIndex] = {}
        self.words = 0

    def get(self, key: int, compute: Callable[[], WordIndex]) -> WordIndex:
        if key in self.kept:
            return self.kept[key]
        words = compute()
        if self.words + len(words.words) <= self.budget:
            self.kept[key] = words
            self.words += len(words.words)
        return words


def _extra_eval_sets(paths: Sequence[str]) -> list[tuple[str, pa.Table]]:
    sets = []
    for path in paths:
        label = str(load_manifest(path).data.get("task") or Path(path).name)
        for split in artifact.list_splits(path):
            if split != "train":
                table = artifact.open_split(path, split)
                artifact.require_columns(table, artifact.REQUIRED_COLUMNS, f"'{path}' {split}")
                sets.append((f"{label}/{split} ({path})", table))
    return sets


def _contamination_json(spec: MixSpec, report: ContaminationReport | None) -> dict[str, Any]:
    data: dict[str, Any] = {"mode": spec.decontaminate, "ngram": spec.ngram}
    if report is not None:
        data["pairs"] = report.pairs
        data["boilerplate_phrases_removed"] = report.boilerplate_phrases
        data["boilerplate_threshold_rows"] = report.threshold_rows
        data["extra_eval_sets"] = list(spec.eval_sets)
    return data


# ---------------------------------------------------------------- plan


def _plan(
    spec: MixSpec,
    inputs: list[TaskInput],
    hygiene: Hygiene,
    epoch: int,
    count_tokens: TokenCounter | None,
) -> tuple[list[TaskPlan], list[TaskDraw]]:
    candidates = hygiene.candidates
    counted = [
        _token_sample(c, i.name) if count_tokens is not None else c
        for i, c in zip(inputs, candidates, strict=True)
    ]
    tokens = [
        _row_tokens(i.train, c, count_tokens, i.train_batch_releasers)
        for i, c in zip(inputs, counted, strict=True)
    ]
    per_row = [float(t.mean()) if spec.unit == "tokens" and len(t) else 1.0 for t in tokens]
    names = [i.name for i in inputs]
    quotas = compute_quotas(spec, names, [len(c) for c in candidates], per_row)
    draws = [
        TaskDraw(c, q.rows, spec.seed, epoch, n)
        for n, c, q in zip(names, candidates, quotas, strict=True)
    ]
    plans = []
    for index, (task, quota, draw) in enumerate(zip(inputs, quotas, draws, strict=True)):
        if quota.rows and not len(candidates[index]):
            raise MixError(
                f"Task '{task.name}' has no train rows left after dedup/decontamination: "
                f"remove it, or use 'decontaminate: report'."
            )
        used = draw.use_counts() if len(candidates[index]) else np.zeros(1, dtype=np.int64)
        report = hygiene.report
        sampled = len(counted[index]) < len(candidates[index])
        plans.append(
            TaskPlan(
                name=task.name,
                path=task.spec.path,
                rule=quota.rule,
                source_rows=task.train.num_rows,
                duplicates=hygiene.duplicates[index],
                contaminated=int(report.masks[index].sum()) if report is not None else 0,
                dropped=hygiene.dropped[index],
                available=len(candidates[index]),
                target_rows=quota.target_rows,
                quota=quota.rows,
                repetition=draw.repetition,
                times_used=(int(used.min()), int(used.max())),
                eval_rows={s: _eval_rows(t, spec.eval_cap) for s, t in task.evaluation.items()},
                tokens=_quota_tokens(used, tokens[index], quota.rows, sampled, count_tokens),
                tokens_sampled_rows=len(counted[index]) if sampled else None,
            )
        )
    return plans, draws


TOKEN_BATCH_ROWS = 4096
# Rows tokenized per task for its mean tokens per row (a task this small is counted whole).
# Tokenizing is ~2,500 DialogSum rows/s a core: counting every row of a 1M-row task took
# minutes, while the mean of 8,192 sampled rows is within ~0.5% (standard error) of it.
TOKEN_SAMPLE_ROWS = 8192


def _token_sample(candidates: np.ndarray, name: str) -> np.ndarray:
    """The candidate rows whose tokens are counted: all of them up to TOKEN_SAMPLE_ROWS, else
    a fixed random subset, seeded by the task's name and size alone (never by ``seed`` or
    ``epoch``, which move the order, not the quotas), in row order so reads go forward."""
    if len(candidates) <= TOKEN_SAMPLE_ROWS:
        return candidates
    rng = np.random.default_rng([zlib.crc32(name.encode()), len(candidates)])
    return candidates[np.sort(rng.choice(len(candidates), TOKEN_SAMPLE_ROWS, replace=False))]


def _quota_tokens(
    used: np.ndarray,
    tokens: np.ndarray,
    quota: int,
    sampled: bool,
    count: TokenCounter | None,
) -> int | None:
    """Train tokens in a task's quota: exact when every row was counted, else the quota times
    the sampled mean (the plan marks it with the number of rows sampled)."""
    if count is None:
        return None
    if sampled:
        return round(quota * float(tokens.mean()))
    return int((used * tokens).sum())


def _row_tokens(
    table: pa.Table,
    rows: np.ndarray,
    count: TokenCounter | None,
    releasers: Sequence[Callable[[], None]] = (),
) -> np.ndarray:
    """Tokens of each candidate row, counted in batches: memory stays at one batch of text
    and its ids, however many rows a task has (one call per task held them all). Rows are
    taken batch by batch (``Table.take`` would concatenate the whole task for every batch)."""
    if count is None:
        return np.empty(0, dtype=np.int64)
    gatherer = RowGatherer([table], [releasers] if releasers else ())
    tokens = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), TOKEN_BATCH_ROWS):
        batch = rows[start : start + TOKEN_BATCH_ROWS]
        texts = row_text(gatherer.take(batch)).to_pylist()
        tokens[start : start + len(batch)] = np.asarray(count(texts), dtype=np.int64)
    return tokens


def _eval_rows(table: pa.Table, cap: int | None) -> int:
    return min(table.num_rows, cap) if cap is not None else table.num_rows


# ---------------------------------------------------------------- report


def format_plan(result: MixResult) -> str:
    """The plan (or what was written) as a text table, one row per task, then the totals."""
    from instructkit.artifacts.inspect import format_table

    total = result.total
    target_total = sum(t.target_rows for t in result.tasks) or 1.0
    with_tokens = any(t.tokens is not None for t in result.tasks)
    headers = ["task", "rule", "source", "dups", "contam", "avail", "target", "quota", "share"]
    headers += ["repeat"] + (["tokens"] if with_tokens else [])
    rows = []
    for t in result.tasks:
        row = [t.name, t.rule, t.source_rows, t.duplicates, _contam_cell(t), t.available]
        row += [f"{t.target_rows / target_total:.2%}", t.quota, f"{t.quota / (total or 1):.2%}"]
        row += [f"x{t.repetition:.2f} ({t.times_used[0]}-{t.times_used[1]})"]
        rows.append(row + ([_tokens_cell(t)] if with_tokens else []))
    lines = [format_table(headers, rows), _totals_line(result)]
    lines += _contamination_lines(result.contamination)
    return "\n".join(lines)


def _tokens_cell(task: TaskPlan) -> str | int:
    if task.tokens is None:
        return "-"
    return f"~{task.tokens:,}" if task.tokens_sampled_rows else task.tokens


def _contam_cell(task: TaskPlan) -> str | int:
    return f"{task.contaminated} dropped" if task.dropped else task.contaminated


def _totals_line(result: MixResult) -> str:
    evals: dict[str, int] = {}
    for task in result.tasks:
        for split, rows in task.eval_rows.items():
            evals[split] = evals.get(split, 0) + rows
    parts = [f"train {result.total} rows"] + [f"{s} {n} rows" for s, n in evals.items()]
    line = ", ".join(parts)
    if result.max_prefix_deviation is not None:
        line += f"; max prefix error {result.max_prefix_deviation:.2f} rows (bound 1)"
    where = f" -> {result.out}" if result.out is not None else " (dry run: nothing written)"
    return line + where


def _contamination_lines(data: dict[str, Any]) -> list[str]:
    if data.get("mode") == "off":
        return ["decontamination: off"]
    pairs = data.get("pairs") or []
    head = f"decontamination ({data['ngram']}-grams, {data['mode']}): "
    if not pairs:
        return [head + "no overlap with any evaluation set"]
    return [head + f"{len(pairs)} overlapping task pairs"] + [
        f"  {p['train_task']} train x {p['eval_set']}: {p['train_rows']} train rows, "
        f"{p['eval_rows']} eval rows"
        for p in pairs
    ]

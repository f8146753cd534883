"""Render a raw dataset through a template pack into an instructkit dataset directory.

The public entry point is :func:`render_dataset`. It resolves the source and the pack, scans
each split once (example keys and empty fields), assigns templates from the seed and the keys,
then streams batches through the renderer into Arrow shards inside an atomic output directory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from instructkit import __version__, profiling
from instructkit.artifacts.dataset import (
    DEFAULT_MAX_SHARD_BYTES,
    SPLITS,
    SplitInfo,
    SplitWriter,
    atomic_output_dir,
    check_output_path,
    rows_per_shard,
    schema_for,
    write_dataset_dict,
)
from instructkit.artifacts.manifest import write_manifest
from instructkit.errors import (
    OptionsError,
    RenderError,
    SourceError,
    TemplateError,
)
from instructkit.memory import use_fast_pool
from instructkit.progress import progress_bar
from instructkit.render.assign import (
    ASSIGNMENTS,
    assign_templates,
    check_ratios,
    cut_splits,
)
from instructkit.render.batch import (
    BackgroundWriter,
    BatchJob,
    BatchRenderer,
    FixedChunks,
    present,
    run_batches,
)
from instructkit.render.budget import TokenBudget, length_stats
from instructkit.render.fast import index_array, text_array
from instructkit.render.formats import compile_pack
from instructkit.render.framing import DEMO_POOL_SIZE, FORMS, DemoPool, Framing
from instructkit.render.sources import (
    RawDataset,
    RawSplit,
    apply_column_map,
    get_source,
    load_generic,
)
from instructkit.render.templates import CompiledTemplate, Pack, find_pack, load_pack
from instructkit.resources import check_num_proc, workers_for

ON_EMPTY = ("skip", "fail")


@dataclass
class RenderOptions:
    """Everything that shapes the output (recorded in the manifest), plus how to run."""

    templates: str | None = None
    data_dir: str | None = None
    data_files: dict[str, str] | None = None
    revision: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    key_column: str | None = None
    splits: list[str] | None = None
    split_ratios: list[float] | None = None
    assignment: str = "balanced"
    template_ids: list[str] | None = None
    eval_inverted: bool = False
    seed: int = 0
    on_empty: str = "skip"
    tokenizer: str | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    num_shards: int | None = None
    max_shard_size: int | None = None
    # The row form and its framing (None: the pack's `form`, `system`, `separator`).
    form: str | None = None
    system: str | None = None
    separator: str | None = None
    few_shot: int = 0
    # How to run: never changes a byte of the output, so not recorded.
    num_proc: int = 1
    # Examples per batch. Fewer rows in flight touch less fresh memory (DialogSum x8, every
    # template: 4096 -> 2048 took peak RSS 492 -> 372 MB and page faults 95k -> 64k, same CPU).
    batch_size: int = 2048
    overwrite: bool = False
    quiet: bool = True

    def __post_init__(self) -> None:
        if self.assignment not in ASSIGNMENTS:
            raise OptionsError(f"--assignment must be one of {', '.join(ASSIGNMENTS)}.")
        if self.on_empty not in ON_EMPTY:
            raise OptionsError(f"--on-empty must be one of {', '.join(ON_EMPTY)}.")
        if (self.max_prompt_tokens or self.max_completion_tokens) and not self.tokenizer:
            raise OptionsError("Token budgets need a tokenizer: add --tokenizer NAME_OR_PATH.")
        if self.num_proc < 1 or self.batch_size < 1:
            raise OptionsError("--num-proc and the batch size must be at least 1.")
        check_num_proc(self.num_proc)
        if self.split_ratios is not None:
            check_ratios(list(self.split_ratios))
        if self.form is not None and self.form not in FORMS:
            raise OptionsError(f"--form must be one of {', '.join(FORMS)}, got '{self.form}'.")
        if self.few_shot < 0:
            raise OptionsError("--few-shot must be 0 or more.")

    def recorded(self) -> dict[str, Any]:
        """The options that shape the output, for the manifest."""
        values = asdict(self)
        for name in ("num_proc", "batch_size", "overwrite", "quiet"):
            values.pop(name)
        return values


@dataclass
class SplitPlan:
    """What one output split will hold: its rows (per source split) and their templates."""

    name: str
    templates: list[CompiledTemplate]
    members: list[tuple[RawSplit, np.ndarray, pa.Array]]  # (source, kept-row mask, ids)
    assignment: np.ndarray | None
    references: dict[str, list[str]]
    skipped: Counter

    @property
    def kept_rows(self) -> int:
        return int(sum(mask.sum() for _, mask, _ in self.members))


@dataclass
class SplitReport:
    """What was written for one split."""

    name: str
    templates: list[str]
    info: SplitInfo
    counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    over_budget: Counter = field(default_factory=Counter)
    empty_prompts: Counter = field(default_factory=Counter)
    empty_completions: Counter = field(default_factory=Counter)
    prompt_tokens: dict[str, list[np.ndarray]] = field(default_factory=dict)
    completion_tokens: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def length_stats(self) -> dict[str, Any]:
        stats = {}
        for tid in sorted(self.prompt_tokens):
            stats[tid] = {
                "prompt": length_stats(np.concatenate(self.prompt_tokens[tid])),
                "completion": length_stats(np.concatenate(self.completion_tokens[tid])),
            }
        return stats


@dataclass
class RenderResult:
    """The outcome of :func:`render_dataset`: where it went, what it holds, how fast."""

    out: Path
    task: str
    splits: list[SplitReport]
    seconds: float
    manifest: dict[str, Any]

    @property
    def num_rows(self) -> int:
        return sum(s.info.num_rows for s in self.splits)

    @property
    def rows_per_second(self) -> float:
        return self.num_rows / self.seconds if self.seconds > 0 else float("inf")


# ---------------------------------------------------------------- entry point


def render_dataset(
    source: str, out: str | Path, options: RenderOptions | None = None, **fields: Any
) -> RenderResult:
    """Render ``source`` through a template pack into the dataset directory ``out``.

    ``options`` is a :class:`RenderOptions` (the CLI builds one, like mix's ``MixSpec``);
    keyword arguments set its fields, alone or on top of ``options``.
    """
    opts = replace(options, **fields) if options is not None else RenderOptions(**fields)
    started = time.perf_counter()
    use_fast_pool()
    check_output_path(Path(out), opts.overwrite, "render", render_inputs(source, opts))
    with profiling.phase("read inputs (+ hash)"):
        raw, pack = resolve(source, opts)
    with profiling.phase("compile templates"):
        compiled = select_templates(compile_pack(pack), opts.template_ids, pack)
    plans = plan_splits(raw, pack, compiled, opts)
    budget = load_budget(opts)
    framing = make_framing(raw, pack, compiled, plans, opts)
    total = sum(p.kept_rows for p in plans)
    with (
        atomic_output_dir(out, opts.overwrite, "render") as tmp,
        progress_bar(total, f"render {pack.task}", opts.quiet, unit="examples") as bar,
    ):
        reports = [write_split_rows(tmp, plan, pack, budget, opts, bar, framing) for plan in plans]
        profiling.memory_snapshot("memory after the splits")
        with profiling.phase("manifest"):
            write_dataset_dict(tmp, [r.name for r in reports])
            manifest = build_manifest(source, raw, pack, compiled, reports, opts, framing)
            write_manifest(tmp, manifest)
        finishing = time.perf_counter()
    profiling.add("finish (rename output)", time.perf_counter() - finishing)
    return RenderResult(Path(out), pack.task, reports, time.perf_counter() - started, manifest)


def render_inputs(source: str, opts: RenderOptions) -> list[str | Path | None]:
    """Local paths render will read (an output must not overlap them). A preset or pack name
    is not a path even when a folder of that name exists here: resolve() never reads it."""
    paths: list[str | Path | None] = [opts.data_dir, opts.tokenizer]
    paths += list((opts.data_files or {}).values())
    if opts.templates:
        paths.append(find_pack(opts.templates))
    if get_source(source) is None:
        as_pack = None if opts.data_files else find_pack(source)
        paths.append(as_pack if as_pack is not None else source)
    return paths


def resolve(source: str, opts: RenderOptions) -> tuple[RawDataset, Pack]:
    """The raw dataset and the pack: a preset, a pack name (its preset), or a generic source."""
    preset = get_source(source)
    pack_name = opts.templates
    if preset is None and not opts.data_files and find_pack(source) is not None:
        # 'render dialogsum_topic': that pack, with the data of the preset it names.
        pack_name = pack_name or source
        preset = get_source(load_pack(source).source or "")
        if preset is None:
            raise SourceError(f"Pack '{source}' names no known source: pass the data explicitly.")
    if preset is not None:
        if opts.data_files:
            raise OptionsError(f"Use --data-dir with the '{preset.name}' preset, not --data-file.")
        raw = preset.load(opts.data_dir, opts.revision)
        pack = load_pack(pack_name or preset.name)
    else:
        if opts.templates is None:
            raise OptionsError(f"'{source}' is not a preset: name a pack with --templates PACK.")
        raw = load_generic(source, opts.data_files, opts.revision, opts.key_column)
        pack = load_pack(opts.templates)
    if opts.key_column:
        for split in raw.splits.values():
            split.key_column = opts.key_column
    apply_column_map(raw, opts.column_map)
    return raw, pack


def select_templates(
    compiled: list[CompiledTemplate], template_ids: list[str] | None, pack: Pack
) -> list[CompiledTemplate]:
    """The templates named by --template (all of them by default), in pack order."""
    if not template_ids:
        return compiled
    for tid in template_ids:
        pack.template(tid)  # raises with the list of ids when unknown
    return [t for t in compiled if t.template_id in template_ids]


def load_budget(opts: RenderOptions) -> TokenBudget | None:
    if not opts.tokenizer:
        return None
    return TokenBudget(opts.tokenizer, opts.max_prompt_tokens, opts.max_completion_tokens)


# ---------------------------------------------------------------- planning


def plan_splits(
    raw: RawDataset, pack: Pack, compiled: list[CompiledTemplate], opts: RenderOptions
) -> list[SplitPlan]:
    """Scan every source split and decide each output split's rows and templates."""
    sources = select_source_splits(raw, opts)
    with profiling.phase("scan (ids, empty fields)"):
        scans = {name: scan_split(split, compiled, opts) for name, split in sources.items()}
    if sum(int(s[0].sum()) for s in scans.values()) == 0:
        raise RenderError(
            f"No rows to render from '{raw.source}': the data is empty or every row has an "
            f"empty field (see --on-empty)."
        )
    if opts.split_ratios is None:
        groups = {name: [(sources[name], *scans[name])] for name in sources}
    else:
        groups = cut_by_ratios(sources, scans, opts)
    plans = []
    for name, members in groups.items():
        templates = templates_for_split(name, compiled, opts)
        skipped: Counter = Counter()
        for member in members:
            skipped.update(member[3])
        with profiling.phase("assign templates"):
            kept_ids = _kept_ids(members)
            assignment = assign_templates(
                kept_ids, [t.template_id for t in templates], opts.assignment, opts.seed, name
            )
        references = {k: v for m in members for k, v in m[0].references.items()}
        plans.append(
            SplitPlan(name, templates, [m[:3] for m in members], assignment, references, skipped)
        )
    return plans


def select_source_splits(raw: RawDataset, opts: RenderOptions) -> dict[str, RawSplit]:
    """The source splits to render (--splits), in train/validation/test order."""
    order = {name: i for i, name in enumerate(SPLITS)}
    available = sorted(raw.splits, key=lambda n: (order.get(n, len(order)), n))
    wanted = opts.splits or available
    unknown = [s for s in wanted if s not in raw.splits]
    if unknown and opts.split_ratios is None:
        raise SourceError(
            f"Unknown split '{unknown[0]}' in '{raw.source}': it has {', '.join(available)}."
        )
    if opts.split_ratios is not None:
        return {name: raw.splits[name] for name in available}
    return {name: raw.splits[name] for name in available if name in wanted}


def templates_for_split(
    split: str, compiled: list[CompiledTemplate], opts: RenderOptions
) -> list[CompiledTemplate]:
    """Evaluation splits are scored against references: original templates only by default."""
    if split == "train" or opts.eval_inverted:
        return compiled
    chosen = [t for t in compiled if t.kind == "original"]
    if not chosen:
        raise TemplateError(
            f"No 'original' template selected for split '{split}': add one, "
            f"or pass --eval-inverted to render inverted templates there too."
        )
    return chosen


def scan_split(
    split: RawSplit, compiled: list[CompiledTemplate], opts: RenderOptions
) -> tuple[np.ndarray, pa.Array, Counter]:
    """One pass over a split: which rows are kept, each row's example id, what was skipped."""
    if split.num_rows == 0:
        return np.zeros(0, dtype=bool), text_array([]), Counter()
    fields = sorted(set().union(*(t.all_fields for t in compiled)))
    check_fields_exist(split, fields, compiled)
    keep_parts: list[np.ndarray] = []
    id_parts: list[pa.Array] = []
    skipped: Counter = Counter()
    columns = None if split.key_column is None else [split.key_column, *fields]
    offset = 0
    for table in split.batches(65536, columns):
        keep = np.ones(table.num_rows, dtype=bool)
        for name in fields:
            ok = present(table.column(name))
            if not ok.all() and opts.on_empty == "fail":
                row = offset + int(np.argmin(ok))
                raise RenderError(
                    f"Row {split.name}[{row}] of '{split.origin}' has an empty '{name}': fix "
                    f"the data, or pass --on-empty skip to skip and count such rows."
                )
            skipped[f"empty:{name}"] += int((~ok & keep).sum())
            keep &= ok
        keep_parts.append(keep)
        id_parts.append(example_ids(table, split))
        offset += table.num_rows
    keep = np.concatenate(keep_parts) if keep_parts else np.zeros(0, dtype=bool)
    ids = pa.concat_arrays(id_parts) if id_parts else text_array([])
    return keep, ids, skipped


def check_fields_exist(
    split: RawSplit, fields: list[str], compiled: list[CompiledTemplate]
) -> None:
    columns = set(split.column_names)
    for name in fields:
        if name not in columns:
            user = next(t for t in compiled if name in t.all_fields)
            raise TemplateError(
                f"Template '{user.task}/{user.template_id}' uses field '{name}', which split "
                f"'{split.name}' of '{split.origin}' lacks (it has {', '.join(sorted(columns))}): "
                f"map a column onto it with --column-map {name}=COLUMN."
            )


def example_ids(table: pa.Table, split: RawSplit) -> pa.Array:
    """The stable key of each row: the key column, else a hash of the row's content."""
    if split.key_column is not None:
        if split.key_column not in table.column_names:
            raise SourceError(
                f"Split '{split.name}' of '{split.origin}' has no key column "
                f"'{split.key_column}': pass --key COLUMN naming a unique id column."
            )
        return table.column(split.key_column).combine_chunks().cast(pa.string())
    return text_array([_content_key(row) for row in table.to_pylist()])


def _content_key(row: dict[str, Any]) -> str:
    # not written, only hashed: a NaN in the data must still give a key
    text = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cut_by_ratios(sources, scans, opts: RenderOptions) -> dict[str, list]:
    """Pool every source split and cut train/validation/test by --split-ratios."""
    ids = pa.concat_arrays([scans[name][1] for name in sources])
    target = cut_splits(ids, list(opts.split_ratios or []), opts.seed)
    groups: dict[str, list] = {}
    start = 0
    for name, split in sources.items():
        keep, split_ids, skipped = scans[name]
        share = target[start : start + len(keep)]
        start += len(keep)
        for index, new_name in enumerate(SPLITS):
            # Skipped rows are counted once, in the split the source row belongs to.
            mine = share == index
            counted = Counter({k: 0 for k in skipped}) if index else skipped
            groups.setdefault(new_name, []).append((split, keep & mine, split_ids, counted))
    return groups


def _kept_ids(members: list) -> pa.Array:
    parts = [ids.take(index_array(np.flatnonzero(mask))) for _, mask, ids, *_ in members]
    return pa.concat_arrays(parts) if parts else text_array([])


# ---------------------------------------------------------------- framing


def make_framing(
    raw: RawDataset,
    pack: Pack,
    compiled: list[CompiledTemplate],
    plans: list[SplitPlan],
    opts: RenderOptions,
) -> Framing:
    """The run's form, separator and system prompt (options over the pack), and demo pools."""
    framing = Framing(
        form=opts.form or pack.form,
        separator=pack.separator if opts.separator is None else opts.separator,
        system=(opts.system if opts.system is not None else pack.system) or None,
        few_shot=opts.few_shot,
        seed=opts.seed,
    )
    if opts.few_shot:
        framing.pools = demo_pools(raw, pack, compiled, plans, opts)
    return framing


def demo_pools(
    raw: RawDataset,
    pack: Pack,
    compiled: list[CompiledTemplate],
    plans: list[SplitPlan],
    opts: RenderOptions,
) -> dict[str, DemoPool]:
    """Each template's demonstration candidates: a seeded sample of train examples, rendered.

    They come from the rows the train split holds (after --split-ratios), or from the source's
    train split when only evaluation splits are rendered; never from validation or test.
    """
    train = next((p for p in plans if p.name == "train"), None)
    if train is None and "train" in raw.splits and opts.split_ratios is None:
        keep, ids, skipped = scan_split(raw.splits["train"], compiled, opts)
        train = SplitPlan("train", compiled, [(raw.splits["train"], keep, ids)], None, {}, skipped)
    if train is None or train.kept_rows == 0:
        raise OptionsError(
            f"--few-shot draws demonstrations from a train split and '{raw.source}' has none."
        )
    rng = np.random.default_rng(opts.seed)
    order = rng.permutation(train.kept_rows)[:DEMO_POOL_SIZE]
    chosen = np.zeros(train.kept_rows, dtype=bool)
    chosen[order] = True
    members, start = [], 0
    for split, mask, ids in train.members:
        kept = np.flatnonzero(mask)
        sample = np.zeros_like(mask)
        sample[kept[chosen[start : start + len(kept)]]] = True
        members.append((split, sample, ids))
        start += len(kept)
    pool_plan = SplitPlan("train", compiled, members, None, {}, Counter())
    renderer = BatchRenderer(pack.task, compiled, {})
    pools = {t.template_id: DemoPool() for t in compiled}
    for job in iter_jobs(pool_plan, compiled, opts):
        table = renderer(job).table
        for row in table.select(["template_id", "example_id", "prompt", "completion"]).to_pylist():
            pool = pools[row["template_id"]]
            pool.example_ids.append(row["example_id"])
            pool.prompts.append(row["prompt"])
            pool.completions.append(row["completion"])
    return pools


# ---------------------------------------------------------------- writing


def write_split_rows(
    tmp: Path,
    plan: SplitPlan,
    pack: Pack,
    budget: TokenBudget | None,
    opts: RenderOptions,
    bar,
    framing: Framing | None = None,
) -> SplitReport:
    """Render one output split into its shards and report what was written."""
    per_example = len(plan.templates) if plan.assignment is None else 1
    writer = SplitWriter(
        tmp,
        plan.name,
        schema=schema_for(framing.form if framing is not None else "text"),
        rows_per_shard=rows_per_shard(plan.kept_rows * per_example, opts.num_shards),
        max_shard_bytes=opts.max_shard_size or DEFAULT_MAX_SHARD_BYTES,
    )
    renderer = BatchRenderer(
        pack.task,
        plan.templates,
        plan.references,
        pack.trim_field,
        budget,
        fail_on_empty=opts.on_empty == "fail",
        framing=framing,
    )
    report = SplitReport(plan.name, [t.template_id for t in plan.templates], writer.info)
    report.skipped.update(plan.skipped)
    chunks = FixedChunks(writer.write)
    batches = sum(-(-len(mask) // opts.batch_size) for _, mask, _ in plan.members)
    num_proc = workers_for(opts.num_proc, batches)
    # Shards are written (IPC, hashing, the file) in a background thread while the next
    # batches render: both release the GIL for their bulk work. Same chunks, same order.
    sink = BackgroundWriter(chunks.add)
    work = tmp / f".render-work-{plan.name}"  # --num-proc: the workers' batches, in order
    jobs = iter_jobs(plan, plan.templates, opts)
    restore = functools.partial(restore_job, plan)
    results = _timed(run_batches(renderer, jobs, num_proc, work, restore))
    try:
        with writer:  # on an error the open shard's threads stop too
            with contextlib.closing(results), sink:  # an error or Ctrl-C stops the workers
                for result in results:
                    sink.put(result.table)
                    _merge(report, result)
                    bar.update(result.examples)
            with profiling.phase("write shards (rest)"):
                chunks.flush()
                report.info = writer.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _timed(results: Iterator[Any]) -> Generator[Any, None, None]:
    """The results, with the time spent producing them counted as the render phase."""
    try:
        while True:
            with profiling.phase("render"):
                result = next(results, None)
            if result is None:
                return
            yield result
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def iter_jobs(
    plan: SplitPlan, templates: list[CompiledTemplate], opts: RenderOptions
) -> Iterator[BatchJob]:
    """Kept rows of each source split in batches, with their slice of the assignment."""
    needed = _needed_columns(plan, templates)
    done = 0
    for member, (split, mask, ids) in enumerate(plan.members):
        offset = 0
        for table in split.batches(opts.batch_size, needed):
            window = mask[offset : offset + table.num_rows]
            index = np.nonzero(window)[0]
            if len(index):
                assignment = None
                if plan.assignment is not None:
                    assignment = plan.assignment[done : done + len(index)]
                every = len(index) == table.num_rows  # no copy when every row is kept
                rows = index_array(index)
                batch_ids = ids.slice(offset, table.num_rows)
                yield BatchJob(
                    table=table if every else table.take(rows),
                    example_ids=batch_ids if every else batch_ids.take(rows),
                    source_split=split.name,
                    source_index=index + offset,
                    assignment=assignment,
                    origin=(member, offset, table.num_rows, needed) if split.in_memory else None,
                )
                done += len(index)
            offset += table.num_rows


def restore_job(plan: SplitPlan, job: BatchJob) -> BatchJob:
    """A job's rows read again from its split, in a worker that inherited the split."""
    assert job.origin is not None
    member, start, length, columns = job.origin
    split, _, ids = plan.members[member]
    table = split.rows_at(start, length, columns)
    example_ids = ids.slice(start, length)
    if len(job.source_index) != length:  # some rows were not kept
        rows = index_array(job.source_index - start)
        table, example_ids = table.take(rows), example_ids.take(rows)
    return replace(job, table=table, example_ids=example_ids)


def _needed_columns(plan: SplitPlan, templates: list[CompiledTemplate]) -> list[str] | None:
    if any(t.whole_row for t in templates):
        return None  # e.g. promptsource templates see the whole example
    names = set().union(*(t.all_fields for t in templates))
    for variants in plan.references.values():
        names.update(variants)
    return sorted(names)


def _merge(report: SplitReport, result) -> None:
    report.counts.update(result.counts)
    report.truncated.update(result.truncated)
    report.over_budget.update(result.over_budget)
    report.empty_prompts.update(result.empty_prompts)
    report.empty_completions.update(result.empty_completions)
    for tid, lengths in result.prompt_tokens.items():
        report.prompt_tokens.setdefault(tid, []).append(lengths)
        report.completion_tokens.setdefault(tid, []).append(result.completion_tokens[tid])


# ---------------------------------------------------------------- manifest


def build_manifest(
    source: str,
    raw: RawDataset,
    pack: Pack,
    compiled: list[CompiledTemplate],
    reports: list[SplitReport],
    opts: RenderOptions,
    framing: Framing | None = None,
) -> dict[str, Any]:
    """The manifest: how the data was made and what it holds (no timestamps: reruns match)."""
    framing = framing or Framing()
    return {
        "kind": "render",
        "instructkit_version": __version__,
        "task": pack.task,
        "form": framing.form,
        "framing": {
            "separator": framing.separator if framing.form == "text" else None,
            "system": framing.system,
            "few_shot": framing.few_shot,
        },
        "metrics": pack.metrics,
        "command": "render",
        "source": source,
        "pack": {"name": pack.path.name, "path": str(pack.path)},
        "options": opts.recorded(),
        "seed": opts.seed,
        "inputs": raw.inputs,
        "templates": {
            t.template_id: {"sha256": t.spec.sha256, "kind": t.kind, "format": t.spec.format}
            for t in compiled
        },
        "eval_templates": (
            "all" if opts.eval_inverted else "original (validation/test use only kind: original)"
        ),
        "split_templates": {r.name: r.templates for r in reports},
        "counts": {r.name: dict(sorted(r.counts.items())) for r in reports},
        "skipped": {r.name: dict(sorted(r.skipped.items())) for r in reports},
        "truncations": {r.name: dict(sorted(r.truncated.items())) for r in reports},
        "over_budget": {r.name: dict(sorted(r.over_budget.items())) for r in reports},
        "empty_prompts": {r.name: dict(sorted(r.empty_prompts.items())) for r in reports},
        "empty_completions": {r.name: dict(sorted(r.empty_completions.items())) for r in reports},
        "tokenizer": opts.tokenizer,
        "length_stats": {r.name: r.length_stats() for r in reports} if opts.tokenizer else {},
        "splits": {r.name: r.info.to_json() for r in reports},
    }

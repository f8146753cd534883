"""Running a trainer: ``run_training`` and the output directory it owns.

``run_training`` does everything a backend should not have to repeat: validating options,
checking the dataset and the model early, never clobbering ``--out``, checkpoints for
``--resume`` (kept in ``OUT.checkpoints`` until the run finishes), Ctrl-C handling, and the
metadata, log and loss chart written beside the model. Importing this module never imports
torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit import output_guard
from instructkit.artifacts.dataset import (
    REQUIRED_COLUMNS,
    check_output_path,
    list_splits,
    open_split,
    require_columns,
    why_unwritable,
)
from instructkit.artifacts.manifest import manifest_fingerprint
from instructkit.artifacts.train_output import (
    CHART_NAME,
    LOG_NAME,
    METADATA_NAME,
    strict_dumps,
    write_log,
)
from instructkit.chat import check_form
from instructkit.errors import DatasetDirError, OutputError, OutputExistsError, TrainerError
from instructkit.train.base import (
    Trainer,
    TrainerOptions,
    TrainResult,
    TrainRun,
    build_options,
    get_trainer,
)

RUN_STATE_NAME = "run.json"


class TrainingInterrupted(TrainerError):
    """Ctrl-C stopped a run after it saved a checkpoint; the checkpoints were kept."""


@dataclass
class TrainSummary:
    """What ``run_training`` returns: the output directory and its metadata."""

    output_dir: Path
    metadata: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def checkpoint_dir_for(out: str | os.PathLike[str]) -> Path:
    """Where checkpoints of ``--out DIR`` live until the run finishes: ``DIR.checkpoints``."""
    target = Path(out)
    return target.parent / f"{target.name}.checkpoints"


def run_training(
    dataset: str | os.PathLike[str],
    backend: str | type[Trainer],
    model: str,
    out: str | os.PathLike[str],
    options: Mapping[str, Any] | TrainerOptions | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
) -> TrainSummary:
    """Train ``backend`` on a dataset directory and write ``out`` (never clobbered silently).

    ``backend`` is a registered trainer id, or a Trainer class (tests of unregistered plugins).
    ``options`` maps option names to values (strings are converted) or is an Options instance.
    """
    trainer_cls = get_trainer(backend) if isinstance(backend, str) else backend
    backend = trainer_cls.trainer_id
    resolved = (
        options if isinstance(options, TrainerOptions) else build_options(trainer_cls, options)
    )
    dataset_dir = Path(dataset)
    check_output_path(Path(out), overwrite, "train", [dataset_dir, model])
    tasks = check_train_input(dataset_dir, resolved)
    base_model = resolve_model(model)
    run = prepare_run(dataset_dir, backend, base_model, Path(out), resolved, overwrite, resume)
    run.quiet = quiet
    started = time.monotonic()
    with _checkpoints_kept_only_when_saved(run):
        result = trainer_cls().train(run, resolved)
    metadata = train_metadata(
        backend, base_model, dataset_dir, resolved, tasks, result, out=Path(out)
    )
    metadata["train_seconds"] = round(time.monotonic() - started, 2)
    if run.is_main_process:
        finish_run(run, Path(out), metadata, result.log)
    return TrainSummary(Path(out), metadata, result.notes)


@contextlib.contextmanager
def _checkpoints_kept_only_when_saved(run: TrainRun) -> Iterator[None]:
    """A run that fails before its first checkpoint leaves nothing behind; a later one keeps
    its checkpoints, and Ctrl-C then says how to resume instead of "nothing was written"."""
    try:
        yield
    except BaseException as ex:
        if not run.is_main_process:
            raise
        work = run.output_dir.parent
        if not any(run.checkpoint_dir.glob("checkpoint-*")):
            shutil.rmtree(work, ignore_errors=True)
            raise
        shutil.rmtree(run.output_dir, ignore_errors=True)
        if isinstance(ex, KeyboardInterrupt):
            raise TrainingInterrupted(
                f"Interrupted: checkpoints kept in '{work}'. Run the same command with --resume "
                f"to continue, or with --overwrite to start over."
            ) from None
        raise


def check_train_input(dataset_dir: Path, options: TrainerOptions) -> list[str]:
    """Fail early on a dataset without the splits or columns asked for; return its sorted tasks.

    A missing validation split is fine when it is the default name (no validation loss then),
    but a name the user gave explicitly must exist: a typo would silently skip validation.
    """
    split = options.train_split
    validation = options.validation_split
    default = type(options).__dataclass_fields__["validation_split"].default
    splits = list_splits(dataset_dir)
    if validation != default and validation not in splits:
        raise DatasetDirError(
            f"validation_split '{validation}' not found in '{dataset_dir}': it has "
            f"{', '.join(splits) or 'no splits'}. Name one of them, or leave validation_split "
            f"unset."
        )
    table = open_split(dataset_dir, split)
    check_form(table, f"split '{split}' of '{dataset_dir}'")  # TRL's forms: trained or refused
    require_columns(table, REQUIRED_COLUMNS, f"Split '{split}' of '{dataset_dir}'")
    if table.num_rows == 0:
        raise DatasetDirError(f"Split '{split}' of '{dataset_dir}' is empty: nothing to train on.")
    if "task" not in table.column_names:
        return []
    import pyarrow.compute as pc

    return sorted(str(t) for t in pc.unique(table.column("task")).to_pylist() if t is not None)


def resolve_model(model: str) -> str:
    """Check the model early; local directories become absolute so adapters can find them."""
    from instructkit.modeling import check_model_source

    source = check_model_source(model)
    path = Path(source)
    return str(path.resolve()) if path.is_dir() else source


def is_main_process() -> bool:
    """False on the non-zero ranks of ``accelerate launch`` / torchrun (read from the env)."""
    return int(os.environ.get("RANK", "0")) == 0


def prepare_run(
    dataset_dir: Path,
    backend: str,
    base_model: str,
    out: Path,
    options: TrainerOptions,
    overwrite: bool,
    resume: bool,
) -> TrainRun:
    """Check ``out`` and the checkpoint directory, and lay out a fresh staging directory."""
    check_output_path(out, overwrite, "train", [dataset_dir, base_model])
    work = checkpoint_dir_for(out)
    state = _run_state(dataset_dir, backend, base_model, options)
    main = is_main_process()
    if resume:
        _check_resumable(work, state)
    elif work.exists() and not overwrite and main:
        # only the main process asks: under a launcher it may already have made `work`
        raise OutputExistsError(
            f"An interrupted run left checkpoints in '{work}': pass --resume to continue it "
            f"or --overwrite to start over."
        )
    staging = work / "output"
    if main:
        if not resume:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
        except OSError as ex:
            raise OutputError(f"Cannot create output '{out}': {why_unwritable(out, ex)}.") from ex
        _write_json(work / RUN_STATE_NAME, state)
    return TrainRun(
        dataset_dir=dataset_dir,
        model=base_model,
        output_dir=staging,
        checkpoint_dir=work / "checkpoints",
        resume=resume,
        is_main_process=main,
    )


def _run_state(
    dataset_dir: Path, backend: str, base_model: str, options: TrainerOptions
) -> dict[str, Any]:
    return {
        "backend": backend,
        "base_model": base_model,
        "dataset": str(dataset_dir.resolve()),
        "dataset_fingerprint": manifest_fingerprint(dataset_dir),
        "options": options.to_dict(),
    }


def _check_resumable(work: Path, state: dict[str, Any]) -> None:
    state_path = work / RUN_STATE_NAME
    if not state_path.is_file():
        raise TrainerError(
            f"Nothing to resume: '{work}' holds no interrupted run. Run again without --resume."
        )
    before = _flatten(json.loads(state_path.read_text()))
    changed = [
        f"{key}: {before.get(key)!r} -> {value!r}"
        for key, value in _flatten(state).items()
        if before.get(key) != value
    ]
    if changed:
        raise TrainerError(
            f"Cannot resume: the interrupted run used other settings ({'; '.join(changed)}). "
            f"Resume with the same settings, or start over with --overwrite."
        )


def _flatten(state: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in state.items() if k != "options"}
    flat.update({f"options.{k}": v for k, v in state.get("options", {}).items()})
    return flat


def train_metadata(
    backend: str,
    base_model: str,
    dataset_dir: Path,
    options: TrainerOptions,
    tasks: list[str],
    result: TrainResult,
    *,
    out: Path | None = None,
) -> dict[str, Any]:
    """The content of ``instructkit-train.json``: enough to reproduce and to evaluate the run.

    ``out`` (the final output directory) lets ``base_model_ref`` record a local base model
    relative to the run, so a copied tree still finds it.
    """
    from instructkit import __version__
    from instructkit.train.record import base_model_ref, command_line, library_versions

    return {
        "instructkit_version": __version__,
        "versions": library_versions(),
        "command_line": command_line(),
        "backend": backend,
        "base_model": base_model,
        "base_model_ref": base_model_ref(base_model, out) if out is not None else None,
        "seq2seq": result.seq2seq,
        "options": options.to_dict(),
        "dataset": {
            "path": str(dataset_dir.resolve()),
            "fingerprint": manifest_fingerprint(dataset_dir),
            "train_split": options.train_split,
            "validation_split": options.validation_split,
        },
        "tasks": tasks,
        "train_rows": result.train_rows,
        "truncated_prompts": result.truncated_prompts,
        "truncated_completions": result.truncated_completions,
        "dropped_rows": result.dropped_rows,
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        **result.extra,
    }


def finish_run(
    run: TrainRun, out: Path, metadata: dict[str, Any], log: list[dict[str, Any]]
) -> None:
    """Write metadata, log and chart, move the staging directory to ``out``, drop checkpoints."""
    _write_json(run.output_dir / METADATA_NAME, metadata)
    write_log(run.output_dir / LOG_NAME, log)
    plot_loss(run.output_dir / CHART_NAME, log, title=f"{metadata['backend']} training loss")
    _replace_dir(run.output_dir, out)
    shutil.rmtree(checkpoint_dir_for(out), ignore_errors=True)


def plot_loss(path: Path, log: list[dict[str, Any]], title: str) -> None:
    """Train, pooled validation and per-task validation loss against the step."""
    from instructkit.charts import line_chart

    keys = [("loss", "train"), ("eval_loss", "validation")]
    task_keys = sorted({k for r in log for k in r if k.startswith("eval_") and k != "eval_loss"})
    keys += [(k, f"validation: {k[len('eval_') : -len('_loss')]}") for k in task_keys]
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    for key, label in keys:
        points = [(r["step"], r[key]) for r in log if r.get(key) is not None]
        if points:
            series[label] = ([p[0] for p in points], [p[1] for p in points])
    line_chart(path, series, title=title, xlabel="step", ylabel="loss")


def _replace_dir(staging: Path, target: Path) -> None:
    old = output_guard.temp_sibling(target, "old")
    if target.exists() or target.is_symlink():
        output_guard.check_replaceable(target, "train")  # what appeared meanwhile: ours only
        target.rename(old)
    target.parent.mkdir(parents=True, exist_ok=True)
    output_guard.rename_no_replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_dumps(data, indent=2, sort_keys=True) + "\n")

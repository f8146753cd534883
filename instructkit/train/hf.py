"""The training loop the built-in backends share: HF ``Trainer`` underneath.

``HFTrainer`` reads the dataset directory, encodes pairs with the convention in
:mod:`instructkit.modeling` (evaluate prompts the same way), trains with ``transformers.Trainer``
(so ``accelerate launch`` works unchanged), resumes from the last checkpoint and saves the model
or adapter with its tokenizer. A backend only says how to wrap the model (``wrap_model``) and,
if it must, how to save it (``save_model``). torch and transformers are imported inside
functions: plugins import this module at load time and ``--help`` must stay fast.
"""

from __future__ import annotations

import contextlib
import sys
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from instructkit.errors import TrainerError
from instructkit.train.base import Trainer, TrainerOptions, TrainResult, TrainRun
from instructkit.train.callbacks import LOG_KEYS as LOG_KEYS  # what training_log.jsonl keeps
from instructkit.train.record import TOKENIZATION_FIELD


@dataclass
class EncodedSplit:
    """Tokenized rows of one split and what the length budget did to them.

    ``features`` is a ``datasets.Dataset`` (input_ids, labels, length, task): memory-mapped from
    the tokenization cache (:mod:`instructkit.train.tokenized`) for the train split, in memory
    for validation sets; ``packed`` its bins when packing=bfd (train only: validation rows are
    never packed); ``cache`` the cache key and whether it hit, for the run record.
    """

    features: Any = field(default_factory=list)
    rows: int = 0
    truncated_prompts: int = 0
    truncated_completions: int = 0
    dropped: int = 0
    longest_completion: int = 0
    chat: bool = False  # rows went through the tokenizer's chat template
    cache: dict[str, Any] = field(default_factory=dict)
    packed: Any = None

    @classmethod
    def from_tokenized(cls, tokenized: Any, chat: bool) -> EncodedSplit:
        return cls(
            features=tokenized.dataset,
            rows=tokenized.rows,
            truncated_prompts=tokenized.truncated_prompts,
            truncated_completions=tokenized.truncated_completions,
            dropped=tokenized.dropped,
            longest_completion=tokenized.longest_completion,
            chat=chat,
            cache=dict(tokenized.cache),
        )

    def training_rows(self) -> Any:
        """What the Trainer iterates: packed bins, or the rows themselves."""
        return self.packed if self.packed is not None else self.features

    def record(self) -> dict[str, Any]:
        """The tokenization cache key, hit or miss, and the packing, for instructkit-train.json."""
        record = {k: self.cache.get(k) for k in ("key", "hit", "seconds")}
        if self.packed is not None:
            record["packing"] = self.packed.describe()
        return record


class HFTrainer(Trainer):
    """Base for backends built on ``transformers.Trainer``; subclasses override ``wrap_model``."""

    accepts_training_arguments = True

    def wrap_model(self, model: Any, options: TrainerOptions, run: TrainRun) -> Any:
        """Return the model to train (full fine-tuning: the model itself)."""
        return model

    def save_model(self, model: Any, output_dir: Any, options: TrainerOptions) -> None:
        """Save what ``from_pretrained`` / ``PeftModel.from_pretrained`` will load."""
        model.save_pretrained(output_dir)

    def describe_model(self, model: Any, options: TrainerOptions) -> dict[str, Any]:
        """Extra metadata for instructkit-train.json (e.g. LoRA's resolved target modules)."""
        return {}

    def train(self, run: TrainRun, options: TrainerOptions) -> TrainResult:
        with hf_progress_bars_disabled():
            return self._train(run, options)

    def _train(self, run: TrainRun, options: TrainerOptions) -> TrainResult:
        from transformers import set_seed

        from instructkit.modeling import is_seq2seq, load_tokenizer
        from instructkit.progress import working
        from instructkit.train.model_loading import (
            check_quantization_support,
            load_training_model,
            model_config,
        )
        from instructkit.train.record import hf_run_facts
        from instructkit.train.validation import encode_validation, train_only

        check_quantization_support(options)
        tokenizer = load_tokenizer(run.model)
        config = model_config(run.model)
        seq2seq = is_seq2seq(config)
        with working("Tokenizing the dataset", run.quiet):
            train_split, _ = encode_dataset(run, tokenizer, seq2seq, train_only(options))
            validation = encode_validation(run, tokenizer, seq2seq, options, encode_split)
        # TrainingArguments before the model: a ZeRO-3 config then shards it while it loads
        args = training_arguments(options, run, has_validation=bool(validation.sets))
        set_seed(options.seed)
        with working(f"Loading model {run.model}", run.quiet):
            base = load_training_model(run.model, options, config)
        base.name_or_path = run.model  # peft records it as the adapter's base model
        if options.gradient_checkpointing:
            base.config.use_cache = False
        model = self.wrap_model(base, options, run)
        trainer = build_hf_trainer(
            model, tokenizer, seq2seq, train_split, validation, options, run, args=args
        )
        if options.keep_checkpoints:
            trainer.add_callback(keep_checkpoints_callback(self, trainer, tokenizer, options, run))
        trainer.train(resume_from_checkpoint=last_checkpoint(run))
        if trainer.is_world_process_zero():
            self.save_model(trainer.model, run.output_dir, options)
            tokenizer.save_pretrained(run.output_dir)
        result = build_result(trainer, seq2seq, train_split, validation.first(), options)
        result.extra.update(
            {
                TOKENIZATION_FIELD: tokenization_record(train_split, validation),
                **hf_run_facts(trainer, trainer.model),
                "validation_tasks": validation.tasks,
                **self.describe_model(trainer.model, options),
                "encoding": encoding_record(tokenizer, train_split.chat),
            }
        )
        return result


@contextlib.contextmanager
def hf_progress_bars_disabled() -> Iterator[None]:
    """Hide transformers' own bars and deprecation chatter: our bar is the one to watch."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # library deprecation chatter the user cannot act on (peft/transformers internals)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="Position ids are not supported")
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------- data


def encode_dataset(
    run: TrainRun, tokenizer: Any, seq2seq: bool, options: TrainerOptions
) -> tuple[EncodedSplit, EncodedSplit | None]:
    """Encode the train and (when present) validation splits; fail if no train row fits.

    Each split is tokenized once and cached (:func:`instructkit.train.tokenized.tokenize_split`);
    the next run, and every other rank, reads the cache. With packing=bfd the train rows are
    placed into bins; validation rows never are.
    """
    from instructkit.artifacts.dataset import list_splits
    from instructkit.train.packing import PackedDataset

    if seq2seq and options.packing != "none":
        raise TrainerError(
            f"packing={options.packing} is for causal models; seq2seq models keep dynamic "
            f"padding: use packing=none."
        )
    train = encode_cached(run, tokenizer, seq2seq, options, options.train_split, None)
    if not train.features:
        raise TrainerError(
            f"All {train.rows} train rows have completions longer than max_target_length="
            f"{options.max_target_length} tokens (longest: {train.longest_completion + 1} with "
            f"eos): raise -o max_target_length or pass -o truncate_completions=true."
        )
    if options.packing == "bfd":
        length = options.packing_length or options.max_source_length + options.max_target_length
        train.packed = PackedDataset(train.features, length)
    if options.validation_split not in list_splits(run.dataset_dir):
        return train, None
    validation = encode_cached(
        run, tokenizer, seq2seq, options, options.validation_split, options.max_eval_samples
    )
    return train, validation if validation.features else None


def encode_cached(
    run: TrainRun,
    tokenizer: Any,
    seq2seq: bool,
    options: TrainerOptions,
    split: str,
    limit: int | None,
) -> EncodedSplit:
    """One split of the run's dataset, tokenized through the cache (chat template decided from
    the split, and part of the key)."""
    from instructkit.artifacts.dataset import open_split
    from instructkit.train.tokenized import EncodingSpec, tokenize_split

    chat = options_chat(tokenizer, open_split(run.dataset_dir, split), seq2seq, options)
    spec = EncodingSpec.from_options(options, seq2seq, chat)
    tokenized = tokenize_split(
        tokenizer, run.dataset_dir, split, spec, limit=limit, num_proc=options.dataset_num_proc
    )
    return EncodedSplit.from_tokenized(tokenized, chat)


def encode_split(
    tokenizer: Any, table: Any, seq2seq: bool, options: TrainerOptions
) -> EncodedSplit:
    """Tokenize an Arrow table (no cache) and apply the length budget, counting every cut."""
    from instructkit.train.tokenized import EncodingSpec, tokenize_table

    chat = options_chat(tokenizer, table, seq2seq, options)
    spec = EncodingSpec.from_options(options, seq2seq, chat)
    return EncodedSplit.from_tokenized(tokenize_table(tokenizer, table, spec), chat)


def encoding_record(tokenizer: Any, chat: bool) -> dict[str, Any]:
    """How rows were encoded, for instructkit-train.json (evaluate prompts the same way)."""
    from instructkit.modeling import chat_template_id

    return {
        "chat_template": chat,
        "chat_template_id": chat_template_id(tokenizer) if chat else None,
    }


def options_chat(tokenizer: Any, table: Any, seq2seq: bool, options: TrainerOptions) -> bool:
    """Whether this split goes through the chat template (see modeling.use_chat_template)."""
    from instructkit.chat import table_is_conversational
    from instructkit.modeling import use_chat_template

    mode = getattr(options, "chat_template", "auto")
    return use_chat_template(tokenizer, mode, table_is_conversational(table), seq2seq)


def make_collator(tokenizer: Any, model: Any, seq2seq: bool, packing: str = "none") -> Any:
    """Pad inputs with the pad token and labels with -100 (seq2seq: decoder inputs too).

    With packing (causal only) rows carry restarting position ids instead of an attention mask
    (:class:`instructkit.train.packing.PackedCollator`).
    """
    from transformers import DataCollatorForSeq2Seq

    from instructkit.modeling import IGNORE_INDEX
    from instructkit.train.packing import PackedCollator, RowCollator

    if packing != "none" and not seq2seq:
        return PackedCollator(tokenizer.pad_token_id, flatten=packing == "padding_free")
    return RowCollator(
        DataCollatorForSeq2Seq(
            tokenizer, model=model if seq2seq else None, label_pad_token_id=IGNORE_INDEX
        )
    )


# ---------------------------------------------------------------- the HF Trainer


def build_hf_trainer(
    model: Any,
    tokenizer: Any,
    seq2seq: bool,
    train: EncodedSplit,
    validation: Any,
    options: TrainerOptions,
    run: TrainRun,
    *,
    args: Any = None,
) -> Any:
    """A ``transformers.Trainer`` with our arguments, collator and callbacks.

    ``validation``: an ``EncodedSplit``, a ``task_validation.ValidationSets`` (a loss per task)
    or None.
    """
    from transformers import PrinterCallback

    from instructkit.train.callbacks import live_log_callback, plain_progress_callback
    from instructkit.train.packing import (
        apply_length_grouping,
        check_packing_support,
        check_use_cache,
    )
    from instructkit.train.run import LOG_NAME

    if hasattr(validation, "eval_dataset"):
        eval_dataset = validation.eval_dataset()
    else:
        eval_dataset = validation.features if validation else None
    has_validation = eval_dataset is not None
    if args is None:
        args = training_arguments(options, run, has_validation=has_validation)
    check_packing_support(model, options.packing)
    check_use_cache(args, options.packing)
    apply_length_grouping(args, options.group_by_length)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trainer = hf_trainer_class()(
        model=model,
        args=args,
        train_dataset=train.training_rows(),
        eval_dataset=eval_dataset,
        data_collator=make_collator(tokenizer, base, seq2seq, options.packing),
        processing_class=tokenizer,
        callbacks=[
            final_step_callback(has_validation),
            progress_callback(run.quiet),
            finite_loss_callback(options),
            plain_progress_callback(run.quiet, per_task=isinstance(eval_dataset, dict)),
            live_log_callback(run.output_dir / LOG_NAME),
        ],
    )
    trainer.remove_callback(PrinterCallback)  # HF prints every log dict when tqdm is off
    trainer.eval_data_collator = make_collator(tokenizer, base, seq2seq)  # never packed
    return trainer


def hf_trainer_class() -> Any:
    """``transformers.Trainer`` minus the resume warning about tied weights (harmless)."""
    from transformers import Trainer as HFTrainerLoop

    from instructkit.train.validation import PooledEvalMixin

    class QuietResumeTrainer(PooledEvalMixin, HFTrainerLoop):  # type: ignore[misc]
        eval_data_collator: Any = None  # validation rows are padded, never packed

        def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
            if self.eval_data_collator is None:
                return super().get_eval_dataloader(eval_dataset)
            train_collator = self.data_collator
            self.data_collator = self.eval_data_collator
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = train_collator

        def _issue_warnings_after_load(self, load_result: Any) -> None:
            # A checkpoint stores a tied weight once (T5's embeddings and lm_head), so the
            # other names come back "missing" though loading the one filled them all.
            missing = untied_keys(self.model, list(load_result.missing_keys))
            unexpected = list(load_result.unexpected_keys)
            super()._issue_warnings_after_load(
                types.SimpleNamespace(missing_keys=missing, unexpected_keys=unexpected)
            )

    return QuietResumeTrainer


def untied_keys(model: Any, keys: list[str]) -> list[str]:
    """The ``keys`` whose parameter is not shared with a parameter outside ``keys``."""
    names_by_tensor: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(param), []).append(name)
    missing = set(keys)
    loaded_alias = {
        name
        for names in names_by_tensor.values()
        if any(n not in missing for n in names)
        for name in names
    }
    return [key for key in keys if key not in loaded_alias]


def training_arguments(options: TrainerOptions, run: TrainRun, has_validation: bool) -> Any:
    """TrainingArguments from our options, then every HF field passed by name on top.

    Defaults: no reporting (``report_to`` turns it on), no tqdm, checkpoints for --resume.
    """
    from transformers import TrainingArguments

    bf16, fp16 = resolve_precision(options.precision)
    eval_steps = options.logging_steps if options.eval_steps is None else options.eval_steps
    if eval_steps >= 1:
        eval_steps = int(eval_steps)
    kwargs = dict(
        output_dir=str(run.checkpoint_dir),
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size or options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        warmup_steps=options.warmup if options.warmup < 1 else int(options.warmup),
        weight_decay=options.weight_decay,
        lr_scheduler_type=options.lr_scheduler,
        logging_steps=options.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must reach finite_loss_callback, not be hidden
        # eval_steps=0 means "only at the end": the final-step callback asks for that one
        eval_strategy="steps" if has_validation and eval_steps > 0 else "no",
        eval_steps=eval_steps or None,
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        seed=options.seed,
        bf16=bf16,
        fp16=fp16,
        **checkpointing_arguments(options.gradient_checkpointing),
        dataloader_pin_memory=bf16 or fp16 or _has_gpu(),
        report_to="none",
        disable_tqdm=True,
        label_names=["labels"],
        remove_unused_columns=False,
    )
    kwargs.update(getattr(options, "training_arguments", None) or {})
    try:
        return TrainingArguments(**kwargs)
    except (ValueError, TypeError, ImportError) as ex:
        passed = ", ".join(sorted(getattr(options, "training_arguments", None) or {}))
        where = f" (with {passed})" if passed else ""
        text = " ".join(str(ex).split())
        raise TrainerError(f"transformers rejected the training arguments{where}: {text}") from ex


def checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Gradient checkpointing under the argument names this transformers version uses."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"  # v5 renamed it
    # non-reentrant checkpointing works with frozen embeddings (LoRA, prompt tuning)
    kwargs = {"use_reentrant": False} if enabled else None
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": kwargs}


def _has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_precision(precision: str) -> tuple[bool, bool]:
    """(bf16, fp16) for "auto", "bf16", "fp16" or "fp32"; mixed precision needs a GPU."""
    import torch

    has_gpu = torch.cuda.is_available()
    if precision == "auto":
        if not has_gpu:
            return False, False
        return (True, False) if torch.cuda.is_bf16_supported() else (False, True)
    if precision != "fp32" and not has_gpu:
        raise TrainerError(f"precision={precision} needs a GPU: use precision=auto or fp32 on CPU.")
    return precision == "bf16", precision == "fp16"


def last_checkpoint(run: TrainRun) -> str | None:
    """The newest *complete* checkpoint to resume from (None: start fresh, also when none was
    saved yet). A checkpoint that a kill -9 cut short while saving is skipped, and said so."""
    if not run.resume or not run.checkpoint_dir.is_dir():
        return None
    numbered = []
    for path in run.checkpoint_dir.glob("checkpoint-*"):
        suffix = path.name.rpartition("-")[2]
        if path.is_dir() and suffix.isdigit():
            numbered.append((int(suffix), path))
    for _, path in sorted(numbered, reverse=True):
        if checkpoint_is_complete(path):
            return str(path)
        print(
            f"instructkit: skipping incomplete {path.name} (interrupted while saving); "
            f"resuming from the previous one.",
            file=sys.stderr,
        )
    return None


def checkpoint_is_complete(path: Any) -> bool:
    """A readable trainer_state.json and whole weight files (safetensors checked to the byte)."""
    import json
    from pathlib import Path

    folder = Path(path)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    return bool(weights) and all(_weights_file_complete(w) for w in weights)


def _weights_file_complete(path: Any) -> bool:
    import json
    import struct

    try:
        size = path.stat().st_size
        if path.suffix != ".safetensors":
            return size > 0
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > size - 8:
                return False
            header = json.loads(handle.read(header_size))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        return 8 + header_size + max(ends, default=0) == size
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError):
        return False


# ---------------------------------------------------------------- callbacks


def finite_loss_callback(options: TrainerOptions) -> Any:
    """Stop at the first logged NaN/inf loss: never report success for broken weights."""
    import math

    from transformers import TrainerCallback

    class FiniteLossCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            for key in ("loss", "eval_loss"):
                value = (logs or {}).get(key)
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    which = "Training" if key == "loss" else "Validation"
                    raise TrainerError(
                        f"{which} loss became {value} at step {state.global_step} of "
                        f"{state.max_steps}: the weights are no longer usable, so nothing was "
                        f"written. Try a lower learning_rate (now {options.learning_rate:g}), "
                        f"precision=fp32, or check that the model loads and predicts."
                    )

    return FiniteLossCallback()


def final_step_callback(has_validation: bool) -> Any:
    """Log and evaluate at the last step (HF may not), and skip the useless final checkpoint."""
    from transformers import TrainerCallback

    class FinalStepCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps:
                control.should_log = True
                control.should_evaluate = has_validation
                control.should_save = False  # the output directory gets the final model
            return control

    return FinalStepCallback()


def keep_checkpoints_callback(
    backend: HFTrainer, trainer: Any, tokenizer: Any, options: TrainerOptions, run: TrainRun
) -> Any:
    """Save the model at the ``keep_checkpoints`` steps, as the final one is saved.

    Each goes to ``checkpoint-STEP`` (a loadable model or adapter with its tokenizer and an
    ``instructkit-checkpoint.json``), which ``run_training`` moves to ``OUT/checkpoints/``.
    The last step is not kept twice: ``OUT`` itself is that model.
    """
    import json

    from transformers import TrainerCallback

    from instructkit.train.base import keep_schedule
    from instructkit.train.run import kept_checkpoints_dir

    steps, every = keep_schedule(options.keep_checkpoints)

    class KeepCheckpoints(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = state.global_step
            wanted = step in steps or (every is not None and step % every == 0)
            if not wanted or step >= state.max_steps or not state.is_world_process_zero:
                return
            target = kept_checkpoints_dir(run) / f"checkpoint-{step}"
            backend.save_model(trainer.model, target, options)
            tokenizer.save_pretrained(target)
            record = {"step": step, "epoch": state.epoch}
            (target / "instructkit-checkpoint.json").write_text(
                json.dumps(record, allow_nan=False) + "\n"
            )

    return KeepCheckpoints()


def progress_callback(quiet: bool) -> Any:
    """Our progress bar (instructkit.progress): on a terminal only, silent with --quiet."""
    from transformers import TrainerCallback

    from instructkit.progress import progress_bar

    class ProgressCallback(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                self.bar = progress_bar(state.max_steps, "train", quiet=quiet, unit="steps")
                self.bar.update(state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.4g}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()

    return ProgressCallback()


# ---------------------------------------------------------------- results


def training_log(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per logged step (train and eval records of a step merged), HF noise dropped.

    Per-task validation losses (``eval_<task>_loss``) are kept beside the pooled ``eval_loss``.
    """
    from instructkit.train.callbacks import log_record

    by_step: dict[int, dict[str, Any]] = {}
    for record in log_history:
        kept = log_record(record, int(record.get("step", 0)))
        if kept is None:
            continue  # the end-of-training summary goes into the metadata instead
        by_step.setdefault(kept["step"], {}).update(kept)
    return [by_step[step] for step in sorted(by_step)]


def build_result(
    trainer: Any,
    seq2seq: bool,
    train: EncodedSplit,
    validation: EncodedSplit | None,
    options: TrainerOptions,
) -> TrainResult:
    """Summarise a finished run: last losses, counts and notes worth telling the user."""
    log = training_log(trainer.state.log_history)
    train_losses = [r["loss"] for r in log if "loss" in r]
    eval_losses = [r["eval_loss"] for r in log if "eval_loss" in r]
    return TrainResult(
        seq2seq=seq2seq,
        log=log,
        train_loss=train_losses[-1] if train_losses else None,
        eval_loss=eval_losses[-1] if eval_losses else None,
        steps=int(trainer.state.global_step),
        train_rows=len(train.features),
        extra={TOKENIZATION_FIELD: tokenization_record(train, validation)},
        truncated_prompts=train.truncated_prompts,
        truncated_completions=train.truncated_completions,
        dropped_rows=train.dropped,
        notes=length_notes(train, validation, options),
    )


def tokenization_record(train: EncodedSplit, validation: Any) -> dict[str, Any]:
    """The train split's cache key, hit and packing; then the validation sets' rows by metric
    name. ``validation``: a ``ValidationSets`` (per task, encoded in memory), an
    ``EncodedSplit`` or None."""
    record = train.record()
    sets = getattr(validation, "sets", None)
    if sets is None:
        sets = {} if validation is None else {"validation": validation}
    if sets:
        record["validation"] = {
            "cached": all(bool(encoded.cache.get("key")) for encoded in sets.values()),
            "rows": {name: encoded.rows for name, encoded in sets.items()},
        }
    return record


def length_notes(
    train: EncodedSplit, validation: EncodedSplit | None, options: TrainerOptions
) -> list[str]:
    """Say what the length budget cut, so no completion is ever cut silently."""
    notes = []
    if train.dropped:
        notes.append(
            f"Dropped {train.dropped} of {train.rows} train rows whose completion exceeds "
            f"max_target_length={options.max_target_length} (longest: "
            f"{train.longest_completion + 1}); raise it or pass -o truncate_completions=true."
        )
    elif train.truncated_completions:
        notes.append(f"Cut {train.truncated_completions} train completions to max_target_length.")
    if train.truncated_prompts:
        notes.append(
            f"Cut {train.truncated_prompts} of {train.rows} train prompts to "
            f"max_source_length={options.max_source_length}."
        )
    if validation is None:
        notes.append(f"No usable '{options.validation_split}' split: no validation loss.")
    return notes


# ---------------------------------------------------------------- peft helpers


def peft_task_type(model: Any) -> Any:
    """peft's task type for a model: SEQ_2_SEQ_LM for encoder-decoders, else CAUSAL_LM."""
    from peft import TaskType

    from instructkit.modeling import is_seq2seq

    return TaskType.SEQ_2_SEQ_LM if is_seq2seq(model.config) else TaskType.CAUSAL_LM


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

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
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from instructkit.errors import TrainerError
from instructkit.trainers import Trainer, TrainerOptions, TrainResult, TrainRun

# Keys of HF's log records that make up training_log.jsonl (the rest is timing chatter).
LOG_KEYS = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm")


@dataclass
class EncodedSplit:
    """Tokenized rows of one split and what the length budget did to them.

    ``features`` is a memory-mapped ``datasets.Dataset`` (input_ids, labels, length, task) from
    the tokenization cache (:mod:`instructkit.tokenized`); ``packed`` its bins when packing=bfd;
    ``cache`` the cache key and whether it hit, for the run record.
    """

    features: Any = field(default_factory=list)
    rows: int = 0
    truncated_prompts: int = 0
    truncated_completions: int = 0
    dropped: int = 0
    longest_completion: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    packed: Any = None

    @classmethod
    def from_tokenized(cls, tokenized: Any) -> EncodedSplit:
        return cls(
            features=tokenized.dataset,
            rows=tokenized.rows,
            truncated_prompts=tokenized.truncated_prompts,
            truncated_completions=tokenized.truncated_completions,
            dropped=tokenized.dropped,
            longest_completion=tokenized.longest_completion,
            cache=dict(tokenized.cache),
        )

    def training_rows(self) -> Any:
        """What the Trainer iterates: packed bins, or the rows themselves."""
        return self.packed if self.packed is not None else self.features

    def record(self) -> dict[str, Any]:
        """The tokenization cache key, hit or miss, and the packing, for instructkit-train.json."""
        record = {k: v for k, v in self.cache.items() if k in ("key", "hit", "seconds")}
        if self.packed is not None:
            record["packing"] = self.packed.describe()
        return record


class HFTrainer(Trainer):
    """Base for backends built on ``transformers.Trainer``; subclasses override ``wrap_model``."""

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

        from instructkit.modeling import is_seq2seq, load_base_model, load_tokenizer

        tokenizer = load_tokenizer(run.model)
        set_seed(options.seed)
        base = load_base_model(run.model)
        base.name_or_path = run.model  # peft records it as the adapter's base model
        seq2seq = is_seq2seq(base.config)
        train_split, eval_split = encode_dataset(run, tokenizer, seq2seq, options)
        if options.gradient_checkpointing:
            base.config.use_cache = False
        model = self.wrap_model(base, options, run)
        trainer = build_hf_trainer(model, tokenizer, seq2seq, train_split, eval_split, options, run)
        trainer.train(resume_from_checkpoint=last_checkpoint(run))
        if trainer.is_world_process_zero():
            self.save_model(trainer.model, run.output_dir, options)
            tokenizer.save_pretrained(run.output_dir)
        result = build_result(trainer, seq2seq, train_split, eval_split, options)
        result.extra.update(self.describe_model(trainer.model, options))
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

    Each split is tokenized once and cached (:func:`instructkit.tokenized.tokenize_split`);
    the next run, and every other rank, reads the cache.
    """
    from instructkit.artifact import list_splits
    from instructkit.packing import PackedDataset

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
    if options.validation_split not in list_splits(run.dataset_dir):
        return train, None
    validation = encode_cached(
        run, tokenizer, seq2seq, options, options.validation_split, options.max_eval_samples
    )
    if options.packing == "bfd":
        length = options.packing_length or options.max_source_length + options.max_target_length
        train.packed = PackedDataset(train.features, length)
    return train, validation if validation.features else None


def encode_cached(
    run: TrainRun,
    tokenizer: Any,
    seq2seq: bool,
    options: TrainerOptions,
    split: str,
    limit: int | None,
) -> EncodedSplit:
    """One split of the run's dataset, tokenized through the cache."""
    from instructkit.tokenized import EncodingSpec, tokenize_split

    spec = EncodingSpec.from_options(options, seq2seq)
    tokenized = tokenize_split(
        tokenizer, run.dataset_dir, split, spec, limit=limit, num_proc=options.dataset_num_proc
    )
    return EncodedSplit.from_tokenized(tokenized)


def encode_split(
    tokenizer: Any, table: Any, seq2seq: bool, options: TrainerOptions
) -> EncodedSplit:
    """Tokenize an Arrow table (no cache) and apply the length budget, counting every cut."""
    from instructkit.tokenized import EncodingSpec, tokenize_table

    spec = EncodingSpec.from_options(options, seq2seq)
    return EncodedSplit.from_tokenized(tokenize_table(tokenizer, table, spec))


def make_collator(tokenizer: Any, model: Any, seq2seq: bool, packing: str = "none") -> Any:
    """Pad inputs with the pad token and labels with -100 (seq2seq: decoder inputs too).

    With packing (causal only) rows carry restarting position ids instead of an attention mask
    (:class:`instructkit.packing.PackedCollator`).
    """
    from transformers import DataCollatorForSeq2Seq

    from instructkit.modeling import IGNORE_INDEX
    from instructkit.packing import PackedCollator, RowCollator

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
    validation: EncodedSplit | None,
    options: TrainerOptions,
    run: TrainRun,
) -> Any:
    """A ``transformers.Trainer`` with our arguments, collator and callbacks."""
    from transformers import PrinterCallback

    from instructkit.packing import apply_length_grouping, check_packing_support, check_use_cache

    args = training_arguments(options, run, has_validation=validation is not None)
    check_packing_support(model, options.packing)
    check_use_cache(args, options.packing)
    apply_length_grouping(args, options.group_by_length)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trainer = hf_trainer_class()(
        model=model,
        args=args,
        train_dataset=train.training_rows(),
        eval_dataset=validation.features if validation else None,
        data_collator=make_collator(tokenizer, base, seq2seq, options.packing),
        processing_class=tokenizer,
        callbacks=[final_step_callback(validation is not None), progress_callback(run.quiet)],
    )
    trainer.remove_callback(PrinterCallback)  # HF prints every log dict when tqdm is off
    return trainer


def hf_trainer_class() -> Any:
    """``transformers.Trainer`` minus the resume warning about tied weights (harmless)."""
    from transformers import Trainer as HFTrainerLoop

    class QuietResumeTrainer(HFTrainerLoop):  # type: ignore[misc]
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
    """TrainingArguments from our options: no reporting, no tqdm, checkpoints for --resume."""
    from transformers import TrainingArguments

    bf16, fp16 = resolve_precision(options.precision)
    eval_steps = options.logging_steps if options.eval_steps is None else options.eval_steps
    return TrainingArguments(
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
    """The newest checkpoint to resume from (None: start fresh, also when none was saved yet)."""
    if not run.resume or not run.checkpoint_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(run.checkpoint_dir))


# ---------------------------------------------------------------- callbacks


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
    """One record per logged step (train and eval records of a step merged), HF noise dropped."""
    by_step: dict[int, dict[str, Any]] = {}
    for record in log_history:
        if "loss" not in record and "eval_loss" not in record:
            continue  # the end-of-training summary goes into the metadata instead
        merged = by_step.setdefault(int(record["step"]), {})
        merged.update({k: record[k] for k in LOG_KEYS if k in record})
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
        extra={"tokenization": tokenization_record(train, validation)},
        truncated_prompts=train.truncated_prompts,
        truncated_completions=train.truncated_completions,
        dropped_rows=train.dropped,
        notes=length_notes(train, validation, options),
    )


def tokenization_record(train: EncodedSplit, validation: EncodedSplit | None) -> dict[str, Any]:
    """The train split's cache key, hit and packing, and the validation split's key and hit."""
    record = train.record()
    if validation is not None:
        record["validation"] = validation.record()
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

"""Trainer backends: the ``Trainer`` base class, typed options and the registry.

A backend is a small class (a ``trainer_id``, a one-line ``description``, an ``Options``
dataclass and one ``train`` method) registered through the ``register_trainers`` hook, like the
built-ins ``full``, ``lora`` and ``prompt-tuning``. Running one (checking the inputs, the
output directory, checkpoints, metadata) is :mod:`instructkit.train.run`'s job, so a backend
never repeats it. Importing this module never imports torch.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from instructkit.errors import OptionsError, PluginError, UnknownTrainerError
from instructkit.keyvalue import key_value, parse_bool

_NONE = {"none", "null", ""}
# The TrainerOptions field holding TrainingArguments passed through by their HF names.
PASSTHROUGH_FIELD = "training_arguments"


# ---------------------------------------------------------------- options


def option(
    default: Any,
    help: str,
    *,
    choices: Iterable[str] | None = None,
    minimum: float | None = None,
) -> Any:
    """A dataclass field for trainer options, with help text and simple declarative checks."""
    metadata = {"help": help, "choices": tuple(choices or ()), "minimum": minimum}
    return field(default=default, metadata=metadata)


@dataclass
class TrainerOptions:
    """Options every trainer accepts; backends subclass this and add or re-default fields."""

    learning_rate: float = option(5e-5, "Peak learning rate.", minimum=0)
    epochs: float = option(
        3.0, "Passes over the train split (ignored when max_steps > 0).", minimum=0
    )
    max_steps: int = option(-1, "Optimizer steps to run; -1 means use epochs.", minimum=-1)
    batch_size: int = option(8, "Examples per device per step.", minimum=1)
    eval_batch_size: int | None = option(
        None, "Validation batch size (default: batch_size).", minimum=1
    )
    gradient_accumulation_steps: int = option(
        1, "Batches accumulated per optimizer step (simulates a larger batch).", minimum=1
    )
    max_source_length: int = option(
        512, "Prompt token budget; longer prompts are cut and counted.", minimum=1
    )
    max_target_length: int = option(128, "Completion token budget, eos included.", minimum=2)
    truncate_completions: bool = option(
        False,
        "Cut completions over max_target_length instead of dropping those rows (both are counted).",
    )
    completion_only: bool = option(
        True, "Causal models: loss on the completion only (false: on prompt + completion too)."
    )
    chat_template: str = option(
        "auto",
        "Causal models: auto = the chat template for conversational rows only (as TRL); "
        "on = string rows too (prompt as user turn, completion as assistant turn); off = never.",
        choices=("auto", "on", "off"),
    )
    seed: int = option(42, "Seed for initialisation and data order (same seed, same model on CPU).")
    warmup: float = option(
        0.0, "Linear warmup: steps if >= 1, fraction of all steps if < 1.", minimum=0
    )
    weight_decay: float = option(0.0, "AdamW weight decay.", minimum=0)
    lr_scheduler: str = option(
        "linear",
        "Learning-rate schedule.",
        choices=(
            "linear",
            "cosine",
            "cosine_with_restarts",
            "polynomial",
            "constant",
            "constant_with_warmup",
            "inverse_sqrt",
            "cosine_with_min_lr",
            "warmup_stable_decay",
        ),  # fmt: skip
    )
    logging_steps: int = option(
        10, "Log the train loss every N steps (and at the last step).", minimum=1
    )
    eval_steps: float | None = option(
        0.25,
        "Validation loss every N steps, or every fraction < 1 of the run (0.25: four times), "
        "and at the end; 0: at the end only; none: every logging_steps.",
        minimum=0,
    )
    max_eval_samples: int | None = option(
        None, "Use at most N validation rows in all (default: all).", minimum=1
    )
    eval_rows_per_task: int | None = option(
        64,
        "Validation rows per task (the first N of each; none: all): a loss per task, cheaply.",
        minimum=1,
    )
    save_steps: int = option(500, "Save a checkpoint for --resume every N steps.", minimum=1)
    save_total_limit: int = option(2, "Checkpoints kept while training.", minimum=1)
    keep_checkpoints: list[str] | None = option(
        None,
        "Keep the model at these steps in OUT/checkpoints/ for 'evaluate --checkpoints' "
        "(e.g. 50,100,200, or every:50).",
    )
    precision: str = option(
        "auto", "auto: bf16 where the GPU has it, else fp16 on GPU, fp32 on CPU.",
        choices=("auto", "fp32", "bf16", "fp16"),
    )  # fmt: skip
    gradient_checkpointing: bool = option(False, "Trade compute for memory on large models.")
    dtype: str = option(
        "fp32",
        "Weights' dtype at load: fp32 (master weights; bf16/fp16 precision autocasts), auto (as "
        "saved: a bf16 checkpoint then trains in pure bf16), bf16 or fp16.",
        choices=("auto", "bf16", "fp16", "fp32"),
    )
    attn_implementation: str | None = option(
        None,
        "Attention kernel: eager, sdpa, flash_attention_2, ... (default: transformers' choice).",
    )
    train_split: str = option("train", "Split to train on.")
    validation_split: str = option(
        "validation", "Split for the validation loss (skipped if absent)."
    )
    dataset_num_proc: int | None = option(
        None,
        "Processes that tokenize a split on a cache miss (default 1: the fast tokenizer already "
        "uses every core).",
        minimum=1,
    )
    packing: str = option(
        "none",
        "Causal models: bfd packs rows into packing_length bins (best-fit decreasing), "
        "padding_free joins each batch into one row; attention and loss stay per row.",
        choices=("none", "bfd", "padding_free"),
    )
    packing_length: int | None = option(
        None, "Tokens per packed bin (default: max_source_length + max_target_length).", minimum=2
    )
    group_by_length: bool = option(
        False, "Batch rows of similar length together (less padding, without packing)."
    )
    training_arguments: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Other transformers.TrainingArguments fields, by their HF names."},
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            _check_field(self, spec)
        self.validate()

    def validate(self) -> None:
        """Check combinations of fields; subclasses extend it and call ``super().validate()``."""
        if self.max_steps == 0 or (self.max_steps < 0 and self.epochs <= 0):
            raise OptionsError("Nothing to train: set max_steps > 0 or epochs > 0.")
        keep_schedule(self.keep_checkpoints)  # fails on a malformed list
        if self.packing != "none" and self.group_by_length:
            raise OptionsError(
                f"group_by_length=true has nothing to group with packing={self.packing}: "
                f"choose one."
            )
        longest = self.max_source_length + self.max_target_length
        if self.packing_length is not None and self.packing_length < longest:
            raise OptionsError(
                f"packing_length={self.packing_length} is shorter than a row can be "
                f"(max_source_length + max_target_length = {longest}): raise it."
            )

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, training_arguments: bool = False
    ) -> TrainerOptions:
        """Build options from a mapping (config file values or ``key=value`` strings).

        Aliases (HF names such as ``num_train_epochs``, shortcuts such as ``lr``) reach our
        options. With ``training_arguments`` (backends on the HF Trainer), every other
        ``TrainingArguments`` field is accepted by its HF name, typed as HF declares it.
        """
        from instructkit.train.hf_options import coerce_passthrough, split_options

        values = dict(values)
        nested = values.pop(PASSTHROUGH_FIELD, None) or {}
        if not isinstance(nested, Mapping):
            raise OptionsError(f"Option '{PASSTHROUGH_FIELD}' must be a mapping of HF fields.")
        for key, value in nested.items():  # a `training_arguments:` mapping reads as options
            if key in values:
                raise OptionsError(f"Option '{key}' is given twice: give it once.")
            values[key] = value
        names = {f.name for f in dataclasses.fields(cls)} - {PASSTHROUGH_FIELD}
        ours, extra = split_options(values, names, training_arguments)
        hints = typing.get_type_hints(cls)
        coerced = {key: _coerce(key, value, hints[key]) for key, value in ours.items()}
        if extra:
            coerced[PASSTHROUGH_FIELD] = coerce_passthrough(extra)
        return cls(**coerced)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def keep_schedule(values: list[str] | None) -> tuple[frozenset[int], int | None]:
    """The steps of ``keep_checkpoints`` and its ``every:N`` period (None: no period)."""
    steps: set[int] = set()
    every = None
    for value in values or []:
        text = value.strip().lower()
        period = text.removeprefix("every:")
        number = period if period != text else text
        if not number.isdigit() or int(number) < 1:
            raise OptionsError(
                f"Option 'keep_checkpoints' takes steps (e.g. 50,100) or every:N, got {value!r}."
            )
        if period != text:
            every = int(number)
        else:
            steps.add(int(number))
    return frozenset(steps), every


def describe_options(options_cls: type[TrainerOptions]) -> list[dict[str, Any]]:
    """Name, type, default, choices and help of every option, for ``--list`` and docs."""
    hints = typing.get_type_hints(options_cls)
    rows = []
    for spec in dataclasses.fields(options_cls):
        if spec.name == PASSTHROUGH_FIELD:
            continue
        rows.append(
            {
                "name": spec.name,
                "type": _type_name(hints[spec.name]),
                "default": spec.default,
                "choices": list(spec.metadata.get("choices", ())),
                "help": spec.metadata.get("help", ""),
            }
        )
    return rows


def parse_option_strings(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ``-o key=value`` strings into a dict (values stay strings until validated)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        parts = key_value(pair, strip=True)
        if parts is None:
            raise OptionsError(
                f"Option '{pair}' is not key=value: write e.g. -o learning_rate=1e-4."
            )
        parsed[parts[0].replace("-", "_")] = parts[1]
    return parsed


def _check_field(options: TrainerOptions, spec: dataclasses.Field[Any]) -> None:
    value = getattr(options, spec.name)
    hint = typing.get_type_hints(type(options))[spec.name]
    if not _matches_type(value, hint):
        raise OptionsError(f"Option '{spec.name}' must be {_type_name(hint)}, got {value!r}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionsError(f"Option '{spec.name}' must be a finite number, got {value!r}.")
    choices = spec.metadata.get("choices")
    if choices and value not in choices:
        raise OptionsError(
            f"Option '{spec.name}' must be one of {', '.join(choices)}, got {value!r}."
        )
    minimum = spec.metadata.get("minimum")
    if minimum is not None and value is not None and value < minimum:
        raise OptionsError(f"Option '{spec.name}' must be >= {minimum:g}, got {value!r}.")


def _optional_inner(hint: Any) -> tuple[Any, bool]:
    """(inner type, allows None) for ``X | None``; (hint, False) otherwise."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _matches_type(value: Any, hint: Any) -> bool:
    inner, nullable = _optional_inner(hint)
    if value is None:
        return nullable
    if typing.get_origin(inner) is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if typing.get_origin(inner) is dict:
        return isinstance(value, dict)
    if inner is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if inner is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, inner)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert strings (from ``-o`` or YAML) to the field's type; leave typed values alone."""
    inner, nullable = _optional_inner(hint)
    if nullable and (value is None or (isinstance(value, str) and value.lower() in _NONE)):
        return None
    if typing.get_origin(inner) is list and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or inner is str:
        return value
    try:
        if inner is bool:
            return parse_bool(value)
        return inner(value)
    except ValueError:
        raise OptionsError(f"Option '{key}' must be {_type_name(hint)}, got {value!r}.") from None


def _type_name(hint: Any) -> str:
    inner, nullable = _optional_inner(hint)
    if typing.get_origin(inner) is list:
        name = "a comma-separated list"
    else:
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
            inner, str(inner)
        )
    return f"{name} or none" if nullable else name


# ---------------------------------------------------------------- the trainer contract


@dataclass
class TrainRun:
    """Where a trainer reads and writes for one run (paths prepared by ``run_training``)."""

    dataset_dir: Path
    model: str
    output_dir: Path
    checkpoint_dir: Path
    resume: bool = False
    quiet: bool = False
    is_main_process: bool = True


@dataclass
class TrainResult:
    """What a trainer reports back; ``run_training`` turns it into the output's metadata."""

    seq2seq: bool
    log: list[dict[str, Any]] = field(default_factory=list)
    train_loss: float | None = None
    eval_loss: float | None = None
    steps: int = 0
    train_rows: int = 0
    truncated_prompts: int = 0
    truncated_completions: int = 0
    dropped_rows: int = 0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer(ABC):
    """A training backend, registered with ``register(TrainerSubclass)`` from the hook.

    :cvar trainer_id: the name users pass to ``--backend`` (lowercase, dashes).
    :cvar description: one line shown by ``instructkit train --list``.
    :cvar needs_gpu: True when the backend cannot run on CPU (the contract test then skips).
    :cvar Options: a :class:`TrainerOptions` subclass; every field has a default and help text.
    :cvar accepts_training_arguments: True when ``options.training_arguments`` (HF
        ``TrainingArguments`` fields by name) reaches the loop (``HFTrainer`` sets it).
    """

    trainer_id: ClassVar[str]
    description: ClassVar[str]
    needs_gpu: ClassVar[bool] = False
    Options: ClassVar[type[TrainerOptions]] = TrainerOptions
    #: True for backends on ``transformers.Trainer``: any TrainingArguments field by its HF name.
    accepts_training_arguments: ClassVar[bool] = False

    @abstractmethod
    def train(self, run: TrainRun, options: TrainerOptions) -> TrainResult:
        """Train on ``run.dataset_dir`` and write the model or adapter plus its tokenizer.

        :param run: the dataset directory, the base model (a local path or hub id, already
            checked), ``output_dir`` (an empty staging directory that becomes ``--out`` when
            this returns), ``checkpoint_dir`` (survives an interruption; resume from it when
            ``run.resume``), ``quiet`` (no progress bar) and ``is_main_process`` (only the
            main process writes under ``accelerate launch``).
        :param options: a validated instance of this trainer's ``Options``.
        :returns: a :class:`TrainResult`; the log is a list of ``{"step", "epoch", "loss" or
            "eval_loss", "learning_rate"}`` records. Do not write the metadata, the log or the
            chart: ``run_training`` does.
        """


# ---------------------------------------------------------------- registry


class TrainerRegistry:
    """Trainer classes by ``trainer_id``; the ``register_trainers`` hook feeds ``add``."""

    def __init__(self) -> None:
        self._trainers: dict[str, type[Trainer]] = {}

    def add(self, trainer_cls: type[Trainer]) -> None:
        """Register a trainer class; reject non-trainers and duplicate ids."""
        if not (isinstance(trainer_cls, type) and issubclass(trainer_cls, Trainer)):
            raise PluginError(f"{trainer_cls!r} is not a subclass of instructkit.Trainer.")
        trainer_id = getattr(trainer_cls, "trainer_id", None)
        if not trainer_id or not getattr(trainer_cls, "description", None):
            raise PluginError(
                f"Trainer {trainer_cls.__name__} needs a trainer_id and a description."
            )
        if not issubclass(trainer_cls.Options, TrainerOptions):
            raise PluginError(f"{trainer_cls.__name__}.Options must subclass TrainerOptions.")
        if trainer_id in self._trainers:
            other = self._trainers[trainer_id].__module__
            raise PluginError(
                f"Trainer '{trainer_id}' is registered twice ({other} and "
                f"{trainer_cls.__module__}): uninstall one of the plugins."
            )
        self._trainers[trainer_id] = trainer_cls

    __call__ = add

    def ids(self) -> list[str]:
        return sorted(self._trainers)

    def get(self, trainer_id: str) -> type[Trainer]:
        if trainer_id not in self._trainers:
            raise UnknownTrainerError(
                f"Unknown trainer '{trainer_id}': installed trainers are "
                f"{', '.join(self.ids()) or 'none'} (see 'instructkit train --list')."
            )
        return self._trainers[trainer_id]


def trainer_registry() -> TrainerRegistry:
    """Collect trainers from every loaded plugin (cheap: no backend imports torch at load)."""
    from instructkit.plugins import load_plugins

    registry = TrainerRegistry()
    load_plugins().hook.register_trainers(register=registry.add)
    return registry


def get_trainer(name: str) -> type[Trainer]:
    """The trainer class registered as ``name``; UnknownTrainerError lists the installed ones."""
    return trainer_registry().get(name)


def list_trainers() -> list[type[Trainer]]:
    """Every registered trainer class, sorted by id."""
    registry = trainer_registry()
    return [registry.get(trainer_id) for trainer_id in registry.ids()]


def build_options(trainer_cls: type[Trainer], values: Mapping[str, Any] | None) -> TrainerOptions:
    """Validate ``values`` against a trainer's Options; errors name the backend."""
    try:
        return trainer_cls.Options.from_mapping(
            values or {}, training_arguments=trainer_cls.accepts_training_arguments
        )
    except OptionsError as ex:
        raise OptionsError(f"Backend '{trainer_cls.trainer_id}': {ex}") from ex

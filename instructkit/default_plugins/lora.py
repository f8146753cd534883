"""Built-in trainer ``lora``: peft LoRA adapters, optionally merged into the base on save."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from instructkit.errors import OptionsError
from instructkit.hookspecs import hookimpl
from instructkit.train.base import TrainerOptions, TrainRun, option
from instructkit.train.hf import HFTrainer, peft_task_type, trainable_parameters


@dataclass
class LoraOptions(TrainerOptions):
    learning_rate: float = option(2e-4, "Peak learning rate.", minimum=0)
    r: int = option(8, "Rank of the LoRA update matrices.", minimum=1)
    alpha: int = option(
        16, "LoRA scaling numerator (the update is scaled by alpha / r).", minimum=1
    )
    dropout: float = option(0.05, "Dropout on the LoRA branch.", minimum=0)
    target_modules: list[str] | None = option(
        None,
        "Modules to adapt, comma separated, or all-linear "
        "(default: the attention projections peft knows for the architecture).",
    )
    modules_to_save: list[str] | None = option(
        None,
        "Modules trained in full beside the adapter, comma separated (e.g. lm_head when the "
        "model must learn outputs its base never produced).",
    )
    merge: bool = option(False, "Merge the adapter into the base and save a full model.")
    load_in_4bit: bool = option(
        False, "QLoRA: load the frozen base in 4 bits (NF4, bitsandbytes; needs a CUDA GPU)."
    )
    load_in_8bit: bool = option(
        False, "Load the frozen base in 8 bits (bitsandbytes; needs a CUDA GPU)."
    )

    def validate(self) -> None:
        super().validate()
        if self.dropout >= 1:
            raise OptionsError("Option 'dropout' must be < 1.")
        if self.load_in_4bit and self.load_in_8bit:
            raise OptionsError("Options load_in_4bit and load_in_8bit exclude each other.")
        if self.merge and (self.load_in_4bit or self.load_in_8bit):
            raise OptionsError(
                "Option merge=true cannot merge into a 4-/8-bit base: train with load_in_*bit, "
                "then merge the adapter into the full-precision base separately."
            )


def check_target_modules(model: Any, targets: list[str]) -> None:
    """Fail with the model's module names when a target matches none (peft's rule: the full
    name or its dotted suffix), instead of peft's traceback or a silently ignored typo."""
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        raise OptionsError(
            f"target_modules '{','.join(missing)}' match no module of the model (it has "
            f"{', '.join(adaptable_module_names(model))}): fix -o target_modules or use all-linear."
        )


def adaptable_module_names(model: Any) -> list[str]:
    """Distinct short names of the layers LoRA can adapt (linear, conv, embedding)."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d)
    names: dict[str, None] = {}
    for name, module in model.named_modules():
        if name and (isinstance(module, kinds) or type(module).__name__ == "Conv1D"):
            names.setdefault(name.rsplit(".", 1)[-1], None)
    return list(names)


def default_target_modules(model: Any) -> list[str] | str:
    """peft's choice for the architecture (T5: q,v; GPT-2: c_attn; Llama: q_proj,v_proj)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

    return list(known.get(model.config.model_type, [])) or "all-linear"


class LoraTrainer(HFTrainer):
    """Train low-rank adapters on the attention projections; the base stays frozen."""

    trainer_id = "lora"
    description = "LoRA adapters through peft (target modules chosen per architecture)."
    Options = LoraOptions

    def wrap_model(self, model: Any, options: TrainerOptions, run: TrainRun) -> Any:
        from peft import LoraConfig, get_peft_model

        assert isinstance(options, LoraOptions)
        targets = options.target_modules or default_target_modules(model)
        if isinstance(targets, list) and targets != ["all-linear"]:
            check_target_modules(model, targets)
        config = LoraConfig(
            task_type=peft_task_type(model),
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules="all-linear" if targets == ["all-linear"] else targets,
            modules_to_save=options.modules_to_save,
            # GPT-2 stores its projections transposed (Conv1D)
            fan_in_fan_out=model.config.model_type == "gpt2",
        )
        return get_peft_model(model, config)

    def save_model(self, model: Any, output_dir: Any, options: TrainerOptions) -> None:
        assert isinstance(options, LoraOptions)
        if options.merge:
            model = model.merge_and_unload()
        model.save_pretrained(output_dir)

    def describe_model(self, model: Any, options: TrainerOptions) -> dict[str, Any]:
        assert isinstance(options, LoraOptions)
        return {
            "target_modules": sorted(model.peft_config["default"].target_modules),
            "trainable_parameters": trainable_parameters(model),
            "merged": options.merge,
        }


@hookimpl
def register_trainers(register: Any) -> None:
    register(LoraTrainer)

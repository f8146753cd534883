"""Loading the model to train: dtype, attention kernel, 4-/8-bit (QLoRA), after TrainingArguments.

``HFTrainer`` builds ``TrainingArguments`` first and loads the model here afterwards: with a
DeepSpeed ZeRO-3 config (``-o deepspeed=...`` or ``accelerate launch`` with a ZeRO-3 config),
transformers then partitions the weights while ``from_pretrained`` reads them instead of
materialising the whole model on every rank. torch and transformers are imported inside functions.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from instructkit.errors import ModelError, TrainerError

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def quantization_bits(options: Any) -> int | None:
    """4 or 8 when the options ask for a quantized base (lora's load_in_4bit/8bit), else None."""
    if getattr(options, "load_in_4bit", False):
        return 4
    if getattr(options, "load_in_8bit", False):
        return 8
    return None


def check_quantization_support(options: Any) -> None:
    """One line, before anything loads, on a machine that cannot run 4-/8-bit training."""
    bits = quantization_bits(options)
    if bits is None:
        return
    flag = f"load_in_{bits}bit"
    import torch

    if not torch.cuda.is_available():
        raise TrainerError(
            f"{flag} (QLoRA) needs a CUDA GPU and this machine has none: drop -o {flag}=true "
            f"or train on a GPU."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainerError(
            f"{flag} (QLoRA) needs the bitsandbytes package: pip install bitsandbytes."
        )


def torch_dtype(name: str) -> Any:
    """torch dtype for "bf16"/"fp16"/"fp32"; "auto" stays the string transformers understands."""
    if name == "auto":
        return "auto"
    import torch

    return getattr(torch, DTYPES[name])


def dtype_keyword() -> str:
    """``dtype`` (transformers >= 4.56) or ``torch_dtype`` (older)."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_kwargs(options: Any) -> dict[str, Any]:
    """from_pretrained keyword arguments for dtype, attention kernel and quantization."""
    kwargs: dict[str, Any] = {dtype_keyword(): torch_dtype(getattr(options, "dtype", "auto"))}
    attention = getattr(options, "attn_implementation", None)
    if attention:
        kwargs["attn_implementation"] = attention
    bits = quantization_bits(options)
    if bits is not None:
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if getattr(options, "dtype", "auto") in ("bf16", "fp16"):
            compute = torch_dtype(options.dtype)
        if bits == 4:
            config = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            )
        else:
            config = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["quantization_config"] = config
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
        if getattr(options, "dtype", "auto") in ("auto", "fp32"):
            kwargs[dtype_keyword()] = compute  # the unquantized layers compute in this dtype
    return kwargs


def model_config(name_or_path: str) -> Any:
    """The model's config (cheap: no weights), to know seq2seq vs causal before loading."""
    from transformers import AutoConfig

    from instructkit.modeling import check_model_source

    try:
        return AutoConfig.from_pretrained(check_model_source(name_or_path))
    except (OSError, ValueError) as ex:
        raise ModelError(f"Could not load model '{name_or_path}': {_first_line(ex)}") from ex


def load_training_model(name_or_path: str, options: Any, config: Any = None) -> Any:
    """Load the base model with the options' dtype, attention kernel and quantization.

    Call it after ``TrainingArguments`` exist (ZeRO-3 partitions at load then).
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from instructkit.modeling import check_model_source, is_seq2seq, model_load_errors

    source = check_model_source(name_or_path)
    config = config if config is not None else model_config(name_or_path)
    auto = AutoModelForSeq2SeqLM if is_seq2seq(config) else AutoModelForCausalLM
    with model_load_errors(name_or_path):
        model = auto.from_pretrained(source, **load_kwargs(options))
    if quantization_bits(options) is not None:
        from peft import prepare_model_for_kbit_training

        checkpointing = bool(getattr(options, "gradient_checkpointing", False))
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        )
    return model


def model_dtype(model: Any) -> str:
    """The dtype most parameters have, e.g. "float32" (recorded in the run record)."""
    counts: dict[str, int] = {}
    for param in model.parameters():
        name = str(param.dtype).removeprefix("torch.")
        counts[name] = counts.get(name, 0) + param.numel()
    return max(counts, key=lambda k: counts[k]) if counts else "unknown"


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip()
    return text.splitlines()[0] if text else type(ex).__name__

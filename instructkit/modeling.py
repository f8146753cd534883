"""Model, tokenizer and adapter loading, and the encoding convention train and evaluate share.

The convention (so a model trained by ``instructkit train`` is prompted the same way by
``instructkit evaluate``):

- seq2seq (T5, BART): encoder input = prompt tokens + eos; labels = completion tokens + eos.
- causal (GPT-2, Llama, Qwen): input = [bos] + prompt tokens + completion tokens + eos; labels
  mask the prompt with -100 so the loss covers the completion only (unless asked otherwise).
  Generation feeds [bos] + prompt tokens and keeps what comes after, up to eos.

Templates own the layout. One exception, for causal models only: a prompt that does not end in
whitespace gets a newline (``causal_prompt``), because a decoder reads prompt and completion as
one text and could not otherwise tell where, say, a dialogue ends and its summary begins.
Heavy libraries are imported inside functions so ``import instructkit`` stays light.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.errors import ModelError

IGNORE_INDEX = -100
ADAPTER_CONFIG = "adapter_config.json"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    """True for a peft adapter directory (LoRA, prompt tuning, ...)."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base_model(path: str | os.PathLike[str]) -> str:
    """The base model an adapter directory was trained on."""
    config = json.loads((Path(path) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelError(f"Adapter '{path}' does not name its base model: pass --model BASE.")
    return str(base)


def check_model_source(name_or_path: str) -> str:
    """Fail fast, with a fix, when a model cannot be found locally or on an offline hub."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"Model path '{path}' is a file: give the model's directory.")
        if not (path / "config.json").is_file() and not is_adapter_dir(path):
            raise ModelError(
                f"'{path}' is not a model directory (no config.json or {ADAPTER_CONFIG}): "
                f"give a directory written by save_pretrained or 'instructkit train'."
            )
        return str(path)
    if looks_local(name_or_path):
        raise ModelError(f"Model directory '{name_or_path}' does not exist.")
    if hub_offline():
        raise ModelError(
            f"Model '{name_or_path}' is not a local directory and the hub is offline "
            f"(HF_HUB_OFFLINE=1): download it first or give a local path."
        )
    return name_or_path


def looks_local(name_or_path: str) -> bool:
    """A path rather than a hub id ("org/name"): relative, absolute, home or nested.

    "runs/lroa" is local when a folder "runs" exists here: a typo in a local path must fail at
    once with "does not exist", not after a minute of hub retries.
    """
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        return True
    first = name_or_path.replace(os.sep, "/").split("/", 1)[0]
    return "/" in name_or_path.replace(os.sep, "/") and Path(first).is_dir()


def is_seq2seq(config: Any) -> bool:
    """Encoder-decoder models (T5, BART) are seq2seq; everything else is treated as causal."""
    return bool(getattr(config, "is_encoder_decoder", False))


def auto_tokenizer(name_or_path: str) -> Any:
    """The one place instructkit loads a tokenizer (render's budgets, mix's token counts, models).

    Raises what ``AutoTokenizer.from_pretrained`` raises (OSError, ValueError): each caller
    turns that into its own stage's one-line message.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


def load_tokenizer(name_or_path: str) -> Any:
    source = check_model_source(name_or_path)
    try:
        tokenizer = auto_tokenizer(source)
    except (OSError, ValueError) as ex:
        raise ModelError(
            f"Could not load a tokenizer from '{name_or_path}': {_first_line(ex)}"
        ) from ex
    if tokenizer.pad_token_id is None:
        # causal tokenizers (GPT-2, Llama) ship without one; batching needs it
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(name_or_path: str, dtype: Any = None) -> Any:
    """Load a pretrained model with the right auto class for its architecture."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    source = check_model_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source)
        auto = AutoModelForSeq2SeqLM if is_seq2seq(config) else AutoModelForCausalLM
        kwargs = {"dtype": dtype} if dtype is not None else {}
        return auto.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as ex:
        raise ModelError(f"Could not load model '{name_or_path}': {_first_line(ex)}") from ex


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    seq2seq: bool
    adapter: str | None = None
    base: str = ""


def load_for_inference(model: str, adapter: str | None = None) -> LoadedModel:
    """Load a model, or a base model plus a peft adapter (detected from the directory)."""
    if adapter is None and is_adapter_dir(model):
        model, adapter = adapter_base_model(model), model
    if adapter is not None and not is_adapter_dir(adapter):
        raise ModelError(f"'{adapter}' is not an adapter directory (no {ADAPTER_CONFIG}).")
    base = model
    if adapter is not None and not Path(base).expanduser().exists():
        if looks_local(base):
            raise ModelError(
                f"Adapter '{adapter}' expects base model '{base}', which does not exist: "
                f"pass --model PATH_TO_BASE."
            )
        if hub_offline():
            raise ModelError(
                f"Adapter '{adapter}' expects base model '{base}', which is not a local "
                f"directory and the hub is offline: pass --model PATH_TO_BASE."
            )
    tokenizer = load_tokenizer(adapter if adapter and _has_tokenizer(adapter) else base)
    network = load_base_model(base)
    if adapter is not None:
        from peft import PeftModel

        network = PeftModel.from_pretrained(network, adapter)
    network.eval()
    return LoadedModel(network, tokenizer, is_seq2seq(network.config), adapter, base)


def _has_tokenizer(path: str) -> bool:
    return any(
        (Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")
    )


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip()
    return text.splitlines()[0] if text else type(ex).__name__


# ---------------------------------------------------------------- encoding


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def causal_prompt(prompt: str) -> str:
    """The prompt as a causal model sees it: ending in whitespace, so the answer starts apart."""
    return prompt if not prompt or prompt[-1].isspace() else prompt + "\n"


def bos_prefix(tokenizer: Any) -> list[int]:
    """[bos] when the tokenizer normally starts sequences with it (Llama), else []."""
    bos = tokenizer.bos_token_id
    if bos is None or bos == tokenizer.eos_token_id:
        return []
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if ids and ids[0] == bos else []


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_truncated: bool = False
    completion_truncated: bool = False


def encode_pair(
    tokenizer: Any,
    prompt: str,
    completion: str,
    seq2seq: bool,
    max_source_length: int,
    max_target_length: int,
    completion_only: bool = True,
) -> Encoded:
    """Token ids and labels for one training pair, following the module's convention.

    The completion is trimmed only when it alone exceeds ``max_target_length``; the prompt gives
    way first. Both are reported so the trainer can count them.
    """
    return assemble_pair(
        tokenizer,
        text_ids(tokenizer, prompt if seq2seq else causal_prompt(prompt)),
        text_ids(tokenizer, completion),
        seq2seq,
        max_source_length,
        max_target_length,
        completion_only,
    )


def assemble_pair(
    tokenizer: Any,
    prompt_ids: list[int],
    target_ids: list[int],
    seq2seq: bool,
    max_source_length: int,
    max_target_length: int,
    completion_only: bool = True,
    prefix: list[int] | None = None,
) -> Encoded:
    """``encode_pair`` for text already tokenized (batch tokenization is much faster).

    :param prefix: the causal start tokens (``bos_prefix(tokenizer)``); computed when None.
    """
    eos = [tokenizer.eos_token_id]
    completion_cut = len(target_ids) + 1 > max_target_length
    target_ids = list(target_ids[: max(0, max_target_length - 1)]) + eos
    if seq2seq:
        prompt_cut = len(prompt_ids) + 1 > max_source_length
        source = list(prompt_ids[: max(0, max_source_length - 1)]) + eos
        return Encoded(source, target_ids, prompt_cut, completion_cut)
    prefix = bos_prefix(tokenizer) if prefix is None else prefix
    room = max(0, max_source_length + max_target_length - len(prefix) - len(target_ids))
    prompt_cut = len(prompt_ids) > room
    # keep the end of the prompt, next to the completion, as encode_prompt does for generation
    kept = list(prompt_ids[len(prompt_ids) - room :]) if room else []
    prompt_ids = prefix + kept
    masked = [IGNORE_INDEX] * len(prompt_ids) if completion_only else list(prompt_ids)
    return Encoded(prompt_ids + target_ids, masked + target_ids, prompt_cut, completion_cut)


def encode_prompt(tokenizer: Any, prompt: str, seq2seq: bool, max_source_length: int) -> list[int]:
    """Token ids that prompt generation, matching how the pair was encoded for training."""
    if seq2seq:
        ids = text_ids(tokenizer, prompt)
        return ids[: max(0, max_source_length - 1)] + [tokenizer.eos_token_id]
    return bos_prefix(tokenizer) + text_ids(tokenizer, causal_prompt(prompt))[-max_source_length:]

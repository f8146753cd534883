"""Model, tokenizer and adapter loading, and the encoding convention train and evaluate share.

The convention (so a model trained by ``instructkit train`` is prompted the same way by
``instructkit evaluate``, and trains the same tokens as TRL's ``SFTTrainer`` on the same rows):

- seq2seq (T5, BART): encoder input = prompt tokens + eos; labels = completion tokens + eos.
- causal, string rows: input = ``tokenizer(prompt + completion + eos_token)`` (the tokenizer's
  own special tokens, a Llama bos say, included); nothing is inserted between prompt and
  completion, so the separator belongs to the data (the template). Labels mask the prompt with
  -100 so the loss covers the completion and its eos (unless asked otherwise).
- causal, chat rows (conversational rows, or string rows with ``chat_template=on``): input =
  the chat template applied to prompt + completion messages; the loss covers the assistant turn,
  its end-of-turn token (``<|im_end|>``) and whatever the template puts after it.
- In both causal cases the completion starts where the tokenized prompt alone and the tokenized
  whole diverge, as in TRL. Generation feeds the prompt alone (with the chat template's
  generation prompt) and keeps what comes after.
- Too long prompts lose tokens from the middle (the instruction and chat headers at the head,
  the end of the input and the assistant header at the tail stay), counted by the trainer.

Heavy libraries are imported inside functions so ``import instructkit`` stays light.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
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
    """The base model an adapter directory was trained on (absolute path, or found again
    relative to the run directory through instructkit-train.json's ``base_model_ref``)."""
    config = json.loads((Path(path) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelError(f"Adapter '{path}' does not name its base model: pass --model BASE.")
    from instructkit.artifacts.train_output import resolve_base_model

    # copied to another machine: the run record's path relative to the run still finds it
    return resolve_base_model(path, str(base))


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
    with model_load_errors(name_or_path):
        config = AutoConfig.from_pretrained(source)
        auto = AutoModelForSeq2SeqLM if is_seq2seq(config) else AutoModelForCausalLM
        kwargs = {"dtype": dtype} if dtype is not None else {}
        return auto.from_pretrained(source, **kwargs)


@contextlib.contextmanager
def model_load_errors(name_or_path: str) -> Iterator[None]:
    """Loading failures become one ModelError line; damaged weights say to fetch them again."""
    try:
        yield
    except (OSError, ValueError, ImportError) as ex:
        raise ModelError(f"Could not load model '{name_or_path}': {_first_line(ex)}") from ex
    except Exception as ex:
        if "safetensor" not in type(ex).__name__.lower():
            raise
        # a truncated or corrupt model.safetensors (an interrupted copy or download)
        raise ModelError(
            f"Could not load model '{name_or_path}': its weights are damaged "
            f"({_first_line(ex)}); copy or download the model again."
        ) from ex


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    seq2seq: bool
    adapter: str | None = None
    base: str = ""
    trained_chat: bool | None = None  # whether training used the chat template (None: unknown)


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

        try:
            network = PeftModel.from_pretrained(network, adapter)
        except Exception as ex:
            if "safetensor" not in type(ex).__name__.lower():
                raise
            raise ModelError(
                f"Could not load adapter '{adapter}': its weights are damaged "
                f"({_first_line(ex)}); copy it again or retrain it."
            ) from ex
    network.eval()
    trained = trained_encoding(adapter or model).get("chat_template")
    return LoadedModel(
        network, tokenizer, is_seq2seq(network.config), adapter, base,
        None if trained is None else bool(trained),
    )  # fmt: skip


TRAIN_RECORD = "instructkit-train.json"


def trained_encoding(path: str | os.PathLike[str]) -> dict[str, Any]:
    """How ``instructkit train`` encoded the rows of the model in ``path`` ({} if unknown)."""
    record = Path(path) / TRAIN_RECORD
    try:
        encoding = json.loads(record.read_text()).get("encoding")
    except (OSError, ValueError, AttributeError):
        return {}
    return encoding if isinstance(encoding, dict) else {}


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends generation: the model's generation_config eos ids, then the
    tokenizer's eos (instruct models end their turn with their own token)."""
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    ids = configured if isinstance(configured, list | tuple) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def _has_tokenizer(path: str) -> bool:
    return any(
        (Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")
    )


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip()
    return text.splitlines()[0] if text else type(ex).__name__


# ---------------------------------------------------------------- encoding

CHAT_TEMPLATE_MODES = ("auto", "on", "off")


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def bos_prefix(tokenizer: Any) -> list[int]:
    """[bos] when the tokenizer normally starts sequences with it (Llama), else []."""
    bos = tokenizer.bos_token_id
    if bos is None or bos == tokenizer.eos_token_id:
        return []
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if ids and ids[0] == bos else []


def is_conversational(value: Any) -> bool:
    """A list of chat messages (``{"role": ..., "content": ...}``), as in TRL's datasets."""
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], dict)
        and ("role" in value[0])
    )


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_template_id(tokenizer: Any) -> str | None:
    """A short fingerprint of the tokenizer's chat template (recorded with runs and scores)."""
    import hashlib

    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if isinstance(template, str):
        text = template
    else:  # not written, only hashed
        text = json.dumps(template, sort_keys=True, allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def use_chat_template(tokenizer: Any, mode: str, conversational: bool, seq2seq: bool) -> bool:
    """Whether rows go through the tokenizer's chat template.

    ``auto`` (the default) follows the data, as TRL does: conversational rows use the chat
    template, string rows are tokenized as plain text (``prompt + completion + eos``), so the same
    row trains the same tokens here, in TRL and with a plain tokenizer. ``on`` also wraps string
    rows (prompt as the user turn, completion as the assistant turn): the way to train an
    *instruct* model in its own format from string data. ``off`` keeps string rows plain and
    refuses conversational rows.
    """
    if mode not in CHAT_TEMPLATE_MODES:
        raise ModelError(
            f"chat_template must be one of {', '.join(CHAT_TEMPLATE_MODES)}, got '{mode}'."
        )
    if not conversational and mode != "on":
        return False
    what = "Conversational rows need" if conversational else "chat_template=on needs"
    if conversational and mode == "off":
        raise ModelError(
            "chat_template=off cannot encode conversational rows (lists of messages): "
            "use chat_template=auto, or render string prompt/completion rows."
        )
    if seq2seq:
        raise ModelError(
            f"{what} a causal model with a chat template; seq2seq models have none: "
            f"render string prompt/completion rows for them."
        )
    if not has_chat_template(tokenizer):
        raise ModelError(
            f"{what} a tokenizer with a chat template and this one has none: use an instruct "
            f"model's tokenizer, set tokenizer.chat_template, or train on string rows."
        )
    return True


def as_messages(prompt: Any, completion: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A row as (prompt messages, completion messages): strings become a user and an assistant
    turn; conversational values are returned as they are."""
    prompt_messages = (
        prompt if is_conversational(prompt) else [{"role": "user", "content": prompt or ""}]
    )
    completion_messages = (
        completion
        if is_conversational(completion)
        else [{"role": "assistant", "content": completion or ""}]
    )
    return prompt_messages, completion_messages


def batch_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts)["input_ids"]`` (special tokens added, no truncation or padding).

    A fast tokenizer's Rust backend is asked directly with ``encode_batch_fast`` (no character
    offsets, no per-row ``BatchEncoding`` conversion): a third less CPU than ``__call__`` on
    long rows, the same ids. Only when the backend is in the state ``__call__`` would put it in
    (no truncation, no padding, special tokens not split); otherwise, or for a slow tokenizer,
    through ``__call__``.
    """
    if not texts:
        return []
    backend: Any = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None)
    if (
        fast is None
        or backend.truncation is not None
        or backend.padding is not None
        or bool(getattr(backend, "encode_special_tokens", False))
        != bool(getattr(tokenizer, "split_special_tokens", False))
    ):
        return [list(ids) for ids in tokenizer(texts)["input_ids"]]
    return [encoding.ids for encoding in fast(texts, add_special_tokens=True)]


def common_prefix_length(ids: list[int], other: list[int]) -> int:
    """Leading tokens two sequences share (where TRL starts the completion)."""
    length = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        length += 1
    return length


def chat_ids(
    tokenizer: Any, conversations: list[list[dict[str, Any]]], prompt: bool
) -> list[list[int]]:
    """Token ids of conversations through the chat template, exactly as TRL tokenizes them.

    :param prompt: add the generation prompt (the assistant header), as for a prompt alone.
    """
    if not conversations:
        return []
    try:
        out = tokenizer.apply_chat_template(
            conversations, tokenize=True, return_dict=True, add_generation_prompt=prompt
        )
    except Exception as ex:  # noqa: BLE001 - a template's own error (raise_exception) or bad row
        raise ModelError(f"The chat template failed on a row: {_first_line(ex)}") from ex
    return [list(ids) for ids in out["input_ids"]]


def split_rows(
    tokenizer: Any, prompts: Sequence[Any], completions: Sequence[Any], chat: bool
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) of causal rows, split exactly as TRL's SFTTrainer splits them.

    String rows (``chat=False``): TRL appends the eos token to the completion (as text, unless it
    already ends with it) and tokenizes ``prompt + completion`` as one text with the tokenizer's
    special tokens (a Llama bos, say); nothing is inserted between prompt and completion.
    Chat rows: the prompt messages with the generation prompt, and prompt + completion messages,
    both through the chat template. Either way the completion starts where the tokenized prompt
    and the tokenized whole diverge, and ``prompt ids + completion ids`` is TRL's ``input_ids``.
    """
    if chat:
        pairs = [as_messages(p, c) for p, c in zip(prompts, completions, strict=True)]
        prompt_ids = chat_ids(tokenizer, [p for p, _ in pairs], prompt=True)
        whole_ids = chat_ids(tokenizer, [p + c for p, c in pairs], prompt=False)
    else:
        for value in (*prompts, *completions):
            if value is not None and not isinstance(value, str):
                raise ModelError(
                    "Rows mix conversational and string prompt/completion values: "
                    "give one form per dataset."
                )
        eos = tokenizer.eos_token or ""
        texts = [p or "" for p in prompts]
        wholes = [
            text + (c or "") + ("" if (c or "").endswith(eos) else eos)
            for text, c in zip(texts, completions, strict=True)
        ]
        prompt_ids = batch_ids(tokenizer, texts)
        whole_ids = batch_ids(tokenizer, wholes)
    rows = []
    for prompt, whole in zip(prompt_ids, whole_ids, strict=True):
        cut = common_prefix_length(prompt, whole)
        rows.append((whole[:cut], whole[cut:]))
    return rows


def keep_ends(ids: list[int], room: int) -> list[int]:
    """At most ``room`` tokens of ``ids``, cut from the middle: the head (instruction, chat
    headers) and the tail (the end of the input, the cue, the assistant header) stay."""
    if len(ids) <= room:
        return list(ids)
    if room <= 0:
        return []
    head = room // 2
    return list(ids[:head]) + list(ids[len(ids) - (room - head) :])


def _end_length(ids: list[int], stop_ids: set[int]) -> int:
    """How many tokens end a completion: from its last stop token (eos, <|im_end|>) on."""
    for back in range(1, min(len(ids), 4) + 1):
        if ids[-back] in stop_ids:
            return back
    return 0


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_truncated: bool = False
    completion_truncated: bool = False
    completion_length: int = 0  # tokens of the completion before any cut, its end included


def encode_pair(
    tokenizer: Any,
    prompt: Any,
    completion: Any,
    seq2seq: bool,
    max_source_length: int,
    max_target_length: int,
    completion_only: bool = True,
    chat: bool = False,
) -> Encoded:
    """Token ids and labels for one training pair (see :func:`encode_pairs`)."""
    return encode_pairs(
        tokenizer, [prompt], [completion], seq2seq, max_source_length, max_target_length,
        completion_only, chat,
    )[0]  # fmt: skip


def encode_pairs(
    tokenizer: Any,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    seq2seq: bool,
    max_source_length: int,
    max_target_length: int,
    completion_only: bool = True,
    chat: bool = False,
) -> list[Encoded]:
    """Token ids and labels for training pairs, following the module's convention.

    Causal rows are TRL's ``input_ids`` (:func:`split_rows`); the labels are the completion's
    ids (its eos or end-of-turn tokens included) and -100 over the prompt, or every id when
    ``completion_only`` is false. Masks are positional, never by token id: pad can equal eos.
    The completion is trimmed only when it alone exceeds ``max_target_length`` (its end tokens
    kept); the prompt gives way first, from its middle. Both cuts are reported so the trainer
    can count them.
    """
    if seq2seq:
        if any(is_conversational(v) for v in (*prompts, *completions)):
            use_chat_template(tokenizer, "auto", True, seq2seq)  # raises the one-line reason
        sources = [text_ids(tokenizer, p or "") for p in prompts]
        targets = [text_ids(tokenizer, c or "") for c in completions]
        return [
            assemble_pair(tokenizer, s, t, True, max_source_length, max_target_length)
            for s, t in zip(sources, targets, strict=True)
        ]
    stop_ids = {tokenizer.eos_token_id}
    encoded = []
    for prompt_ids, target_ids in split_rows(tokenizer, prompts, completions, chat):
        completion_length = len(target_ids)
        completion_cut = completion_length > max_target_length
        if completion_cut:
            end = min(_end_length(target_ids, stop_ids), max_target_length)
            keep = max_target_length - end
            target_ids = target_ids[:keep] + target_ids[len(target_ids) - end :]
        room = max(0, max_source_length + max_target_length - len(target_ids))
        prompt_cut = len(prompt_ids) > room
        prompt_ids = keep_ends(prompt_ids, room)
        masked = [IGNORE_INDEX] * len(prompt_ids) if completion_only else list(prompt_ids)
        encoded.append(
            Encoded(
                prompt_ids + target_ids,
                masked + target_ids,
                prompt_cut,
                completion_cut,
                completion_length,
            )  # fmt: skip
        )
    return encoded


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
    """A pair from ids without special tokens: adds eos (and, causal, the bos prefix) and cuts
    to the budgets. Causal prompts are cut from the middle (:func:`keep_ends`)."""
    eos = [tokenizer.eos_token_id]
    completion_length = len(target_ids) + 1
    completion_cut = completion_length > max_target_length
    target_ids = list(target_ids[: max(0, max_target_length - 1)]) + eos
    if seq2seq:
        prompt_cut = len(prompt_ids) + 1 > max_source_length
        source = list(prompt_ids[: max(0, max_source_length - 1)]) + eos
        return Encoded(source, target_ids, prompt_cut, completion_cut, completion_length)
    prefix = bos_prefix(tokenizer) if prefix is None else prefix
    room = max(0, max_source_length + max_target_length - len(prefix) - len(target_ids))
    prompt_cut = len(prompt_ids) > room
    prompt_ids = prefix + keep_ends(prompt_ids, room)
    masked = [IGNORE_INDEX] * len(prompt_ids) if completion_only else list(prompt_ids)
    return Encoded(
        prompt_ids + target_ids, masked + target_ids, prompt_cut, completion_cut, completion_length
    )


def prompt_ids(tokenizer: Any, prompts: Sequence[Any], chat: bool) -> list[list[int]]:
    """Causal prompt ids for generation: what training put before the completion.

    Chat: the prompt messages with the generation prompt. Plain: the prompt text with the
    tokenizer's special tokens (a bos), nothing appended.
    """
    if chat:
        return chat_ids(tokenizer, [as_messages(p, None)[0] for p in prompts], prompt=True)
    for value in prompts:
        if value is not None and not isinstance(value, str):
            use_chat_template(tokenizer, "off", True, False)  # raises the one-line reason
    texts = [p or "" for p in prompts]
    return [list(ids) for ids in tokenizer(texts)["input_ids"]] if texts else []


def encode_prompt(
    tokenizer: Any, prompt: Any, seq2seq: bool, max_source_length: int, chat: bool = False
) -> list[int]:
    """Token ids that prompt generation, matching how the pair was encoded for training."""
    if seq2seq:
        if is_conversational(prompt):
            use_chat_template(tokenizer, "auto", True, seq2seq)  # raises the one-line reason
        ids = text_ids(tokenizer, prompt or "")
        return ids[: max(0, max_source_length - 1)] + [tokenizer.eos_token_id]
    return keep_ends(prompt_ids(tokenizer, [prompt], chat)[0], max_source_length)


def generation_chat(loaded: LoadedModel, prompts: Sequence[Any], mode: str = "auto") -> bool:
    """Whether generation goes through the chat template: as in training when the model's
    record says (``auto``), else as :func:`use_chat_template` decides for these prompts."""
    conversational = any(is_conversational(p) for p in prompts)
    if mode == "auto" and loaded.trained_chat is not None and not conversational:
        mode = "on" if loaded.trained_chat else "off"
    return use_chat_template(loaded.tokenizer, mode, conversational, loaded.seq2seq)

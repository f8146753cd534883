"""Batched generation: greedy by default, with the generation options users expect exposed.

Prompts are encoded with :func:`instructkit.modeling.encode_prompt`, the same convention training
used. Causal models are padded on the left so every row's continuation starts at the same
position; prompts are batched longest first (less padding, and an out-of-memory error shows up
in the first batch) and the outputs are put back in input order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from instructkit.errors import OptionsError
from instructkit.modeling import LoadedModel, encode_prompt, generation_chat, stop_token_ids


@dataclass
class GenerationOptions:
    """How predictions are generated; the defaults give deterministic greedy decoding."""

    max_new_tokens: int = field(default=128, metadata={"help": "Tokens generated at most per row."})
    num_beams: int = field(default=1, metadata={"help": "Beam search width (1: greedy)."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy/beam."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate() call."})
    max_source_length: int = field(default=512, metadata={"help": "Prompt tokens kept at most."})
    seed: int = field(default=0, metadata={"help": "Seed for sampling."})
    chat_template: str = field(
        default="auto",
        metadata={
            "help": "auto: as the model was trained (else conversational rows only); on; off."
        },
    )

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "num_beams", "batch_size", "max_source_length"):
            if getattr(self, name) < 1:
                raise OptionsError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise OptionsError(
                f"temperature (--temperature) must be a finite number above 0, "
                f"got {self.temperature}."
            )
        if not 0 < self.top_p <= 1:  # also refuses nan
            raise OptionsError(f"top_p (--top-p) must be in (0, 1], got {self.top_p}.")
        if not self.do_sample and (self.temperature != 1.0 or self.top_p != 1.0):
            raise OptionsError(
                "temperature and top_p only apply when sampling: add do_sample (--do-sample)."
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def generate_kwargs(self, tokenizer: Any, stop_ids: list[int] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``model.generate``; sampling knobs only when sampling."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
            "eos_token_id": stop_ids or tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


def generate(
    loaded: LoadedModel,
    prompts: Sequence[str],
    options: GenerationOptions | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Generate one prediction per prompt, returned in the order of ``prompts``."""
    import torch

    options = options or GenerationOptions()
    torch.manual_seed(options.seed)
    # an empty causal prompt without a bos token would give a zero-width batch
    fallback = [loaded.tokenizer.eos_token_id]
    chat = generation_chat(loaded, prompts, options.chat_template)
    encoded = [
        encode_prompt(loaded.tokenizer, p, loaded.seq2seq, options.max_source_length, chat)
        or fallback
        for p in prompts
    ]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    for start in range(0, len(order), options.batch_size):
        batch = order[start : start + options.batch_size]
        texts = _generate_batch(loaded, [encoded[i] for i in batch], options)
        for index, text in zip(batch, texts, strict=True):
            outputs[index] = text
        if on_batch is not None:
            on_batch(len(batch))
    return outputs


def _generate_batch(
    loaded: LoadedModel, batch: list[list[int]], options: GenerationOptions
) -> list[str]:
    import torch

    tokenizer = loaded.tokenizer
    input_ids, attention_mask = pad_batch(batch, tokenizer.pad_token_id, left=not loaded.seq2seq)
    device = model_device(loaded.model)
    with torch.inference_mode():
        generated = loaded.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            **options.generate_kwargs(tokenizer, stop_token_ids(loaded.model, tokenizer)),
        )
    if not loaded.seq2seq:
        # a causal model returns prompt + continuation; left padding aligns every prompt's end
        generated = generated[:, input_ids.shape[1] :]
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [text.strip() for text in texts]


def pad_batch(batch: list[list[int]], pad_id: int, left: bool) -> tuple[Any, Any]:
    """Input ids and attention mask tensors, padded on the left or on the right."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        columns = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, columns] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, columns] = 1
    return input_ids, attention_mask


def model_device(model: Any) -> Any:
    """The device of the model's first parameter (where inputs must go)."""
    return next(model.parameters()).device

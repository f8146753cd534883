"""Token budgets: count tokens, trim the long field (the dialogue) to fit, report lengths.

Only the pack's ``trim_field`` is ever cut, and only where it sits in the prompt: the
instruction and the target stay whole. Cuts fall on a turn boundary (a line break) when one
fits, else on a token boundary. Every cut is counted in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from instructkit.errors import RenderError
from instructkit.render.templates import CompiledTemplate

_MAX_TRIES = 6


class TokenBudget:
    """A tokenizer with optional prompt/completion limits."""

    def __init__(
        self,
        tokenizer: str,
        max_prompt_tokens: int | None = None,
        max_completion_tokens: int | None = None,
    ) -> None:
        self.name = tokenizer
        self.tokenizer = load_tokenizer(tokenizer)
        self.max_prompt_tokens = max_prompt_tokens
        self.max_completion_tokens = max_completion_tokens

    def count(self, texts: pa.Array | list[str]) -> np.ndarray:
        """Tokens per text, without special tokens."""
        values = texts.to_pylist() if isinstance(texts, pa.Array) else list(texts)
        if not values:
            return np.zeros(0, dtype=np.int32)
        encoded = self.tokenizer(values, add_special_tokens=False)["input_ids"]
        return np.fromiter((len(ids) for ids in encoded), dtype=np.int32, count=len(values))

    def fit_prompt(
        self, template: CompiledTemplate, row: Mapping[str, Any], field: str, where: str
    ) -> tuple[str, str] | None:
        """Re-render ``row`` with ``field`` cut so the prompt fits, or None if it cannot."""
        limit = self.max_prompt_tokens
        text = row[field]
        if limit is None or not isinstance(text, str):
            return None
        ends = self._token_ends(text)
        prompt, completion = template.render_row(row, where)
        keep = len(ends) - (int(self.count([prompt])[0]) - limit)
        for _ in range(_MAX_TRIES):
            if keep <= 0:
                return None
            cut = _turn_boundary(text, ends[keep - 1])
            prompt, completion = template.render_row({**row, field: text[:cut]}, where)
            excess = int(self.count([prompt])[0]) - limit
            if excess <= 0:
                return prompt, completion
            keep -= max(1, excess)
        return None

    def _token_ends(self, text: str) -> list[int]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [end for _, end in encoded["offset_mapping"]]


def load_tokenizer(name_or_path: str) -> Any:
    """A fast tokenizer from a local directory or a hub id (offline needs it cached)."""
    from instructkit.modeling import auto_tokenizer

    try:
        return auto_tokenizer(name_or_path)
    except (OSError, ValueError) as ex:
        raise RenderError(
            f"Cannot load tokenizer '{name_or_path}': pass a local tokenizer directory or a "
            f"hub id available offline ({type(ex).__name__})."
        ) from ex


def _turn_boundary(text: str, cut: int) -> int:
    # Keep whole turns when at least one fits; a half turn reads like a different dialogue.
    line_break = text.rfind("\n", 0, cut + 1)
    if line_break <= 0:
        return cut
    return line_break - 1 if text[line_break - 1] == "\r" else line_break


def length_stats(lengths: np.ndarray) -> dict[str, float]:
    """min/median/p95/max of token counts."""
    if len(lengths) == 0:
        return {}
    return {
        "min": int(lengths.min()),
        "median": float(np.median(lengths)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
    }

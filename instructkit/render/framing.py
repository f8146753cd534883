"""Frame rendered (prompt, completion) strings as rows of one form: text or conversational.

- **text** (TRL's standard prompt-completion): the prompt ends with the pack's ``separator``
  (``"\\n"`` by default), so ``prompt + completion`` is the text a model trains on, the same
  in instructkit, TRL, LLaMA-Factory or a plain ``tokenizer(prompt + completion)``.
  Demonstrations come first, each ``prompt + separator + completion``, then a blank line (FLAN's
  few-shot layout); a system prompt, if any, opens the prompt followed by a blank line.
- **conversational** (TRL's conversational prompt-completion): ``prompt`` is
  ``[system?, (user, assistant) per demonstration, user]`` and ``completion`` is
  ``[assistant]``; the chat template does the joining, so no separator is written.

Demonstrations (``--few-shot K``) are rendered from the train split with the row's own
template and drawn per row from a seeded hash of (seed, template, example id): the same rows
on every run, never the row's own example, never an evaluation row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructkit.render.fast import offsets_array, repeat_text, text_array, text_scalar

FORMS = ("text", "conversational")
# Demonstrations are drawn from at most this many train examples (a seeded sample).
DEMO_POOL_SIZE = 256
DEMO_GAP = "\n\n"  # between demonstrations, and between a system prompt and the rest (text)


@dataclass
class DemoPool:
    """Train rows rendered with one template: the candidates for that template's demos."""

    example_ids: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)


@dataclass
class Framing:
    """How rendered strings become rows: the form, the join, a system prompt, demonstrations."""

    form: str = "text"
    separator: str = "\n"
    system: str | None = None
    few_shot: int = 0
    seed: int = 0
    pools: dict[str, DemoPool] = field(default_factory=dict)

    def frame(
        self, template_id: str, prompt: pa.Array, completion: pa.Array, example_ids: pa.Array
    ) -> tuple[pa.Array, pa.Array]:
        """The framed prompt and completion columns of one template's rows."""
        pool = self.pools.get(template_id) or DemoPool()
        demos = self.demonstrations(template_id, example_ids) if self.few_shot else None
        if self.form == "conversational":
            return self._conversational(prompt, completion, pool, demos)
        return self._text(prompt, pool, demos), completion

    def demonstrations(self, template_id: str, example_ids: pa.Array) -> list[list[int]]:
        """For each row, the pool indices of its demonstrations (deterministic, never itself)."""
        pool = self.pools.get(template_id) or DemoPool()
        ids = np.asarray(pool.example_ids, dtype=object)
        chosen = []
        for example_id in example_ids.to_pylist():
            candidates = np.flatnonzero(ids != example_id)
            key = f"{self.seed}\0{template_id}\0{example_id}".encode()
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
            count = min(self.few_shot, len(candidates))
            chosen.append([int(i) for i in rng.choice(candidates, count, replace=False)])
        return chosen

    def _text(self, prompt: pa.Array, pool: DemoPool, demos: list[list[int]] | None) -> pa.Array:
        if demos is None and self.system is None:
            separator = text_scalar(self.separator)
            joined = pc.binary_join_element_wise(prompt, separator, text_scalar(""))
            return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
        framed = []
        for row, text in enumerate(prompt.to_pylist()):
            parts = [] if self.system is None else [self.system]
            for i in (demos or [[]] * len(prompt))[row]:
                parts.append(pool.prompts[i] + self.separator + pool.completions[i])
            parts.append((text or "") + self.separator)
            framed.append(DEMO_GAP.join(parts))
        return text_array(framed)

    def _conversational(
        self,
        prompt: pa.Array,
        completion: pa.Array,
        pool: DemoPool,
        demos: list[list[int]] | None,
    ) -> tuple[pa.Array, pa.Array]:
        contents: list[str] = []
        roles: list[str] = []
        offsets = [0]
        for row, text in enumerate(prompt.to_pylist()):
            if self.system is not None:
                contents.append(self.system)
                roles.append("system")
            for i in (demos or [[]] * len(prompt))[row]:
                contents += [pool.prompts[i], pool.completions[i]]
                roles += ["user", "assistant"]
            contents.append(text or "")
            roles.append("user")
            offsets.append(len(contents))
        framed_prompt = messages(text_array(contents), text_array(roles), offsets)
        n = len(completion)
        framed_completion = messages(completion, repeat_text("assistant", n), list(range(n + 1)))
        return framed_prompt, framed_completion


def messages(contents: pa.Array, roles: pa.Array, offsets: Sequence[int]) -> pa.Array:
    """A list<struct<content, role>> array from flat contents/roles and list offsets."""
    structs = pa.StructArray.from_arrays([contents, roles], names=["content", "role"])
    return pa.ListArray.from_arrays(offsets_array(np.asarray(offsets)), structs)

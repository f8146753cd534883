"""The loss probe: a cheap forgetting signal beyond the scored tasks (CPU seconds).

For each model: the mean completion loss (and perplexity) on held-out rendered rows — encoded
exactly as ``instructkit train`` encodes them (:func:`instructkit.modeling.encode_pair`) — and
on a held-out plain-text sample (each passage as a completion of an empty prompt: the causal
model's text perplexity; for seq2seq, the decoder's, given an empty input). A model that forgot
how its base wrote plain text shows it here, before any benchmark runs (peft added this proxy
to its forgetting benchmark).

The plain-text sample shipped (``instructkit/data/plain_text_sample.txt``) is our own writing,
about 1,200 words in 25 everyday paragraphs, so no model has seen it in pretraining.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.errors import EvaluateError

PLAIN_TEXT_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "plain_text_sample.txt"
PLAIN_TEXT_PROBE = "plain text"
PROBE_NAME = "loss_probe.json"


@dataclass
class ProbeResult:
    """Mean loss per target token (nats) over a set of rows, and its perplexity."""

    name: str
    loss: float
    tokens: int
    rows: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "perplexity": self.perplexity,
            "tokens": self.tokens,
            "rows": self.rows,
        }


@dataclass
class ProbeOptions:
    """What the loss probe reads: plain-text files (blank-line separated passages) and budgets."""

    texts: Sequence[str | os.PathLike[str]] = (PLAIN_TEXT_SAMPLE,)
    max_source_length: int = 512
    max_target_length: int = 256
    batch_size: int = 8
    max_rows: int | None = 200  # per task: the first rows of the evaluated ones

    def to_json(self) -> dict[str, Any]:
        return {
            "texts": [str(t) for t in self.texts],
            "max_source_length": self.max_source_length,
            "max_target_length": self.max_target_length,
            "max_rows": self.max_rows,
        }


def read_passages(path: str | os.PathLike[str]) -> list[str]:
    """Blank-line separated passages of a text file (lines of a passage joined by spaces)."""
    file = Path(path)
    if not file.is_file():
        raise EvaluateError(f"Probe text '{path}' does not exist.")
    blocks = file.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n")
    passages = [" ".join(line.strip() for line in b.splitlines() if line.strip()) for b in blocks]
    passages = [p for p in passages if p]
    if not passages:
        raise EvaluateError(f"Probe text '{path}' is empty.")
    return passages


def probe_sets(
    rows: Sequence[dict[str, Any]], options: ProbeOptions
) -> dict[str, list[tuple[str, str]]]:
    """(prompt, completion) pairs per probe: each task's rows, then each plain-text file."""
    sets: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        pairs = sets.setdefault(row["task"], [])
        if options.max_rows is None or len(pairs) < options.max_rows:
            completion = row.get("completion") or (row.get("references") or [""])[0]
            pairs.append((row["prompt"], completion))
    for text in options.texts:
        shipped = Path(text).resolve() == PLAIN_TEXT_SAMPLE
        name = PLAIN_TEXT_PROBE if shipped else f"{PLAIN_TEXT_PROBE}: {Path(text).name}"
        sets[name] = [("", passage) for passage in read_passages(text)]
    return sets


def probe_losses(
    loaded: Any, sets: dict[str, list[tuple[str, str]]], options: ProbeOptions
) -> dict[str, ProbeResult]:
    """Mean target-token loss of a loaded model (:class:`LoadedModel`) on each set of pairs."""
    from instructkit.modeling import generation_chat

    results = {}
    for name, pairs in sets.items():
        # task rows as the model was trained (its chat template or not); plain text as is
        chat = (
            False
            if name.startswith(PLAIN_TEXT_PROBE)
            else generation_chat(loaded, [p for p, _ in pairs])
        )
        results[name] = pair_loss(loaded, name, pairs, options, chat)
    return results


def pair_loss(
    loaded: Any, name: str, pairs: Sequence[tuple[Any, Any]], options: ProbeOptions,
    chat: bool = False,
) -> ProbeResult:  # fmt: skip
    """Summed token NLL over batches of pairs, divided by the number of target tokens."""
    import torch

    from instructkit.evaluate.generate import model_device
    from instructkit.modeling import IGNORE_INDEX, encode_pairs

    tokenizer, seq2seq, model = loaded.tokenizer, loaded.seq2seq, loaded.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = model_device(model)
    encoded = encode_pairs(
        tokenizer, [p for p, _ in pairs], [c for _, c in pairs], seq2seq,
        options.max_source_length, options.max_target_length, True, chat,
    )  # fmt: skip
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(encoded), options.batch_size):
            batch = _pad(encoded[start : start + options.batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            if seq2seq:
                batch["decoder_input_ids"] = base.prepare_decoder_input_ids_from_labels(
                    labels=labels
                )
            logits = model(**batch).logits
            if not seq2seq:  # position t predicts token t + 1
                logits, labels = logits[:, :-1], labels[:, 1:]
            # prompt tuning prepends virtual tokens to a causal model's logits
            logits = logits[:, -labels.shape[1] :]
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum",
            )  # fmt: skip
            total += float(loss)
            tokens += int((labels != IGNORE_INDEX).sum())
    return ProbeResult(name, total / max(tokens, 1), tokens, len(pairs))


def _pad(encoded: Sequence[Any], pad_id: int) -> dict[str, Any]:
    """Right-padded input ids, attention mask and labels (-100 where padded)."""
    import torch

    from instructkit.modeling import IGNORE_INDEX

    width = max(len(e.input_ids) for e in encoded)
    label_width = max(len(e.labels) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), label_width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[row, : len(e.input_ids)] = 1
        labels[row, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def run_probe(
    model: str,
    adapter: str | None,
    rows: Sequence[dict[str, Any]],
    options: ProbeOptions,
    load: Callable[[str, str | None], Any],
    out: str | os.PathLike[str] | None = None,
) -> dict[str, ProbeResult]:
    """Load a model (``load(model, adapter)``) and probe it; write ``loss_probe.json``."""
    sets = probe_sets(rows, options)
    loaded = load(model, adapter)
    results = probe_losses(loaded, sets, options)
    if out is not None:
        data = {
            "options": options.to_json(),
            "probes": {n: r.to_json() for n, r in results.items()},
        }
        (Path(out) / PROBE_NAME).write_text(
            json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    return results

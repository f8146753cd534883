"""Helpers for the evaluate tests: tiny datasets, tiny models, a tuned model and adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from instructkit import tiny
from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.manifest import write_manifest

NAMES = ["Amanda", "Jerry", "Tom", "Anna", "Bob", "Maria", "Lucy", "Peter"]
PLACES = ["office", "party", "dinner", "meeting"]


def dialogue(i: int) -> str:
    a, b = NAMES[i % len(NAMES)], NAMES[(i * 3 + 1) % len(NAMES)]
    place = PLACES[i % len(PLACES)]
    return f"#Person1#: {a} wants to meet {b} at the {place} tomorrow.\n#Person2#: Okay, thanks."


def task_rows(task: str, count: int, start: int = 0) -> list[dict]:
    """Rows of a 'topic' task (one word) or a 'summary' task (three references each)."""
    rows = []
    for i in range(start, start + count):
        text = dialogue(i)
        if task == "topic":
            refs = [PLACES[i % len(PLACES)]]
            prompt = f"What is the topic?\n{text}\nTopic:"
        else:
            who = NAMES[i % len(NAMES)]
            refs = [f"{who} wants to meet tomorrow.", f"{who} will meet a friend.", "They meet."]
            prompt = f"Summarize the dialogue.\n{text}\nSummary:"
        rows.append(
            {
                "prompt": prompt,
                "completion": refs[0],
                "references": refs,
                "task": task,
                "template_id": f"{task}-v1",
                "example_id": f"{task}-{i}",
                "source_split": "test",
                "source_index": i,
            }
        )
    return rows


def write_dataset(path: Path, splits: dict[str, list[dict]], manifest: dict) -> Path:
    """An instructkit dataset directory with these rows per split and this manifest."""
    path.mkdir(parents=True)
    for split, rows in splits.items():
        table = pa.Table.from_pylist(rows, schema=artifact.SCHEMA)
        artifact.write_split(path, split, [table])
    artifact.write_dataset_dict(path, list(splits))
    write_manifest(path, manifest)
    return path


def render_like(path: Path, task: str, count: int = 6, metrics: list[str] | None = None) -> Path:
    """A dataset shaped like 'instructkit render' output for one task."""
    manifest = {"task": task, "metrics": metrics or ["rouge"]}
    return write_dataset(path, {"test": task_rows(task, count)}, manifest)


def corpus() -> list[str]:
    texts = [r["prompt"] + " " + " ".join(r["references"]) for r in task_rows("summary", 16)]
    texts += [r["prompt"] + " " + r["completion"] for r in task_rows("topic", 16)]
    return texts + tiny.default_corpus()


def make_model(path: Path, arch: str = "t5") -> Path:
    return tiny.save_tiny_model(path, arch=arch, texts=corpus(), vocab_size=400, size=32)


def train_steps(base: Path, out: Path, rows: list[dict], steps: int = 30) -> Path:
    """Tune ``base`` for a few steps on ``rows`` (the way 'instructkit train full' would)."""
    import torch

    from instructkit import modeling

    loaded = modeling.load_for_inference(str(base))
    model, tokenizer = loaded.model, loaded.tokenizer
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    encoded = [
        modeling.encode_pair(tokenizer, r["prompt"], r["completion"], loaded.seq2seq, 128, 32)
        for r in rows
    ]
    torch.manual_seed(0)
    for step in range(steps):
        pair = encoded[step % len(encoded)]
        ids = torch.tensor([pair.input_ids])
        labels = torch.tensor([pair.labels])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tasks = sorted({r["task"] for r in rows})
    info = {"backend": "full", "base_model": str(base), "seq2seq": loaded.seq2seq, "tasks": tasks}
    (out / "instructkit-train.json").write_text(json.dumps(info))
    return out


def make_adapter(base: Path, out: Path, kind: str = "lora") -> Path:
    """A LoRA or prompt-tuning adapter of ``base`` saved with peft, untrained."""
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    from instructkit import modeling

    model = modeling.load_base_model(str(base))
    seq2seq = modeling.is_seq2seq(model.config)
    task_type = TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM
    if kind == "lora":
        targets = ["q", "v"] if seq2seq else ["c_attn"]
        config = LoraConfig(task_type=task_type, r=2, target_modules=targets)
    else:
        config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=4)
    get_peft_model(model, config).save_pretrained(out)
    return out

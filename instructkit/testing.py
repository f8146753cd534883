"""Test helpers for trainer backends: tiny datasets and models, and the trainer contract.

Plugin authors run the same contract test as the built-ins, on CPU, in seconds::

    from instructkit.testing import assert_trainer_contract

    def test_my_trainer(tmp_path):
        assert_trainer_contract(MyTrainer, tmp_path, arch="gpt2")

Nothing here needs the network: models are built from a config with a tokenizer trained on the
fly (:mod:`instructkit.tiny`), datasets are written with :mod:`instructkit.artifacts.dataset`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from instructkit.artifacts.dataset import SCHEMA, write_dataset_dict, write_split
from instructkit.artifacts.manifest import write_manifest
from instructkit.artifacts.train_output import CHART_NAME, LOG_NAME, METADATA_NAME
from instructkit.errors import OptionsError, OutputExistsError
from instructkit.train.base import Trainer, TrainerOptions, TrainerRegistry, build_options
from instructkit.train.run import checkpoint_dir_for, run_training

NAMES = ("Amanda", "Jerry", "Tom", "Anna", "Bob", "Maria", "Lucy", "Peter")
TOPICS = ("party", "dinner", "office", "game", "trip", "book")
TIMES = ("today", "tomorrow", "tonight", "on Monday")
TASKS = ("summarize", "title")

# Few steps, small lengths, logging/eval/save every 2 steps: every code path runs in ~1 s.
# eval_batch_size covers the whole validation split so its loss is one batch's loss.
CONTRACT_OPTIONS: dict[str, Any] = {
    "max_steps": 6,
    "batch_size": 4,
    "eval_batch_size": 8,
    "logging_steps": 2,
    "eval_steps": 2,
    "save_steps": 2,
    "max_source_length": 48,
    "max_target_length": 24,
    "seed": 0,
}
REQUIRED_METADATA = (
    "backend",
    "options",
    "base_model",
    "seq2seq",
    "dataset",
    "tasks",
    "truncated_prompts",
    "truncated_completions",
    "train_loss",
    "eval_loss",
)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: for tiny models, thread start-up and contention cost more."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_pair(index: int, task: str) -> tuple[str, str]:
    """A deterministic (prompt, completion) pair; short and regular enough to learn in steps."""
    a, b = NAMES[index % len(NAMES)], NAMES[(index * 3 + 1) % len(NAMES)]
    topic, when = TOPICS[index % len(TOPICS)], TIMES[(index // 2) % len(TIMES)]
    dialogue = f"#Person1#: {a} asks about the {topic} {when}. #Person2#: {b} says yes."
    if task == "title":
        return f"Give a title.\n{dialogue}\nTitle:", f" {topic} {when}"
    return f"Summarize the dialogue.\n{dialogue}\nSummary:", f" {a} and {b} talk about the {topic}."


def tiny_rows(count: int, tasks: Sequence[str] = TASKS, offset: int = 0) -> pa.Table:
    """``count`` rows in the instructkit schema, tasks alternating."""
    rows: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for i in range(offset, offset + count):
        task = tasks[i % len(tasks)]
        prompt, completion = tiny_pair(i, task)
        values = {
            "prompt": prompt,
            "completion": completion,
            "references": [completion],
            "task": task,
            "template_id": f"{task}/default",
            "example_id": str(i),
            "source_split": "train",
            "source_index": i,
        }
        for name in SCHEMA.names:
            rows[name].append(values[name])
    return pa.table(rows, schema=SCHEMA)


def make_tiny_dataset(
    path: str | os.PathLike[str],
    train_rows: int = 32,
    validation_rows: int = 8,
    tasks: Sequence[str] = TASKS,
    splits: Mapping[str, pa.Table] | None = None,
) -> Path:
    """Write an instructkit dataset directory (train + validation, or ``splits`` as given)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = {"train": tiny_rows(train_rows, tasks)}
        if validation_rows:
            splits["validation"] = tiny_rows(validation_rows, tasks, offset=train_rows)
    for name, table in splits.items():
        write_split(root, name, [table], schema=table.schema)
    write_dataset_dict(root, list(splits))
    write_manifest(root, {"command": "instructkit.testing.make_tiny_dataset", "tasks": list(tasks)})
    return root


def tiny_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: the pairs themselves, so few tokens per row."""
    from instructkit.tiny import default_corpus

    pairs = [tiny_pair(i, task) for i in range(48) for task in TASKS]
    return [text for pair in pairs for text in pair] + default_corpus()


def make_tiny_model(path: str | os.PathLike[str], arch: str = "t5") -> Path:
    """A tiny ``arch`` model (t5, gpt2 or llama) with a tokenizer fitted to the tiny pairs."""
    from instructkit.tiny import save_tiny_model

    return save_tiny_model(path, arch, texts=tiny_corpus(), vocab_size=400)


def fixed_batch_loss(
    model_dir: str | os.PathLike[str],
    dataset_dir: str | os.PathLike[str],
    split: str = "validation",
    options: TrainerOptions | None = None,
) -> float:
    """Loss of a saved model or adapter on a whole split as one batch, encoded as in training."""
    import torch

    from instructkit.artifacts.dataset import open_split
    from instructkit.modeling import load_for_inference
    from instructkit.train.hf import encode_split, make_collator

    options = options or TrainerOptions()
    loaded = load_for_inference(str(model_dir))
    encoded = encode_split(
        loaded.tokenizer, open_split(dataset_dir, split), loaded.seq2seq, options
    )
    base = loaded.model.get_base_model() if loaded.adapter else loaded.model
    batch = make_collator(loaded.tokenizer, base, loaded.seq2seq)(encoded.features)
    with torch.no_grad():
        return float(loaded.model(**batch).loss)


def generate_one(model_dir: str | os.PathLike[str], prompt: str, max_new_tokens: int = 8) -> str:
    """Greedy generation for one prompt with the evaluate convention (checks it runs)."""
    import torch

    from instructkit.modeling import encode_prompt, generation_chat, load_for_inference

    loaded = load_for_inference(str(model_dir))
    chat = generation_chat(loaded, [prompt])
    ids = torch.tensor([encode_prompt(loaded.tokenizer, prompt, loaded.seq2seq, 64, chat)])
    with torch.no_grad():
        out = loaded.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
    new = out[0] if loaded.seq2seq else out[0, ids.shape[1] :]
    return str(loaded.tokenizer.decode(new, skip_special_tokens=True))


# ---------------------------------------------------------------- the contract


def assert_trainer_contract(
    trainer_cls: type[Trainer],
    tmp_path: str | os.PathLike[str],
    arch: str = "t5",
    options: Mapping[str, Any] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    dataset_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train ``trainer_cls`` for a few steps on a tiny model and check the output contract.

    Checks the class (id, description, documented options, unknown keys rejected), then the
    output directory: metadata, JSON-lines log, loss chart, tokenizer, a model or adapter that
    reloads, reproduces the final validation loss and generates, checkpoints cleaned up, and
    no clobbering without ``overwrite``. Returns the run's metadata for further checks.
    """
    check_trainer_class(trainer_cls)
    work = Path(tmp_path)
    model_dir = model_dir or make_tiny_model(work / f"tiny-{arch}", arch)
    dataset_dir = dataset_dir or make_tiny_dataset(work / "data")
    out = work / f"out-{trainer_cls.trainer_id}-{arch}"
    values = {**CONTRACT_OPTIONS, **(options or {})}
    summary = run_training(dataset_dir, trainer_cls, str(model_dir), out, values, quiet=True)
    check_output_dir(out, summary.metadata)
    resolved = build_options(trainer_cls, values)
    reloaded = fixed_batch_loss(out, dataset_dir, resolved.validation_split, resolved)
    assert math.isclose(reloaded, summary.metadata["eval_loss"], rel_tol=1e-4, abs_tol=1e-5), (
        f"reloaded model's validation loss {reloaded} != trained {summary.metadata['eval_loss']}"
    )
    generate_one(out, tiny_pair(0, TASKS[0])[0])
    _assert_raises(OutputExistsError, run_training, dataset_dir, trainer_cls, str(model_dir), out)
    return summary.metadata


def check_trainer_class(trainer_cls: type[Trainer]) -> None:
    """The static half of the contract: registrable, documented, strict options."""
    TrainerRegistry().add(trainer_cls)
    defaults = trainer_cls.Options()
    for name, spec in defaults.__dataclass_fields__.items():
        assert spec.metadata.get("help"), f"option '{name}' of {trainer_cls.__name__} has no help"
    _assert_raises(OptionsError, build_options, trainer_cls, {"no_such_option": 1})


def check_output_dir(out: Path, metadata: dict[str, Any]) -> None:
    """Files every training output has, whatever the backend."""
    from instructkit.modeling import ADAPTER_CONFIG, adapter_base_model, is_adapter_dir

    on_disk = json.loads((out / METADATA_NAME).read_text())
    assert on_disk == metadata, "instructkit-train.json differs from the returned metadata"
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    assert not missing, f"instructkit-train.json lacks {missing}"
    log = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert log and all("step" in r for r in log), "training_log.jsonl has no step records"
    assert any("loss" in r for r in log) and any("eval_loss" in r for r in log)
    assert (out / CHART_NAME).read_bytes()[:4] == b"\x89PNG", "loss.png is not a PNG"
    assert (out / "tokenizer_config.json").is_file(), "the tokenizer was not saved"
    assert not checkpoint_dir_for(out).exists(), "checkpoints were left behind"
    if is_adapter_dir(out):
        base = adapter_base_model(out)
        assert Path(base).is_absolute() and Path(base).is_dir(), f"{ADAPTER_CONFIG}: {base}"
    else:
        assert (out / "config.json").is_file(), "neither a model nor an adapter was saved"


def _assert_raises(error: type[Exception], func: Any, *args: Any) -> None:
    try:
        func(*args)
    except error:
        return
    raise AssertionError(f"{func.__name__}{args!r} did not raise {error.__name__}")

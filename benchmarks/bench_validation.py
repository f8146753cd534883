"""What validation costs a training run: the old schedule against the new default.

Old: the whole validation split every logging_steps (``-o eval_steps=none -o
eval_rows_per_task=none``). New default: the first 64 rows of each task, four times a run
(``eval_steps=0.25``) plus the end. The share is HF's own eval_runtime over the rest of
train_runtime, in one process, so machine load cancels out. SAMSum and
DialogSum (the shared data, never copied into the repository) make a two-task mixture; the model
is the tiny GPT-2 built on the fly, on CPU.

python benchmarks/bench_validation.py --data ../shared/data --steps 100
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa


def rows(path: Path, task: str, prompt_key: str, limit: int | None) -> list[dict]:
    found = []
    with open(path) as handle:
        for i, line in enumerate(handle):
            if limit is not None and i >= limit:
                break
            record = json.loads(line)
            summary = record.get("summary") or record.get("summary1") or ""
            found.append(
                {
                    "prompt": f"Summarize the dialogue.\n{record[prompt_key]}\nSummary:",
                    "completion": f" {summary}",
                    "references": [f" {summary}"],
                    "task": task,
                    "template_id": f"{task}/default",
                    "example_id": str(i),
                    "source_split": path.stem,
                    "source_index": i,
                }
            )
    return found


def build(data: Path, out: Path, train_rows: int) -> Path:
    from instructkit.artifacts.dataset import SCHEMA
    from instructkit.testing import make_tiny_dataset

    train = rows(data / "samsum" / "train.jsonl", "samsum", "dialogue", train_rows // 2)
    train += rows(data / "dialogsum" / "dialogsum.train.jsonl", "dialogsum", "dialogue", None)[
        : train_rows // 2
    ]
    validation = rows(data / "samsum" / "validation.jsonl", "samsum", "dialogue", None)
    validation += rows(data / "dialogsum" / "dialogsum.dev.jsonl", "dialogsum", "dialogue", None)
    splits = {
        "train": pa.Table.from_pylist(train, schema=SCHEMA),
        "validation": pa.Table.from_pylist(validation, schema=SCHEMA),
    }
    print(f"train {len(train)} rows, validation {len(validation)} rows (2 tasks)")
    return make_tiny_dataset(out, splits=splits, tasks=["samsum", "dialogsum"])


def measured_run(dataset: Path, model: Path, out: Path, steps: int, extra: dict) -> dict:
    """Train in this process; read HF's own timings (train_runtime, each eval_runtime) from the
    trainer's history, so the share of validation does not depend on the machine's load."""
    from instructkit.train import hf as hf_training
    from instructkit.train.run import run_training

    history: list[dict] = []
    real = hf_training.training_log

    def keep(log_history: list[dict]) -> list[dict]:
        history.extend(log_history)
        return real(log_history)

    options = {
        "max_steps": steps, "batch_size": 8, "logging_steps": 10, "max_source_length": 256,
        "max_target_length": 64, "truncate_completions": True, **extra,
    }  # fmt: skip
    hf_training.training_log = keep
    try:
        run_training(dataset, "full", str(model), out, options, quiet=True)
    finally:
        hf_training.training_log = real
    total = next(r["train_runtime"] for r in history if "train_runtime" in r)
    # one record per evaluated set: eval_runtime, or eval_<task>_runtime per task
    runtimes = [v for r in history for k, v in r.items() if re.fullmatch(r"eval_(.+_)?runtime", k)]
    calls = sum(1 for r in history if "eval_loss" in r)
    return {"total": total, "validation": sum(runtimes), "evaluations": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--train-rows", type=int, default=2000)
    args = parser.parse_args()
    from instructkit.testing import make_tiny_model, one_torch_thread

    schedules = {
        "old default (whole split every logging_steps)": {
            "eval_steps": None, "eval_rows_per_task": None,
        },
        "new default (64 rows/task, 4x per run + end)": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, one_torch_thread():
        root = Path(tmp)
        dataset = build(args.data, root / "data", args.train_rows)
        model = make_tiny_model(root / "gpt2", "gpt2")
        for i, (name, extra) in enumerate(schedules.items()):
            found = measured_run(dataset, model, root / f"run{i}", args.steps, extra)
            training = found["total"] - found["validation"]
            print(
                f"{name}: {found['evaluations']} evaluation calls, validation "
                f"{found['validation']:.1f} s, training {training:.1f} s: validation costs "
                f"{100 * found['validation'] / training:.0f}% of training",
                flush=True,
            )


if __name__ == "__main__":
    main()

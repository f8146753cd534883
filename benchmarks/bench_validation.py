"""What validation costs a training run: the old schedule against the new default.

Old: the whole validation split every logging_steps (``-o eval_steps=none -o
eval_rows_per_task=none``). New default: the first 64 rows of each task, four times a run
(``eval_steps=0.25``) plus the end. Baseline: one validation row at the end only. SAMSum and
DialogSum (the shared data, never copied into the repository) make a two-task mixture; the model
is the tiny GPT-2 built on the fly, on CPU.

python benchmarks/bench_validation.py --data ../shared/data --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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
    from instructkit.artifact import SCHEMA
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


def timed_run(dataset: Path, model: Path, out: Path, steps: int, extra: list[str]) -> float:
    command = [sys.executable, "-m", "instructkit", "train", str(dataset), "-b", "full"]
    command += ["-m", str(model), "--out", str(out), "-q", "-o", f"max_steps={steps}"]
    command += ["-o", "batch_size=8", "-o", "logging_steps=10", "-o", "max_source_length=256"]
    command += ["-o", "max_target_length=64", "-o", "truncate_completions=true", *extra]
    started = time.monotonic()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--train-rows", type=int, default=2000)
    args = parser.parse_args()
    from instructkit.testing import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = build(args.data, root / "data", args.train_rows)
        model = make_tiny_model(root / "gpt2", "gpt2")
        schedules = {
            "baseline (1 validation row, at the end)": ["-o", "eval_steps=0"]
            + ["-o", "max_eval_samples=1"],
            "old default (whole split every logging_steps)": ["-o", "eval_steps=none"]
            + ["-o", "eval_rows_per_task=none"],
            "new default (64 rows/task, 4x per run + end)": [],
        }
        times = {}
        for name, extra in schedules.items():
            times[name] = timed_run(dataset, model, root / f"run{len(times)}", args.steps, extra)
        base = times[next(iter(times))]
        for name, seconds in times.items():
            print(f"{name}: {seconds:.1f} s ({seconds / base:.2f}x baseline)")


if __name__ == "__main__":
    main()

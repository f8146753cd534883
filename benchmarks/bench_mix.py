"""Benchmark `instructkit mix`: time and peak memory at 10M rows, and decontamination speed.

    .venv/bin/python benchmarks/bench_mix.py                 # 10M rows + real-data decontamination
    .venv/bin/python benchmarks/bench_mix.py --total 1000000 --skip-real

Part 1 mixes three synthetic rendered sources into a train split of --total rows (and a tenth
of it, to show memory does not grow with the total). Each run is a child process, so its peak
RSS is its own. Beside it, in the same run, a plain pyarrow copy writes the same number of rows
and bytes from the same memory-mapped sources: the floor any mixer has to pay.
Part 2 times dedup + 13-gram decontamination of SAMSum + DialogSum train against their
validation/test splits (../shared/data or INSTRUCTKIT_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCES = {"alpha": 300_000, "beta": 150_000, "gamma": 50_000}
WEIGHTS = {"alpha": 5, "beta": 3, "gamma": 2}


def build_sources(root: Path) -> list[Path]:
    """Three rendered-like datasets with ~300-byte rows (written once, reused)."""
    import pyarrow as pa

    from instructkit.artifacts import dataset as artifact
    from instructkit.artifacts.manifest import write_manifest

    paths = []
    for task, n in SOURCES.items():
        out = root / task
        paths.append(out)
        if out.exists():
            continue
        with artifact.atomic_output_dir(out) as tmp:
            writer = artifact.SplitWriter(tmp, "train")
            for start in range(0, n, 50_000):
                ids = range(start, min(n, start + 50_000))
                writer.write(
                    pa.table(
                        {
                            "prompt": [
                                f"Summarize the dialogue {task} {i}:\n" + "A: hi\n" * 30
                                for i in ids
                            ],
                            "completion": [f"{task} summary number {i}." for i in ids],
                            "references": [[f"{task} summary number {i}."] for i in ids],
                            "task": [task] * len(ids),
                            "template_id": ["t0"] * len(ids),
                            "example_id": [f"{task}-{i}" for i in ids],
                            "source_split": ["train"] * len(ids),
                            "source_index": list(ids),
                        },
                        schema=artifact.SCHEMA,
                    )
                )
            writer.close()
            artifact.write_dataset_dict(tmp, ["train"])
            write_manifest(tmp, {"kind": "render", "task": task})
    return paths


def run_child(code: str, *args: str) -> dict:
    """Run a snippet in a fresh interpreter (so its peak RSS is its own); return its JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


MIX_CODE = """
import json, resource, sys, time
from instructkit.mix.run import mix_datasets
from instructkit.mix.spec import load_mix_spec
paths, total, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
spec = load_mix_spec({"tasks": paths, "total": total, "decontaminate": "off"})
start = time.perf_counter()
result = mix_datasets(spec, out, overwrite=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - start, "rows": result.splits["train"],
                  "max_prefix_error": result.max_prefix_deviation, "peak_rss_mb": peak}))
"""

COPY_CODE = """
import json, resource, sys, time
import pyarrow as pa
from instructkit.artifacts import dataset as artifact
paths, total, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
tables = [artifact.open_split(p, "train") for p in paths]
written = 0
with pa.ipc.new_stream(out, tables[0].schema) as writer:
    while written < total:
        for table in tables:
            for batch in table.to_batches():
                batch = batch.slice(0, total - written)
                writer.write_batch(batch)
                written += batch.num_rows
                if written >= total:
                    break
            if written >= total:
                break
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - start, "rows": written, "peak_rss_mb": peak}))
"""


def bench_mix(root: Path, total: int) -> None:
    paths = build_sources(root)
    tasks = [{"path": str(p), "weight": WEIGHTS[p.name]} for p in paths]
    for rows in (total // 10, total):
        copy_file = root / "copy.arrow"
        mixed = run_child(MIX_CODE, json.dumps(tasks), str(rows), str(root / "mix"))
        copied = run_child(
            COPY_CODE, json.dumps([str(p) for p in paths]), str(rows), str(copy_file)
        )
        mix_bytes = sum(f.stat().st_size for f in (root / "mix" / "train").glob("*.arrow"))
        print(
            f"mix {rows:>11,} rows: {mixed['seconds']:6.1f} s, "
            f"peak RSS {mixed['peak_rss_mb']:6.0f} MB, "
            f"{mix_bytes / 1e9:.2f} GB, max prefix error {mixed['max_prefix_error']:.2f} | "
            f"pyarrow copy {copy_file.stat().st_size / 1e9:.2f} GB: "
            f"{copied['seconds']:5.1f} s "
            f"({copied['peak_rss_mb']:.0f} MB) "
            f"-> mix/copy {mixed['seconds'] / copied['seconds']:.2f}x"
        )
        shutil.rmtree(root / "mix")
        copy_file.unlink()


def shared_data_dir() -> Path:
    configured = os.environ.get("INSTRUCTKIT_SHARED_DATA")
    return (
        Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    )


def bench_decontamination() -> None:
    import pyarrow as pa

    from instructkit.mix.hygiene import duplicate_masks, find_contamination, row_text, word_index

    data = shared_data_dir()
    files = {
        "samsum": (
            "samsum/train.jsonl",
            {"validation": "samsum/validation.jsonl", "test": "samsum/test.jsonl"},
        ),
        "dialogsum": (
            "dialogsum/dialogsum.train.jsonl",
            {
                "validation": "dialogsum/dialogsum.dev.jsonl",
                "test": "dialogsum/dialogsum.test.jsonl",
            },
        ),
    }
    if not all((data / train).is_file() for train, _ in files.values()):
        print(f"real data not found at {data}: skipping decontamination benchmark")
        return

    def load(path: str) -> pa.Table:
        rows = [json.loads(line) for line in (data / path).read_text().splitlines()]
        return pa.table(
            {
                "prompt": [f"Summarize this dialogue.\n{r['dialogue']}" for r in rows],
                "completion": [r.get("summary") or r.get("summary1") for r in rows],
            }
        )

    train = {task: load(t) for task, (t, _) in files.items()}
    evaluation = {
        f"{task}/{s}": load(p) for task, (_, evals) in files.items() for s, p in evals.items()
    }
    start = time.perf_counter()
    duplicates = duplicate_masks(list(train.values()))
    dedup_seconds = time.perf_counter() - start
    train_words = [(k, word_index(row_text(v))) for k, v in train.items()]
    eval_words = [(k, word_index(row_text(v))) for k, v in evaluation.items()]
    report = find_contamination(train_words, eval_words, n=13)
    seconds = time.perf_counter() - start
    rows = sum(t.num_rows for t in train.values())
    eval_rows = sum(t.num_rows for t in evaluation.values())
    print(
        f"dedup + 13-gram decontamination of {rows:,} train rows against {eval_rows:,} "
        f"validation/test rows: {seconds:.2f} s (dedup {dedup_seconds:.2f} s); "
        f"duplicates {[int(d.sum()) for d in duplicates]}, "
        f"contaminated train rows {[int(m.sum()) for m in report.masks]} ({', '.join(train)})"
    )
    for pair in report.pairs:
        print(f"  {pair['train_task']} train x {pair['eval_set']}: {pair['train_rows']} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=10_000_000, help="train rows to mix")
    parser.add_argument("--workdir", type=Path, help="where sources and outputs go (default: tmp)")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-data part")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-mix-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"sources: {SOURCES} (weights {WEIGHTS}); workdir {root}; {os.cpu_count()} CPUs")
    bench_mix(root, args.total)
    if not args.skip_real:
        bench_decontamination()


if __name__ == "__main__":
    main()

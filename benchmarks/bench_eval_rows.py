"""`evaluate --max-rows N` on a large split: read only the scored rows.

Writes a split of --rows rows (two interleaved tasks, dialogue-length prompts), then in fresh
processes measures wall time and peak RSS of selecting --max-rows rows per task:

- baseline: what evaluate did before, decode the whole split (``to_pylist``) then keep N;
- instructkit: ``load_eval_rows`` (task column, then ``take`` of the kept rows only).

Both must select the same rows; the script checks it. Peak RSS is the child's VmHWM (Linux).

.venv/bin/python benchmarks/bench_eval_rows.py --rows 300000 --max-rows 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from instructkit.evaluate import run as evaluate
from instructkit.artifacts.dataset import open_split
mode, path, max_rows, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seed = None if seed == "none" else int(seed)
started = time.perf_counter()
if mode == "baseline":
    table = open_split(path, "test")
    rows = [
        {"task": r["task"], "template_id": r["template_id"], "example_id": r["example_id"],
         "prompt": r["prompt"], "references": list(r["references"])}
        for r in table.to_pylist()
    ]
    rows = evaluate.limit_rows(rows, max_rows, seed)
else:
    rows, _ = evaluate.load_eval_rows([path], "test", max_rows, seed)
seconds = time.perf_counter() - started
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
peak_mb = int(status) / 1024
ids = [r["example_id"] for r in rows]
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "ids": ids}))
"""


def write_split(path: Path, rows: int) -> None:
    import pyarrow as pa

    from instructkit.artifacts import dataset as artifact
    from instructkit.artifacts.manifest import write_manifest

    line = "#Person{}#: line {} of a long enough dialogue."
    filler = " ".join(line.format(i % 2 + 1, i) for i in range(20))

    def batches():
        for start in range(0, rows, 50_000):
            count = min(50_000, rows - start)
            idx = range(start, start + count)
            yield pa.Table.from_pydict(
                {
                    "prompt": [f"Summarize: {i} {filler}" for i in idx],
                    "completion": [f"summary {i}" for i in idx],
                    "references": [[f"summary {i}"] for i in idx],
                    "task": ["a" if i % 2 else "b" for i in idx],
                    "template_id": ["t"] * count,
                    "example_id": [str(i) for i in idx],
                    "source_split": ["test"] * count,
                    "source_index": list(idx),
                },
                schema=artifact.SCHEMA,
            )

    path.mkdir(parents=True)
    artifact.write_split(path, "test", batches())
    artifact.write_dataset_dict(path, ["test"])
    write_manifest(path, {"tasks": {"a": {}, "b": {}}})


def measure(mode: str, path: Path, max_rows: int, seed: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(max_rows), seed],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--max-rows", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big"
        started = time.perf_counter()
        write_split(path, args.rows)
        size = sum(f.stat().st_size for f in path.rglob("*.arrow")) / 1e6
        print(f"split: {args.rows:,} rows, {size:.0f} MB ({time.perf_counter() - started:.1f} s)")
        for seed in ("none", "0"):
            base = measure("baseline", path, args.max_rows, seed)
            lazy = measure("instructkit", path, args.max_rows, seed)
            assert base["ids"] == lazy["ids"], "the rows selected differ"
            label = "first N" if seed == "none" else f"--sample-seed {seed}"
            print(
                f"--max-rows {args.max_rows} ({label}): baseline {base['seconds']:.2f} s, "
                f"peak RSS {base['peak_mb']:.0f} MB; instructkit {lazy['seconds']:.2f} s, "
                f"peak RSS {lazy['peak_mb']:.0f} MB; same {len(lazy['ids'])} rows"
            )


if __name__ == "__main__":
    main()

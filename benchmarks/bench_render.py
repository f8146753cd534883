"""Benchmark `instructkit render` against per-row Jinja, and check that memory stays flat.

    .venv/bin/python benchmarks/bench_render.py                 # DialogSum train + 100k + 1M
    .venv/bin/python benchmarks/bench_render.py --sizes 100000  # quicker

What it prints, in one run:
1. DialogSum train (12,460 rows, the 9 templates of the dialogsum pack), `balanced` and `all`:
   instructkit rows/s (end to end: read jsonl, render, write shards) vs a per-row Jinja
   baseline that renders the same rows with the same pre-compiled templates inside
   `datasets.Dataset.map(batched=True)` (no file reading or writing counted), and the ratio.
2. Replicas of DialogSum train as parquet (unique fnames) up to 1M rows, `balanced`, each in
   a fresh process: rows/s and peak RSS, and the 1M/100k peak ratio (required <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dialogsum"


def baseline_rows_per_second(data_dir: Path, mode: str) -> tuple[float, int]:
    """Per-row Jinja over the same rows, the way a careful user writes it with datasets.map."""
    import datasets

    from instructkit.render.formats import compile_pack
    from instructkit.render.run import RenderOptions, plan_splits, resolve

    opts = RenderOptions(data_dir=str(data_dir), splits=["train"], assignment=mode)
    raw, pack = resolve("dialogsum", opts)
    templates = compile_pack(pack)
    plan = plan_splits(raw, pack, templates, opts)[0]
    table = raw.splits["train"].table
    dataset = datasets.Dataset(table.select(["dialogue", "summary", "topic"]))
    datasets.disable_progress_bars()
    assignment = plan.assignment

    def render_rows(batch, indices):
        prompts, completions = [], []
        for offset, index in enumerate(indices):
            row = {k: batch[k][offset] for k in batch}
            chosen = templates if assignment is None else [templates[assignment[index]]]
            for template in chosen:
                prompt, completion = template.render_row(row)
                prompts.append(prompt)
                completions.append(completion)
        return {"prompt": prompts, "completion": completions}

    started = time.perf_counter()
    out = dataset.map(
        render_rows, batched=True, with_indices=True, remove_columns=dataset.column_names,
        keep_in_memory=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return out.num_rows / seconds, out.num_rows


def render_only_rows_per_second(data_dir: Path, mode: str) -> float:
    """instructkit's batch renderer over the same in-memory rows (no reading or writing)."""
    from instructkit.render.batch import BatchRenderer
    from instructkit.render.formats import compile_pack
    from instructkit.render.run import RenderOptions, iter_jobs, plan_splits, resolve

    opts = RenderOptions(data_dir=str(data_dir), splits=["train"], assignment=mode)
    raw, pack = resolve("dialogsum", opts)
    plan = plan_splits(raw, pack, compile_pack(pack), opts)[0]
    renderer = BatchRenderer(pack.task, plan.templates, plan.references, pack.trim_field)
    jobs = list(iter_jobs(plan, plan.templates, opts))
    started = time.perf_counter()
    rows = sum(renderer(job).table.num_rows for job in jobs)
    return rows / (time.perf_counter() - started)


def instructkit_run(source: str, data: Path, out: Path, mode: str, num_proc: int) -> dict:
    """One render in a fresh process; returns rows, seconds and the child's peak RSS."""
    code = (
        "import json, time; from instructkit.render.run import render_dataset;"
        # Plugin loading is start-up cost, paid once per process, not rendering throughput.
        "from instructkit.plugins import load_plugins; load_plugins();"
        "import pyarrow.json, pyarrow.parquet;"
        "t = time.perf_counter();"
        f"r = render_dataset({source!r}, {str(out)!r}, templates='dialogsum',"
        f" data_dir={str(data)!r} if {source!r} == 'dialogsum' else None,"
        f" assignment={mode!r}, num_proc={num_proc},"
        " overwrite=True, splits=['train'], key_column=None if "
        f"{source!r} == 'dialogsum' else 'fname');"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
        "s = time.perf_counter() - t;"
        "peak = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
        "print(json.dumps({'rows': r.num_rows, 'seconds': s, 'peak_rss_mb': peak / 1024}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_replica(train_jsonl: Path, rows: int, path: Path) -> None:
    """DialogSum train repeated to ``rows`` rows, fnames made unique, as parquet row groups."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    base = pj.read_json(str(train_jsonl))
    with pq.ParquetWriter(str(path), base.schema) as writer:
        written, copy = 0, 0
        while written < rows:
            take = min(base.num_rows, rows - written)
            chunk = base.slice(0, take)
            names = [f"{name}#{copy}" for name in chunk.column("fname").to_pylist()]
            chunk = chunk.set_column(0, "fname", pa.array(names))
            writer.write_table(chunk, row_group_size=take)
            written += take
            copy += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DialogSum folder")
    parser.add_argument("--sizes", default="100000,1000000", help="replica sizes (rows)")
    parser.add_argument("--num-proc", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-render-"))
    print(f"# DialogSum train, 9 templates, num_proc={args.num_proc}")
    for mode in ("balanced", "all"):
        base_rps, rows = baseline_rows_per_second(args.data, mode)
        render_rps = render_only_rows_per_second(args.data, mode)
        instructkit_run("dialogsum", args.data, work / mode, mode, args.num_proc)  # warm cache
        ours = instructkit_run("dialogsum", args.data, work / mode, mode, args.num_proc)
        rps = ours["rows"] / ours["seconds"]
        print(
            f"{mode:<9} rows={ours['rows']:>7}  per-row Jinja baseline {base_rps:>8,.0f} rows/s | "
            f"instructkit render step {render_rps:>9,.0f} rows/s ({render_rps / base_rps:4.1f}x) | "
            f"end to end incl. read+write+hashes {rps:>8,.0f} rows/s ({rps / base_rps:4.1f}x), "
            f"peak RSS {ours['peak_rss_mb']:.0f} MB"
        )
    peaks = {}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        replica = work / f"replica-{size}.parquet"
        write_replica(args.data / "dialogsum.train.jsonl", size, replica)
        ours = instructkit_run(
            str(replica), args.data, work / f"r{size}", "balanced", args.num_proc
        )
        peaks[size] = ours["peak_rss_mb"]
        rps = ours["rows"] / ours["seconds"]
        print(
            f"replica   rows={ours['rows']:>8}  instructkit end to end {rps:>10,.0f} rows/s"
            f"  peak RSS {ours['peak_rss_mb']:.0f} MB"
        )
        replica.unlink()
        subprocess.run(["rm", "-rf", str(work / f"r{size}")], check=True)
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        print(f"peak RSS {large:,} rows / {small:,} rows = {peaks[large] / peaks[small]:.2f}")
    subprocess.run(["rm", "-rf", str(work)], check=True)


if __name__ == "__main__":
    main()

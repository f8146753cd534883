"""Whole-process `instructkit mix` at 3, 50 and 500 tasks with the same total rows (issue 17).

    python benchmarks/bench_mix_tasks.py --quick                  # 200k rows, 3/50/500 tasks
    python benchmarks/bench_mix_tasks.py --total 1200000          # the issue's 1.2M rows

One DialogSum train render (12,460 rows, `instructkit render` through the CLI) is hard-linked
into T task folders (no extra disk), mixed with equal weights into --total train rows by
`python -m instructkit mix --task DIR:name=tI ... --no-dedup --decontaminate off` in a fresh
process (dedup off: the copies are identical by construction; `--profile` prints mix's phase
table). The rows written are the same for every T, so the time above the 3-task run is what
more tasks cost: the interleaving
schedule and the per-task overheads. Also timed: `mix --dry-run` (the plan without writing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SHARED_DATA,
    fmt,
    instructkit_cmd,
    library_versions,
    machine_info,
    median,
    need_data,
    print_table,
    run_child,
    write_json,
)


def link_tree(source: Path, target: Path) -> None:
    """Copy a rendered dataset folder with hard links for its files (manifest copied)."""
    for path in source.rglob("*"):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".arrow":
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ik-bench-mt")
    parser.add_argument("--tasks", default="3,50,500")
    parser.add_argument("--total", type=int, default=1_200_000, help="train rows mixed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="--total 200000 --repeats 1")
    parser.add_argument("--profile", action="store_true", help="pass mix --profile, print phases")
    args = parser.parse_args()
    if args.quick:
        args.total, args.repeats = min(args.total, 200_000), 1
    if not need_data(args.data / "dialogsum", "DialogSum"):
        return 0
    started = time.time()
    work = args.work
    rendered = work / "render-dialogsum"
    if not (rendered / "instructkit.json").exists():
        run_child(
            instructkit_cmd(
                "render",
                "dialogsum",
                "--data-dir",
                str(args.data / "dialogsum"),
                "--splits",
                "train",
                "--out",
                str(rendered),
                "--overwrite",
                "-q",
            )  # fmt: skip
        ).check()
    counts = [int(t) for t in args.tasks.split(",") if t]
    print(f"# mix {args.total:,} train rows from T copies of DialogSum train (12,460 rows each)")
    results: list[dict[str, Any]] = []
    for count in counts:
        tasks = work / f"tasks-{count}"
        if not (tasks / f"t{count - 1}" / "instructkit.json").exists():
            shutil.rmtree(tasks, ignore_errors=True)
            for index in range(count):
                link_tree(rendered, tasks / f"t{index}")
        cli = ["mix"]
        for index in range(count):
            cli += ["--task", f"{tasks / f't{index}'}:name=t{index},weight=1"]
        cli += ["--total", str(args.total), "--no-dedup", "--decontaminate", "off", "-q"]
        dry = run_child(instructkit_cmd(*cli, "--dry-run")).check()
        runs = []
        extra = ["--profile"] if args.profile else []
        for _ in range(args.repeats):
            out = work / f"mix-{count}"
            runs.append(
                run_child(instructkit_cmd(*cli, "--out", str(out), "--overwrite", *extra)).check()
            )
            shutil.rmtree(out, ignore_errors=True)
        if args.profile:
            print(f"  mix phases, {count} tasks (last run):")
            for line in runs[-1].stderr.strip().splitlines()[-24:]:
                print(f"    {line}")
        record = {
            "tasks": count,
            "wall_s": median([r.seconds for r in runs]),
            "peak_rss_mb": max(r.peak_rss_mb for r in runs),
            "dry_run_s": dry.seconds,
            "dry_run_peak_rss_mb": dry.peak_rss_mb,
            "runs_s": [r.seconds for r in runs],
        }
        results.append(record)
        print(
            f"  tasks={count:>4}  mix {record['wall_s']:6.1f} s  dry-run {dry.seconds:5.1f} s  "
            f"peak RSS {record['peak_rss_mb']:,.0f} MB",
            flush=True,
        )
    base = results[0]["wall_s"] if results else None
    print()
    print_table(
        ["tasks", "rows", "mix wall (s)", "vs first", "dry-run (s)", "peak RSS MB"],
        [
            [
                str(r["tasks"]), f"{args.total:,}", fmt(r["wall_s"], ".1f"),
                f"{r['wall_s'] / base:.2f}x" if base else "-", fmt(r["dry_run_s"], ".1f"),
                fmt(r["peak_rss_mb"]),
            ]
            for r in results
        ],
    )  # fmt: skip
    write_json(
        args.json,
        {
            "benchmark": "bench_mix_tasks",
            "args": vars(args),
            "machine": machine_info(),
            "versions": library_versions(("datasets", "pyarrow", "numpy")),
            "results": results,
            "seconds": time.time() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

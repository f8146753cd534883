"""Many small render tasks: one `instructkit render-spec` process against one process per task.

    python benchmarks/bench_render_tasks.py                   # 50 tasks x 250 dialogues
    python benchmarks/bench_render_tasks.py --tasks 50,500 --rows 100

A FLAN-style build renders many small tasks (issue 17). DialogSum train is cut into --tasks
slices of --rows dialogues (each a folder in the preset's layout); every slice is rendered
through the dialogsum pack (`--assignment all`, train only) three ways, each in fresh
processes, from spawn to exit:

- one task: the same total rows as one `instructkit render` (the floor: no per-task cost);
- separate: one `instructkit render` per task, one after another (skipped above
  --max-separate tasks: then the per-task start-up measured at the smaller count is used);
- spec: one `instructkit render-spec SPEC.yaml` listing every task.

The outputs of `separate` and `spec` are compared file by file (they must be identical).
"""

from __future__ import annotations

import argparse
import filecmp
import json
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
    need_data,
    print_table,
    run_child,
    write_json,
)

RENDER = ["--splits", "train", "--assignment", "all", "-q"]


def write_slices(source: Path, work: Path, tasks: int, rows: int) -> list[Path]:
    """``tasks`` folders of ``rows`` DialogSum train dialogues each (wrapping around)."""
    lines = [
        line
        for line in (source / "dialogsum.train.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    folders = []
    for index in range(tasks):
        folder = work / f"slice-{index:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        chosen = []
        for k in range(rows):
            row = json.loads(lines[(index * rows + k) % len(lines)])
            row["fname"] = f"{row['fname']}#{index}.{k}"
            chosen.append(json.dumps(row, ensure_ascii=False))
        (folder / "dialogsum.train.jsonl").write_text("\n".join(chosen) + "\n", encoding="utf-8")
        folders.append(folder)
    whole = work / "whole"
    whole.mkdir(parents=True, exist_ok=True)
    with open(whole / "dialogsum.train.jsonl", "w", encoding="utf-8") as out:
        for folder in folders:
            out.write((folder / "dialogsum.train.jsonl").read_text(encoding="utf-8"))
    return folders


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ik-bench-rt")
    parser.add_argument("--tasks", default="50", help="task counts, e.g. 50,500")
    parser.add_argument("--rows", type=int, default=250, help="dialogues per task")
    parser.add_argument("--max-separate", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    source = args.data / "dialogsum"
    if not need_data(source, "DialogSum"):
        return 0
    started = time.time()
    results: list[dict[str, Any]] = []
    table = []
    per_task_startup = None
    for count in [int(c) for c in args.tasks.split(",") if c]:
        work = args.work / f"t{count}-r{args.rows}"
        shutil.rmtree(work, ignore_errors=True)
        folders = write_slices(source, work / "data", count, args.rows)
        print(f"# {count} tasks x {args.rows} dialogues x 9 templates", flush=True)
        one = run_child(
            instructkit_cmd("render", "dialogsum", "--data-dir", str(work / "data" / "whole"),
                            *RENDER, "--out", str(work / "one"))
        ).check()  # fmt: skip
        spec = {"defaults": {"splits": ["train"], "assignment": "all"}, "tasks": []}
        for folder in folders:
            out = work / "spec" / folder.name
            spec["tasks"].append({"source": "dialogsum", "data-dir": str(folder), "out": str(out)})
        spec_file = work / "tasks.yaml"
        spec_file.write_text(json.dumps(spec))  # JSON is YAML
        one_proc = run_child(instructkit_cmd("render-spec", str(spec_file), "-q")).check()
        record: dict[str, Any] = {
            "tasks": count, "rows_per_task": args.rows, "one_task_s": one.seconds,
            "spec_s": one_proc.seconds, "spec_peak_rss_mb": one_proc.peak_rss_mb,
        }  # fmt: skip
        separate_s = None
        if count <= args.max_separate:
            t0 = time.perf_counter()
            for folder in folders:
                run_child(
                    instructkit_cmd("render", "dialogsum", "--data-dir", str(folder), *RENDER,
                                    "--out", str(work / "separate" / folder.name))
                ).check()  # fmt: skip
            separate_s = time.perf_counter() - t0
            record["separate_s"] = separate_s
            record["identical"] = same_tree(work / "separate", work / "spec")
            per_task_startup = (separate_s - one.seconds) / count
            record["per_task_cost_separate_s"] = per_task_startup
        elif per_task_startup is not None:
            record["separate_s_estimated"] = one.seconds + per_task_startup * count
        record["per_task_cost_spec_s"] = (one_proc.seconds - one.seconds) / count
        results.append(record)
        sep = separate_s if separate_s is not None else record.get("separate_s_estimated")
        table.append(
            [
                str(count), fmt(one.seconds, ".1f"),
                fmt(sep, ".1f") + ("" if separate_s is not None else " (est.)") if sep else "-",
                fmt(one_proc.seconds, ".1f"),
                f"{sep / one_proc.seconds:.1f}x" if sep else "-",
                f"{one_proc.seconds / one.seconds:.2f}x",
                fmt(record["per_task_cost_spec_s"], ".3f"),
                str(record.get("identical", "-")),
            ]
        )  # fmt: skip
        print(f"  {record}", flush=True)
    print()
    print_table(
        ["tasks", "one task (s)", "separate (s)", "render-spec (s)", "separate / spec",
         "spec / one task", "spec cost per task (s)", "identical"],
        table,
    )  # fmt: skip
    write_json(
        args.json,
        {
            "benchmark": "bench_render_tasks",
            "args": {k: str(v) for k, v in vars(args).items()},
            "machine": machine_info(),
            "versions": library_versions(("pyarrow", "jinja2")),
            "results": results,
            "seconds": time.time() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

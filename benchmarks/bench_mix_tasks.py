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

    python benchmarks/bench_mix_tasks.py --baseline /tmp/old   # also run an older checkout

`--baseline DIR` (a folder holding an older `instructkit` package, e.g. `git archive main
instructkit | tar -x -C DIR`) runs the same mix with that code in the same session, right
before each measured run, and compares every output file's bytes.

    python benchmarks/bench_mix_tasks.py --tasks "" --token-rows 100000,1000000 \
        --tokenizer ~/.cache/instructkit/models/smollm2-135m-instruct-*

Token units: two tasks of N/2 rows each (the DialogSum shard hard-linked N/24,920 times into
one split), mixed with `--unit tokens --tokenizer DIR` (every row written): wall and peak RSS
at each N, and the "plan (tokens, quotas, draws)" phase, where the rows are tokenized.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPO,
    SHARED_DATA,
    child_env,
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


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def baseline_env(code: Path) -> dict[str, str]:
    """The children's environment with ``code`` in place of this checkout on PYTHONPATH."""
    env = child_env()
    paths = env["PYTHONPATH"].split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(str(code) if p == str(REPO) else p for p in paths)
    return env


def differing(one: dict[str, str], two: dict[str, str]) -> str:
    names = sorted(n for n in one.keys() | two.keys() if one.get(n) != two.get(n))
    return "identical" if not names else "differ: " + ", ".join(names)


def phase_seconds(stderr: str, name: str) -> float | None:
    """The wall seconds of one phase in `--profile`'s table (None if absent)."""
    for line in stderr.splitlines():
        if line.strip().startswith(name):
            return float(line[40:].split()[0])  # labels are padded to 40 columns
    return None


def token_task(rendered: Path, target: Path, copies: int) -> None:
    """A train split of ``copies`` hard links to the rendered shard (no extra disk)."""
    if (target / "instructkit.json").exists():
        return
    shard = next((rendered / "train").glob("data-*.arrow"))
    split = target / "train"
    split.mkdir(parents=True, exist_ok=True)
    names = [f"data-{i:05d}-of-{copies:05d}.arrow" for i in range(copies)]
    for name in names:
        os.link(shard, split / name)
    state = json.loads((rendered / "train" / "state.json").read_text())
    state["_data_files"] = [{"filename": n} for n in names]
    (split / "state.json").write_text(json.dumps(state))
    shutil.copy2(rendered / "train" / "dataset_info.json", split / "dataset_info.json")
    (target / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    shutil.copy2(rendered / "instructkit.json", target / "instructkit.json")


def token_runs(args: argparse.Namespace, rendered: Path) -> list[dict[str, Any]]:
    """`mix --unit tokens` at each --token-rows size: wall, peak RSS, tokenizing phase."""
    results = []
    rows_per_copy = 12_460
    for rows in [int(r) for r in args.token_rows.split(",") if r]:
        copies = max(1, round(rows / 2 / rows_per_copy))
        cli = ["mix", "--unit", "tokens", "--tokenizer", str(args.tokenizer)]
        for index in range(2):
            task = args.work / f"tokens-{copies}" / f"t{index}"
            token_task(rendered, task, copies)
            cli += ["--task", f"{task}:name=t{index},weight=1"]
        cli += ["--no-dedup", "--decontaminate", "off", "-q", "--profile"]
        out = args.work / "mix-tokens"
        command = instructkit_cmd(*cli, "--out", str(out), "--overwrite")
        runs = {"current": run_child(command).check()}
        shutil.rmtree(out, ignore_errors=True)
        if args.baseline is not None and rows <= args.token_baseline_rows:
            env = baseline_env(args.baseline)
            runs["baseline"] = run_child(command, env=env, cwd=args.work).check()
            shutil.rmtree(out, ignore_errors=True)
        for code, run in runs.items():
            record = {
                "code": code,
                "rows": 2 * copies * rows_per_copy,
                "wall_s": run.seconds,
                "peak_rss_mb": run.peak_rss_mb,
                "tokenize_s": phase_seconds(run.stderr, "plan (tokens, quotas, draws)"),
            }
            results.append(record)
            print(
                f"  tokens ({code}): {record['rows']:>9,} rows  mix {run.seconds:6.1f} s  "
                f"tokenize+plan {fmt(record['tokenize_s'], '.1f')} s  "
                f"peak RSS {run.peak_rss_mb:,.0f} MB",
                flush=True,
            )
    return results


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
    parser.add_argument("--baseline", type=Path, help="folder holding an older instructkit")
    parser.add_argument("--token-rows", default="", help="e.g. 100000,1000000 (token units)")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for --token-rows")
    parser.add_argument(
        "--token-baseline-rows", type=int, default=100_000, help="largest --baseline token run"
    )
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
        runs, base_runs, same = [], [], "-"
        extra = ["--profile"] if args.profile else []
        for _ in range(args.repeats):
            out = work / f"mix-{count}"
            command = instructkit_cmd(*cli, "--out", str(out), "--overwrite", *extra)
            if args.baseline is not None:
                # cwd: `python -m` puts the working directory first on sys.path
                baseline = run_child(command, env=baseline_env(args.baseline), cwd=args.work)
                base_runs.append(baseline.check())
                before = tree_hashes(out)
                shutil.rmtree(out, ignore_errors=True)
            runs.append(run_child(command).check())
            if args.baseline is not None:
                same = differing(before, tree_hashes(out))
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
            "baseline_wall_s": median([r.seconds for r in base_runs]) if base_runs else None,
            "baseline_peak_rss_mb": max((r.peak_rss_mb for r in base_runs), default=None),
            "vs_baseline_files": same,
        }
        results.append(record)
        print(
            f"  tasks={count:>4}  mix {record['wall_s']:6.1f} s  dry-run {dry.seconds:5.1f} s  "
            f"peak RSS {record['peak_rss_mb']:,.0f} MB",
            flush=True,
        )
        if base_runs:
            print(
                f"  tasks={count:>4}  baseline {record['baseline_wall_s']:6.1f} s  peak RSS "
                f"{record['baseline_peak_rss_mb']:,.0f} MB  output vs baseline: {same}",
                flush=True,
            )
    base = results[0]["wall_s"] if results else None
    print()
    print_table(
        ["tasks", "rows", "mix wall (s)", "vs first", "dry-run (s)", "peak RSS MB",
         "baseline wall (s)", "baseline RSS MB", "output vs baseline"],
        [
            [
                str(r["tasks"]), f"{args.total:,}", fmt(r["wall_s"], ".1f"),
                f"{r['wall_s'] / base:.2f}x" if base else "-", fmt(r["dry_run_s"], ".1f"),
                fmt(r["peak_rss_mb"]), fmt(r["baseline_wall_s"], ".1f"),
                fmt(r["baseline_peak_rss_mb"]), r["vs_baseline_files"],
            ]
            for r in results
        ],
    )  # fmt: skip
    tokens = token_runs(args, rendered) if args.token_rows else []
    write_json(
        args.json,
        {
            "benchmark": "bench_mix_tasks",
            "args": vars(args),
            "machine": machine_info(),
            "versions": library_versions(("datasets", "pyarrow", "numpy")),
            "results": results,
            "tokens": tokens,
            "seconds": time.time() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

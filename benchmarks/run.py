"""Run every benchmark in turn (make bench); each prints its figures and ratios to a baseline.

.venv/bin/python benchmarks/run.py           # full sizes (several minutes)
.venv/bin/python benchmarks/run.py --quick   # smaller sizes, same figures
.venv/bin/python benchmarks/run.py --only train,generate,render_process --json-dir build/bench

The whole-process benchmarks (bench_train, bench_generate, bench_render_process, bench_mix_tasks,
bench_render_tasks) drive the CLI in fresh processes; --json-dir makes each of them write
NAME.json there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = {
    "bench_render.py": [],
    "bench_mix.py": [],
    "bench_score.py": [],
    "bench_render_process.py": [],
    "bench_generate.py": [],
    "bench_train.py": [],
    "bench_mix_tasks.py": [],
    "bench_render_tasks.py": ["--tasks", "50,500", "--rows", "100"],
    "bench_eval_rows.py": [],
    "bench_generate_cache.py": [],
}
QUICK = {
    "bench_render.py": ["--sizes", "20000,200000"],
    "bench_mix.py": ["--total", "1000000"],
    "bench_score.py": ["--bootstrap", "200"],
    "bench_render_process.py": ["--quick"],
    "bench_generate.py": ["--quick"],
    "bench_train.py": ["--quick"],
    "bench_mix_tasks.py": ["--quick"],
    "bench_render_tasks.py": ["--tasks", "20", "--rows", "100"],
    "bench_eval_rows.py": ["--rows", "100000"],
    "bench_generate_cache.py": ["--rows", "48"],
}
WRITES_JSON = {
    "bench_render_process.py", "bench_generate.py", "bench_train.py", "bench_mix_tasks.py",
    "bench_render_tasks.py",
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", default="", help="comma-separated names, e.g. train,render")
    parser.add_argument("--json-dir", type=Path, help="where the whole-process ones write JSON")
    args = parser.parse_args()
    only = {f"bench_{name.strip()}.py" for name in args.only.split(",") if name.strip()}
    failed = []
    for script, extra in (QUICK if args.quick else FULL).items():
        if only and script not in only:
            continue
        if args.json_dir and script in WRITES_JSON:
            extra = [*extra, "--json", str(args.json_dir / script.replace(".py", ".json"))]
        print(f"\n=== {script} {' '.join(extra)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *extra]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

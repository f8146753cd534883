"""Run every benchmark in turn (make bench); each prints its figures and ratios to a baseline.

.venv/bin/python benchmarks/run.py           # full sizes (several minutes)
.venv/bin/python benchmarks/run.py --quick   # smaller sizes, same figures
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
    "bench_eval_rows.py": [],
    "bench_generate.py": [],
}
QUICK = {
    "bench_render.py": ["--sizes", "20000,200000"],
    "bench_mix.py": ["--total", "1000000"],
    "bench_score.py": ["--bootstrap", "200"],
    "bench_eval_rows.py": ["--rows", "100000"],
    "bench_generate.py": ["--rows", "48"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    failed = []
    for script, extra in (QUICK if args.quick else FULL).items():
        print(f"\n=== {script} {' '.join(extra)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *extra]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Our dataset directories open with the oldest ``datasets`` pyproject.toml claims (``make test``).

Renders two tasks from examples/data with the current code, mixes them, then loads both
directories with ``datasets.load_from_disk`` in a separate small environment that holds the
oldest supported ``datasets`` (scripts/datasets-oldest.txt; the Makefile builds it), and with
the ``datasets`` of this environment. Both must see the manifest's row counts, the same Arrow
types and the same rows::

    .venv/bin/python scripts/check_datasets_compat.py --python .venv/datasets-oldest/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "data" / "dialogs"

# Runs under either datasets version: what load_from_disk sees, as JSON.
LOAD = r"""
import json, sys
import datasets
out = {"version": datasets.__version__, "dirs": {}}
for path in sys.argv[1:]:
    dd = datasets.load_from_disk(path)
    out["dirs"][path] = {
        name: {
            "num_rows": ds.num_rows,
            "arrow_type": str(ds.features.type),
            "rows": [ds[0], ds[ds.num_rows - 1]] if ds.num_rows else [],
        }
        for name, ds in dd.items()
    }
print(json.dumps(out, sort_keys=True))
"""


def build_dirs(root: Path) -> list[Path]:
    """A rendered directory and a mixed one, made by the current code from examples/data."""
    cli = [sys.executable, "-m", "instructkit"]
    summary, topic, mix = root / "summary", root / "topic", root / "mix"
    for preset, out in (("dialogsum", summary), ("dialogsum_topic", topic)):
        _run([*cli, "render", preset, "--data-dir", str(DATA), "--out", str(out)])
    tasks = ["--task", f"{summary}:weight=1", "--task", f"{topic}:weight=1"]
    _run([*cli, "mix", *tasks, "--total", "800", "--out", str(mix)])
    return [summary, mix]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout}{done.stderr}")


def load_with(python: str, dirs: list[Path]) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", LOAD, *map(str, dirs)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"load_from_disk failed under {python}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(oldest: dict[str, Any], current: dict[str, Any], dirs: list[Path]) -> list[str]:
    """Differences between the two loads and against each manifest's row counts."""
    problems = []
    for path in dirs:
        manifest = json.loads((path / "instructkit.json").read_text())
        expected = {name: split["num_rows"] for name, split in manifest["splits"].items()}
        for label, seen in (("oldest", oldest), ("current", current)):
            splits = seen["dirs"][str(path)]
            counts = {name: split["num_rows"] for name, split in splits.items()}
            if counts != expected:
                problems.append(f"{path.name}: {label} datasets sees rows {counts}, not {expected}")
        for name, split in current["dirs"][str(path)].items():
            old = oldest["dirs"][str(path)].get(name, {})
            for key in ("arrow_type", "rows"):
                if old.get(key) != split[key]:
                    versions = f"{oldest['version']} vs {current['version']}"
                    problems.append(
                        f"{path.name}/{name}: {key} differs ({versions}): "
                        f"{old.get(key)!r} vs {split[key]!r}"
                    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="python of the oldest-datasets env")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="instructkit-compat-") as tmp:
        dirs = build_dirs(Path(tmp))
        oldest = load_with(args.python, dirs)
        current = load_with(sys.executable, dirs)
        problems = compare(oldest, current, dirs)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        summary = "; ".join(
            f"{path.name}: "
            + ", ".join(f"{n} {s['num_rows']}" for n, s in oldest["dirs"][str(path)].items())
            for path in dirs
        )
        print(
            f"datasets {oldest['version']} and {current['version']} load the rendered and mixed "
            f"directories alike ({summary})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

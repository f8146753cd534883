"""Benchmark the training data path: tokenization cache, peak RSS, time to the first step, padding.

    .venv/bin/python benchmarks/bench_train_data.py                       # 10k and 100k rows
    .venv/bin/python benchmarks/bench_train_data.py --sizes 10000 --baseline /tmp/old-instructkit

What it prints, in one run:
1. For each size: DialogSum train rendered (``balanced``) and replicated to N rows, then
   ``instructkit train -b full -m TINY_LLAMA -o max_steps=2`` in a fresh process, twice with an
   empty tokenization cache then once more (cache warm): peak RSS, seconds from process start to
   the end of the first optimizer step, and the tokenization seconds and hit flag from the run
   record. ``--baseline DIR`` runs the same command against another instructkit source tree
   (e.g. ``git archive <old commit> | tar -x -C DIR``) for a before/after in the same run.
2. The share of batch token slots that are padding (batch_size 8) with plain shuffled batches,
   length-grouped batches (HF's LengthGroupedSampler), BFD bins and padding-free batches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", REPO.parent / "shared" / "data"))

# Runs the CLI in this process, printing when the first optimizer step ends.
CHILD = """
import time
started = time.perf_counter()
import sys
try:
    import instructkit.train.hf as hf
except ImportError:  # a --baseline tree from before the layout refactor
    import instructkit.hf_training as hf
from transformers import TrainerCallback

class FirstStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            print(f"FIRST_STEP {time.perf_counter() - started:.2f}", flush=True)

hf.progress_callback = lambda quiet: FirstStep()  # -q: no bar to lose
print(f"SOURCE {hf.__file__}", flush=True)
from instructkit.cli import cli
cli(args=sys.argv[1:], prog_name="instructkit")
"""


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def prepare(
    work: Path, data: Path, sizes: list[int], reuse: bool = False
) -> tuple[Path, dict[int, Path]]:
    """Render DialogSum, replicate its train split to each size, build a tiny Llama.

    ``reuse``: keep what an earlier call left in ``work`` (so that a timed run under a lock
    measures training only); the rows are the same either way.
    """
    import pyarrow as pa

    from instructkit.artifacts.dataset import (
        list_splits,
        open_split,
        write_dataset_dict,
        write_split,
    )
    from instructkit.artifacts.manifest import read_manifest, write_manifest

    cli = [sys.executable, "-m", "instructkit"]
    rendered = work / "rendered"
    if not (reuse and (rendered / "instructkit.json").is_file()):
        run(
            [*cli, "render", "dialogsum", "--data-dir", str(data / "dialogsum"),
             "--out", str(rendered), "--overwrite"]
        )  # fmt: skip
    model = work / "tiny-llama"
    if not (reuse and (model / "config.json").is_file()):
        run(
            [*cli, "tiny-model", str(model), "--arch", "llama", "--corpus", str(rendered),
             "--overwrite"]
        )  # fmt: skip
    train = open_split(rendered, "train")
    out = {}
    for size in sizes:
        target = work / f"data-{size}"
        out[size] = target
        if reuse and read_manifest(target).get("benchmark_rows") == size:
            continue
        shutil.rmtree(target, ignore_errors=True)
        repeats = -(-size // train.num_rows)
        rows = pa.concat_tables([train] * repeats).slice(0, size)
        write_split(target, "train", rows.to_batches(max_chunksize=10_000))
        splits = ["train"]
        if "validation" in list_splits(rendered):
            write_split(target, "validation", [open_split(rendered, "validation").slice(0, 64)])
            splits.append("validation")
        write_dataset_dict(target, splits)
        write_manifest(target, {**read_manifest(rendered), "benchmark_rows": size})
    return model, out


def train_once(
    source: Path, dataset: Path, model: Path, out: Path, cache: Path, extra: list[str]
) -> dict:
    """One ``instructkit train -o max_steps=2`` in a fresh process: RSS, first step, record."""
    plugin = source / "plugins" / "instructkit-peft-extras"  # the tree's own, not the installed
    path = os.pathsep.join([str(source), str(plugin)])
    env = {**os.environ, "INSTRUCTKIT_CACHE": str(cache), "PYTHONPATH": path}
    cmd = [
        sys.executable, "-c", CHILD, "train", str(dataset), "-b", "full", "-m", str(model),
        "--out", str(out), "--overwrite", "-q", "-o", "max_steps=2", "-o", "max_eval_samples=64",
        *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peaks = {"RssAnon": 0, "RssFile": 0}
    while True:  # sample anonymous and file-backed (memory-mapped) resident memory apart
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        for key, value in proc_status(proc.pid).items():
            peaks[key] = max(peaks.get(key, 0), value)
        time.sleep(0.1)
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"train failed:\n{stderr[-3000:]}")
    first = [float(line.split()[1]) for line in stdout.splitlines() if line.startswith("FIRST_")]
    sources = [line.split()[1] for line in stdout.splitlines() if line.startswith("SOURCE")]
    assert sources and sources[0].startswith(str(source)), (sources, source)
    record = json.loads((out / "instructkit-train.json").read_text())
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "peak_anon_mb": peaks["RssAnon"],
        "peak_file_mb": peaks["RssFile"],
        "first_step_s": first[0] if first else None,
        "tokenization": record.get("tokenization"),
    }


def proc_status(pid: int) -> dict[str, int]:
    """RssAnon and RssFile of a live process, in MB (empty once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


def padding_figures(
    dataset: Path, model: Path, cache: Path, batch_size: int, capacity: int
) -> dict:
    """Padding share of batch slots: shuffled, length-grouped, BFD bins, padding-free."""
    import numpy as np
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from instructkit.modeling import load_tokenizer
    from instructkit.train.packing import column_array, pack_bfd, padding_fraction
    from instructkit.train.tokenized import EncodingSpec, tokenize_split

    tokenizer = load_tokenizer(str(model))
    encoded = tokenize_split(
        tokenizer, dataset, "train", EncodingSpec(False, 512, 128), cache_dir=cache
    )
    lengths = column_array(encoded.dataset, "length")
    grouped = lengths[
        get_length_grouped_indices(lengths.tolist(), batch_size, generator=torch.Generator())
    ]
    order, offsets = pack_bfd(lengths, capacity)
    bins = np.add.reduceat(lengths[order], offsets[:-1])
    return {
        "rows": int(len(lengths)),
        "tokens": int(lengths.sum()),
        "shuffled": round(padding_fraction(lengths, batch_size), 4),
        "group_by_length": round(padding_fraction_in_order(grouped, batch_size), 4),
        "bfd": round(padding_fraction(bins, batch_size), 4),
        "bfd_bins": int(len(bins)),
        "bfd_fill": round(float(bins.sum()) / (len(bins) * capacity), 4),
        "padding_free": 0.0,
    }


def padding_fraction_in_order(lengths, batch_size: int) -> float:
    usable = len(lengths) - len(lengths) % batch_size
    batches = lengths[:usable].reshape(-1, batch_size)
    return 1.0 - float(batches.sum()) / float(batches.max(axis=1).sum() * batch_size)


RUNS = ("first", "second", "second_bfd", "padding")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--baseline", type=Path, help="another instructkit source tree")
    parser.add_argument("--work", type=Path, help="keep files here (default: a temp dir)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the data and model already in --work"
    )
    parser.add_argument("--prepare-only", action="store_true", help="write the data and stop")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"any of {', '.join(RUNS)}")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = [r for r in args.runs.split(",") if r]
    if set(runs) - set(RUNS):
        parser.error(f"unknown runs {sorted(set(runs) - set(RUNS))}; known: {', '.join(RUNS)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model, datasets = prepare(work, args.data, sizes, reuse=args.reuse)
        if args.prepare_only:
            return 0
        results: dict = {"sizes": {}}
        for size, dataset in datasets.items():
            cache = work / f"cache-{size}"
            shutil.rmtree(cache, ignore_errors=True)  # "first" is a cold start, always
            figures: dict = {}
            if args.baseline:
                figures["baseline"] = train_once(
                    args.baseline, dataset, model, work / "out", work / "cache-old", []
                )
            for name in runs:
                if name == "padding":
                    figures[name] = padding_figures(dataset, model, cache, 8, 640)
                else:
                    extra = ["-o", "packing=bfd"] if name == "second_bfd" else []
                    figures[name] = train_once(REPO, dataset, model, work / "out", cache, extra)
            results["sizes"][size] = figures
            print(json.dumps({size: figures}), flush=True)
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())

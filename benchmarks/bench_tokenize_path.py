"""Tokenization of a split, the backend fast path vs ``tokenizer(...)``: CPU seconds, same ids.

    python benchmarks/bench_train_data.py --work /tmp/td --sizes 10000 --prepare-only
    python benchmarks/bench_tokenize_path.py /tmp/td/data-10000 --model /tmp/td/tiny-llama

Runs :func:`instructkit.train.tokenized.tokenize_split` (cold cache each time) with
``modeling.batch_ids`` as shipped (``encode_batch_fast`` on the Rust backend) and replaced by the
plain ``tokenizer(texts)["input_ids"]`` call, interleaved in one process, and prints wall and
CPU (user + sys) seconds per run and whether the first rows' ids and labels agree.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="an instructkit dataset directory with a train split")
    parser.add_argument("--model", required=True, help="a causal model folder (its tokenizer)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import instructkit.modeling as modeling
    from instructkit.train.tokenized import EncodingSpec, tokenize_split

    tokenizer = modeling.load_tokenizer(args.model)
    paths = {
        "tokenizer(...)": lambda tok, texts: [list(i) for i in tok(texts)["input_ids"]],
        "encode_batch_fast": modeling.batch_ids,
    }
    times: dict[str, list[tuple[float, float]]] = {}
    rows: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(args.repeats):
            for name, function in paths.items():
                modeling.batch_ids = function
                shutil.rmtree(cache, ignore_errors=True)
                wall, cpu = time.perf_counter(), cpu_seconds()
                encoded = tokenize_split(
                    tokenizer, args.dataset, "train", EncodingSpec(False, 512, 128), cache_dir=cache
                )
                times.setdefault(name, []).append((time.perf_counter() - wall, cpu_seconds() - cpu))
                rows[name] = encoded.dataset[:100]
    for name, runs in times.items():
        print(f"{name:>18}: " + ", ".join(f"wall {w:.2f} s / CPU {c:.2f} s" for w, c in runs))
    print(
        "same ids and labels (first 100 rows):", rows["tokenizer(...)"] == rows["encode_batch_fast"]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

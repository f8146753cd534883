"""Benchmark ROUGE scoring: rows per second for 1 and N processes, and that results are identical.

Scores DialogSum test (500 dialogues, three references each) with a cheap "prediction" per row
(its first two turns). Rows are not repeated: ROUGE memoizes tokenization, so repeated text would
flatter the figures. Without the shared data it falls back to synthetic rows.

    .venv/bin/python benchmarks/bench_score.py                    # 1 vs 2 processes
    .venv/bin/python benchmarks/bench_score.py --num-proc 1 2 4 --bootstrap 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from instructkit.evaluate.metrics import Rouge  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def dialogsum_rows(data_dir: Path) -> list[tuple[str, list[str]]]:
    path = data_dir / "dialogsum" / "dialogsum.test.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [
        (
            " ".join(r["dialogue"].split("\n")[:2]),
            [r["summary1"], r["summary2"], r["summary3"]],
        )
        for r in records
    ]


def synthetic_rows(count: int = 500) -> list[tuple[str, list[str]]]:
    rng = random.Random(0)
    words = "amanda jerry meet office party dinner tomorrow call bring talk plan work".split()

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)) + "."

    return [(text(30), [text(20), text(20), text(20)]) for _ in range(count)]


def plain_rouge_score(predictions: list[str], references: list[list[str]]) -> float:
    """Seconds rouge_score itself takes for the same pairs: the reference point."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(Rouge.keys), use_stemmer=True)
    start = time.perf_counter()
    for prediction, refs in zip(predictions, references, strict=True):
        for reference in refs:
            scorer.score(reference, prediction)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data-dir", type=Path, default=Path(
        os.environ.get("INSTRUCTKIT_SHARED_DATA", DEFAULT_DATA)))  # fmt: skip
    args = parser.parse_args()
    if (args.data_dir / "dialogsum").is_dir():
        rows, source = dialogsum_rows(args.data_dir), "DialogSum test"
    else:
        rows, source = synthetic_rows(), "synthetic"
    if hasattr(os, "getloadavg"):  # on a shared machine, other work skews the N-process figure
        print(f"load average before: {os.getloadavg()[0]:.1f}")
    predictions = [p for p, _ in rows]
    references = [r for _, r in rows]
    pairs = sum(len(r) for r in references)
    print(f"{source}: {len(rows)} rows, {pairs} prediction-reference pairs, ROUGE-1/2/L/Lsum")
    print(f"cpu count: {os.cpu_count()}, bootstrap resamples: {args.bootstrap}")
    baseline_seconds = plain_rouge_score(predictions, references)
    print(
        f"plain rouge_score (no cache, 1 process): {baseline_seconds:.2f} s, "
        f"{len(rows) / baseline_seconds:.0f} rows/s"
    )
    results = {}
    for num_proc in args.num_proc:
        start = time.perf_counter()
        # a fresh metric per run: its tokenizer cache must not carry over between runs
        metric = Rouge()
        result = metric.score(predictions, references, num_proc=num_proc, bootstrap=args.bootstrap)
        seconds = time.perf_counter() - start
        results[num_proc] = result.to_json()
        print(
            f"num_proc={num_proc}: {seconds:.2f} s, {len(rows) / seconds:.0f} rows/s, "
            f"{pairs / seconds:.0f} pairs/s, rougeL={result.scores['rougeL'].format()}"
        )
    identical = len({json.dumps(r, sort_keys=True) for r in results.values()}) == 1
    print(f"identical results across num_proc: {identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

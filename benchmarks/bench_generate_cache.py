"""Generation rows/s: sorted batches vs a plain ``model.generate`` loop, and a cache hit.

A tiny Llama (built on the fly, random weights, so every row generates --max-new-tokens) over
the shipped test dialogues with an instruction, 1-4 dialogues per prompt so lengths vary as in
a real mixture. Same batch size, same max tokens, greedy:

- baseline: batches in input order, ``tokenizer(..., padding=True)`` (left), ``model.generate``;
- instructkit: ``instructkit.generate.generate`` (longest first, put back in order);
- cache hit: ``PredictionCache.lookup`` of the same request after storing it (what
  ``evaluate --compare`` after ``evaluate`` costs).

.venv/bin/python benchmarks/bench_generate_cache.py --rows 96 --batch-size 16 --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIALOGS = ROOT / "examples" / "data" / "dialogs"


def prompts(count: int) -> list[str]:
    rows = [
        json.loads(line) for line in (DIALOGS / "dialogsum.test.jsonl").read_text().splitlines()
    ]
    return [
        "Summarize this dialogue:\n\n"
        + "\n".join(rows[(i + k) % len(rows)]["dialogue"] for k in range(i % 4 + 1))
        + "\n"
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from instructkit.evaluate.generate import GenerationOptions, generate
    from instructkit.evaluate.predictions_cache import PredictionCache
    from instructkit.modeling import load_for_inference
    from instructkit.tiny import save_tiny_model

    torch.set_num_threads(args.threads)
    texts = prompts(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny_model(
            Path(tmp) / "llama", "llama", texts=texts, vocab_size=1024, size=64, layers=2
        )
        loaded = load_for_inference(str(model_dir))
        tokenizer, model = loaded.tokenizer, loaded.model
        options = GenerationOptions(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

        started = time.perf_counter()
        tokenizer.padding_side = "left"
        for start in range(0, len(texts), args.batch_size):
            batch = tokenizer(texts[start : start + args.batch_size], return_tensors="pt",
                              padding=True, truncation=True, max_length=512)  # fmt: skip
            with torch.inference_mode():
                model.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False,
                               pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        baseline = time.perf_counter() - started

        started = time.perf_counter()
        predictions = generate(loaded, texts, options)
        ours = time.perf_counter() - started

        cache = PredictionCache(Path(tmp) / "cache")
        request = (str(model_dir), None, texts, options.to_json(), "cpu")
        cache.store(cache.lookup(*request).key or "", predictions)
        started = time.perf_counter()
        hit = cache.lookup(*request)
        cached = time.perf_counter() - started
        assert hit.predictions == predictions

    print(f"{args.rows} rows, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"plain model.generate loop: {args.rows / baseline:.1f} rows/s ({baseline:.2f} s)")
    print(f"instructkit generate:      {args.rows / ours:.1f} rows/s ({ours:.2f} s) = "
          f"{baseline / ours:.2f}x")  # fmt: skip
    print(f"cache hit:                 {args.rows / cached:.0f} rows/s ({cached * 1000:.0f} ms)")


if __name__ == "__main__":
    main()

"""Benchmark `instructkit evaluate` generation against a plain batched `model.generate` loop.

    python benchmarks/bench_generate.py --quick        # tiny llama, 48 rows, a couple of minutes
    python benchmarks/bench_generate.py                # 200 rows, 64 new tokens
    python benchmarks/bench_generate.py --model /models/smollm2 --rows 500   # a real model

1. Rows/s: `instructkit evaluate` (CLI, fresh process, --bootstrap 0) on the first N rows of
   DialogSum test rendered with the dialogsum pack, against a plain loop in a fresh process:
   the same N prompts in file order, batches of the same size, `tokenizer(..., padding=True)`
   (left padding and left truncation for causal models), `model.generate(greedy,
   max_new_tokens)`, `batch_decode`. Both are timed by the same probe around
   `GenerationMixin.generate` (benchmarks/_probe.py), so the figure is generation rows/s;
   whole-process wall time and peak RSS are shown beside it.
2. Time to result of `evaluate --max-rows 20` on a large split (DialogSum train replicated
   --large-copies times, every template: 112k rows per copy) against the same command on the
   500-row test split: wall time, peak RSS, and the ratio (1.0 means only scored rows are read).
"""

from __future__ import annotations

import argparse
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
    probed_instructkit_cmd,
    run_child,
    write_dialogsum_replica,
    write_json,
)
from _probe import summarize_generation  # noqa: E402


def prepare(args: argparse.Namespace) -> tuple[Path, Path]:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    rendered = work / "render-dialogsum"
    if not (rendered / "instructkit.json").exists():
        run_child(
            instructkit_cmd(
                "render",
                "dialogsum",
                "--data-dir",
                str(args.data / "dialogsum"),
                "--out",
                str(rendered),
                "--overwrite",
                "-q",
            )  # fmt: skip
        ).check()
    if args.model:
        return rendered, Path(args.model)
    model = work / f"tiny-{args.arch}-h{args.tiny_hidden}-l{args.tiny_layers}"
    if not (model / "config.json").exists():
        run_child(
            instructkit_cmd(
                "tiny-model",
                str(model),
                "--arch",
                args.arch,
                "--hidden-size",
                str(args.tiny_hidden),
                "--layers",
                str(args.tiny_layers),
                "--vocab-size",
                str(args.tiny_vocab),
                "--corpus",
                str(rendered),
                "--overwrite",
            )  # fmt: skip
        ).check()
    return rendered, model


def run_evaluate(
    args: argparse.Namespace, data: Path, model: Path, split: str, rows: int, out: Path
) -> dict[str, Any]:
    cli = [
        "evaluate", str(data), "--model", str(model), "--split", split, "--out", str(out),
        "--max-rows", str(rows), "--batch-size", str(args.batch_size),
        "--max-new-tokens", str(args.max_new_tokens),
        "--max-source-length", str(args.max_source_length), "--bootstrap", "0",
        "--overwrite", "-q",
    ]  # fmt: skip
    probe = out.parent / f"{out.name}.probe.json"
    result = run_child(probed_instructkit_cmd(probe, *cli), probe_out=probe).check()
    record = summarize_generation(result.probe, result.started)
    record.update(wall_s=result.seconds, peak_rss_mb=result.peak_rss_mb)
    shutil.rmtree(out, ignore_errors=True)
    return record


def run_plain(
    args: argparse.Namespace, data: Path, model: Path, split: str, rows: int, out: Path
) -> dict[str, Any]:
    config = {
        "data": str(data), "model": str(model), "split": split, "rows": rows,
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "max_source_length": args.max_source_length, "out": str(out),
    }  # fmt: skip
    probe = out.parent / f"{out.name}.probe.json"
    cmd = [sys.executable, __file__, "--plain-child", json.dumps(config), "--probe", str(probe)]
    result = run_child(cmd, probe_out=probe).check()
    record = summarize_generation(result.probe, result.started)
    record.update(wall_s=result.seconds, peak_rss_mb=result.peak_rss_mb)
    record.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return record


def plain_child(config: dict[str, Any], probe_path: str) -> None:
    """Child process: the loop a user writes with transformers, on the same rows."""
    import _probe

    _probe.install(probe_path)
    import datasets
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    split = datasets.load_from_disk(config["data"])[config["split"]]
    prompts = split.select(range(min(config["rows"], split.num_rows)))["prompt"]
    seq2seq = bool(getattr(AutoConfig.from_pretrained(config["model"]), "is_encoder_decoder", 0))
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(config["model"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not seq2seq:
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        prompts = [p if not p or p[-1].isspace() else p + "\n" for p in prompts]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    started = time.perf_counter()
    predictions = []
    for start in range(0, len(prompts), config["batch_size"]):
        batch = tokenizer(
            prompts[start : start + config["batch_size"]], return_tensors="pt", padding=True,
            truncation=True, max_length=config["max_source_length"],
        ).to(device)  # fmt: skip
        with torch.inference_mode():
            out = model.generate(
                **batch, max_new_tokens=config["max_new_tokens"], do_sample=False, num_beams=1,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        if not seq2seq:
            out = out[:, batch["input_ids"].shape[1] :]
        predictions += tokenizer.batch_decode(out, skip_special_tokens=True)
    loop = time.perf_counter() - started
    Path(config["out"]).write_text("\n".join(json.dumps(p) for p in predictions) + "\n")
    print(json.dumps({"loop_s": loop, "loop_rows_per_s": len(predictions) / loop}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ik-bench-gen")
    parser.add_argument("--model", help="a model directory (default: a tiny random model)")
    parser.add_argument("--arch", default="llama", choices=["llama", "gpt2", "t5"])
    parser.add_argument("--tiny-hidden", type=int, default=256)
    parser.add_argument("--tiny-layers", type=int, default=4)
    parser.add_argument("--tiny-vocab", type=int, default=4000)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-source-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side (median)")
    parser.add_argument("--large-copies", type=int, default=1, help="DialogSum train copies")
    parser.add_argument("--skip-large", action="store_true", help="leave out part 2")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plain-child", help=argparse.SUPPRESS)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_child:
        plain_child(json.loads(args.plain_child), args.probe)
        return 0
    if args.quick:
        args.tiny_hidden, args.tiny_layers, args.tiny_vocab = 128, 2, 1000
        args.rows, args.max_new_tokens = min(args.rows, 48), min(args.max_new_tokens, 32)
    if not need_data(args.data / "dialogsum", "DialogSum"):
        return 0
    started = time.time()
    rendered, model = prepare(args)
    print(
        f"# generate: model {model.name}, {args.rows} rows of DialogSum test, batch "
        f"{args.batch_size}, {args.max_new_tokens} new tokens, greedy",
        flush=True,
    )
    sides: dict[str, list[dict[str, Any]]] = {"instructkit evaluate": [], "plain generate loop": []}
    for attempt in range(args.repeats):
        out = args.work / f"eval-{attempt}"
        sides["instructkit evaluate"].append(
            run_evaluate(args, rendered, model, "test", args.rows, out)
        )
        sides["plain generate loop"].append(
            run_plain(
                args, rendered, model, "test", args.rows, args.work / f"plain-{attempt}.jsonl"
            )
        )
    results = {}
    for name, runs in sides.items():
        runs.sort(key=lambda r: r.get("rows_per_s") or 0)
        results[name] = dict(runs[len(runs) // 2], repeats=runs)
    base = results["plain generate loop"].get("rows_per_s")
    table = []
    for name, rec in results.items():
        table.append(
            [
                name,
                fmt(rec.get("rows_per_s"), ".2f"),
                f"{rec['rows_per_s'] / base:.2f}x" if base and rec.get("rows_per_s") else "-",
                fmt(rec.get("new_tokens_per_s"), ",.0f"),
                fmt(rec.get("generate_s"), ".1f"),
                fmt(rec.get("wall_s"), ".1f"),
                fmt(rec.get("peak_rss_mb")),
            ]
        )
    print()
    print_table(
        [
            "side",
            "rows/s (generate)",
            "vs plain",
            "new tok/s",
            "generate (s)",
            "wall (s)",
            "RSS MB",
        ],
        table,
    )

    large: dict[str, Any] = {}
    if not args.skip_large:
        replica = args.work / f"dialogsum-x{args.large_copies}"
        dialogues = write_dialogsum_replica(args.data / "dialogsum", args.large_copies, replica)
        big = args.work / f"render-all-x{args.large_copies}"
        if not (big / "instructkit.json").exists():
            run_child(
                instructkit_cmd(
                    "render",
                    "dialogsum",
                    "--data-dir",
                    str(replica),
                    "--splits",
                    "train",
                    "--assignment",
                    "all",
                    "--out",
                    str(big),
                    "--overwrite",
                    "-q",
                )  # fmt: skip
            ).check()
        manifest = json.loads((big / "instructkit.json").read_text())
        big_rows = manifest.get("splits", {}).get("train", {}).get("num_rows", 0)
        print(
            f"\n# evaluate --max-rows 20 on a {big_rows:,}-row split ({dialogues:,} dialogues x "
            "every template) vs on the 500-row test split"
        )
        small_rec = run_evaluate(args, rendered, model, "test", 20, args.work / "small20")
        large_rec = run_evaluate(args, big, model, "train", 20, args.work / "large20")
        large = {"small_split": small_rec, "large_split": large_rec, "large_rows": big_rows}
        print_table(
            ["split", "time to result (s)", "peak RSS MB"],
            [
                ["test (500 rows)", fmt(small_rec["wall_s"], ".1f"), fmt(small_rec["peak_rss_mb"])],
                [
                    f"train x{args.large_copies}, all templates ({big_rows:,} rows)",
                    fmt(large_rec["wall_s"], ".1f"),
                    fmt(large_rec["peak_rss_mb"]),
                ],
            ],
        )
        print(
            f"large / small: time {large_rec['wall_s'] / small_rec['wall_s']:.2f}x, "
            f"peak RSS {large_rec['peak_rss_mb'] / small_rec['peak_rss_mb']:.2f}x"
        )
    write_json(
        args.json,
        {
            "benchmark": "bench_generate",
            "args": {k: v for k, v in vars(args).items() if k not in ("plain_child", "probe")},
            "model": str(model),
            "machine": machine_info(),
            "versions": library_versions(("torch", "transformers", "datasets")),
            "results": results,
            "max_rows_on_large_split": large,
            "seconds": time.time() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

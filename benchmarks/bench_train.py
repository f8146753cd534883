"""Benchmark `instructkit train` against TRL's SFTTrainer: tokens/s, startup, peak RSS, padding.

    python benchmarks/bench_train.py --quick                     # tiny llama, a few minutes on CPU
    python benchmarks/bench_train.py                             # 12M-parameter llama, 4,000 rows
    python benchmarks/bench_train.py --model /models/smollm2 --precision bf16   # a real model (GPU)
    python benchmarks/bench_train.py --ik-variant packed:packing=true            # once it exists
    python benchmarks/bench_train.py --scale-rows 10000,100000,1000000           # startup + RSS

Same model, same data (DialogSum summary + topic tasks rendered and mixed 1:1, train split only,
so neither side runs validation), same batch, steps, learning rate, precision and lengths
(instructkit max_source_length S + max_target_length T with truncate_completions; TRL
max_length S+T). Each run is a fresh process; `instructkit train` goes through its CLI
(`python -m instructkit train ...`), TRL through `SFTTrainer` in this script's child mode.

Measured per run, by a probe on the HF Trainer's `training_step` (benchmarks/_probe.py):
- tokens/s: non-pad input tokens per second after the first optimizer step (steady state);
  also loss tokens/s (labels != -100) and sequences/s;
- startup: from spawning the process to the first training step (imports, model load,
  tokenization, data loader); peak RSS of the child (wait4 ru_maxrss);
- padding fraction: 1 - real tokens / batch slots.
Ratios (instructkit / TRL) are computed within the same run of this script.

Modes: full and LoRA (r=8, alpha=16, dropout 0.05, q_proj+v_proj on both sides).
Systems: instructkit (plus any --ik-variant NAME:KEY=VALUE,...), trl, trl-packed (packing=True,
TRL's default best-fit-decreasing strategy: a batch is flattened into one padding-free row with
position ids, so without flash-attention the attention mask is block-diagonal over the whole
batch), trl-wrapped (packing_strategy=wrapped: rows of max_length, sequences cut and attending
across boundaries; cheapest, not exact). Unknown names are refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SHARED_DATA,
    cache_key,
    fmt,
    instructkit_cmd,
    library_versions,
    machine_info,
    need_data,
    print_table,
    probed_instructkit_cmd,
    ratio,
    run_child,
    write_json,
)
from _probe import summarize_training  # noqa: E402

LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "q_proj,v_proj"}


# --------------------------------------------------------------------------- data and model
def prepare(args: argparse.Namespace, total: int) -> tuple[Path, Path]:
    """Rendered tasks, a 1:1 mixture of ``total`` train rows, and the model (cached in --work)."""
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = str(args.data / "dialogsum")
    for task in ("dialogsum", "dialogsum_topic"):
        out = work / f"render-{task}"
        if not (out / "instructkit.json").exists():
            run_child(
                instructkit_cmd(
                    "render",
                    task,
                    "--data-dir",
                    data,
                    "--splits",
                    "train",
                    "--out",
                    str(out),
                    "--overwrite",
                    "-q",
                )  # fmt: skip
            ).check()
    mix = work / f"mix-{total}"
    if not (mix / "instructkit.json").exists():
        run_child(
            instructkit_cmd(
                "mix",
                "--task",
                f"{work / 'render-dialogsum'}:weight=1",
                "--task",
                f"{work / 'render-dialogsum_topic'}:weight=1",
                "--total",
                str(total),
                "--decontaminate",
                "off",
                "--out",
                str(mix),
                "--overwrite",
                "-q",
            )  # fmt: skip
        ).check()
    if args.model:
        return mix, Path(args.model)
    model = work / f"tiny-llama-h{args.tiny_hidden}-l{args.tiny_layers}-v{args.tiny_vocab}"
    if not (model / "config.json").exists():
        run_child(
            instructkit_cmd(
                "tiny-model",
                str(model),
                "--arch",
                "llama",
                "--hidden-size",
                str(args.tiny_hidden),
                "--layers",
                str(args.tiny_layers),
                "--vocab-size",
                str(args.tiny_vocab),
                "--corpus",
                str(work / "render-dialogsum"),
                "--corpus",
                str(work / "render-dialogsum_topic"),
                "--overwrite",
            )  # fmt: skip
        ).check()
    return mix, model


def clear_datasets_cache(mix: Path) -> int:
    """Remove the `datasets` map caches TRL leaves next to the mixture (a cold TRL start)."""
    removed = 0
    for path in mix.rglob("cache-*.arrow"):
        path.unlink()
        removed += 1
    return removed


# --------------------------------------------------------------------------- one run each
def run_instructkit(
    args: argparse.Namespace, mix: Path, model: Path, mode: str, options: dict[str, str], out: Path
) -> dict[str, Any]:
    opts = {
        "max_steps": str(args.steps),
        "batch_size": str(args.batch_size),
        "learning_rate": str(args.learning_rate),
        "max_source_length": str(args.max_source_length),
        "max_target_length": str(args.max_target_length),
        "truncate_completions": "true",
        "logging_steps": str(max(args.steps, 1)),
        "save_steps": str(10**9),
        "precision": args.precision,
        "dtype": args.dtype,
        "seed": "42",
    }
    if mode == "lora":
        opts.update({k: str(v) for k, v in LORA.items()})
    opts.update(options)
    cli = ["train", str(mix), "--backend", "full" if mode == "full" else "lora"]
    cli += ["--model", str(model), "--out", str(out), "--overwrite", "-q"]
    for key, value in opts.items():
        cli += ["-o", f"{key}={value}"]
    probe = out.parent / f"{out.name}.probe.json"
    if args.ik_before:  # e.g. clear a tokenization cache, for a cold start every time
        subprocess.run(args.ik_before, shell=True, check=True)
    result = run_child(
        probed_instructkit_cmd(probe, *cli), probe_out=probe, echo=args.verbose
    ).check()
    record = summarize_training(result.probe, result.started, args.skip_steps)
    record.update(wall_s=result.seconds, peak_rss_mb=result.peak_rss_mb, options=opts)
    meta = out / "instructkit-train.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        record["run_record"] = {k: info.get(k) for k in ("steps", "seconds", "train_loss")}
    if "tokens_per_s" not in record:
        # the engine no longer runs through transformers.Trainer: fall back to whole-run figures
        record["note"] = "probe saw no Trainer steps: only wall time and RSS are comparable"
    shutil.rmtree(out, ignore_errors=True)
    return record


def run_trl(
    args: argparse.Namespace, mix: Path, model: Path, mode: str, system: str, out: Path
) -> dict[str, Any]:
    packing = system in ("trl-packed", "trl-wrapped")
    extra = dict(kv.split("=", 1) for kv in args.trl_option)
    if system == "trl-wrapped":
        extra["packing_strategy"] = "wrapped"
    config = {
        "mix": str(mix),
        "model": str(model),
        "out": str(out),
        "mode": mode,
        "packing": packing,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_length": args.max_source_length + args.max_target_length,
        "precision": args.precision,
        "dtype": args.dtype,
        "extra": extra,
    }
    probe = out.parent / f"{out.name}.probe.json"
    cmd = [sys.executable, __file__, "--trl-child", json.dumps(config), "--probe", str(probe)]
    result = run_child(cmd, probe_out=probe, echo=args.verbose).check()
    record = summarize_training(result.probe, result.started, args.skip_steps)
    record.update(wall_s=result.seconds, peak_rss_mb=result.peak_rss_mb, config=config)
    shutil.rmtree(out, ignore_errors=True)
    return record


def trl_child(config: dict[str, Any], probe_path: str) -> None:
    """Child process: SFTTrainer on the mixture's prompt/completion pairs (no save, no eval)."""
    import _probe

    _probe.install(probe_path)
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    train = datasets.load_from_disk(config["mix"])["train"]
    train = train.select_columns(["prompt", "completion"])
    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # the load dtype as instructkit's `-o dtype` (transformers 5 would load "auto": a bf16
    # checkpoint in bf16 on one side and fp32 on the other)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    model = AutoModelForCausalLM.from_pretrained(
        config["model"], dtype=dtypes.get(config.get("dtype", "fp32"), "auto")
    )
    precision = config["precision"]
    if precision == "auto":
        precision = (
            "bf16"
            if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            else ("fp16" if torch.cuda.is_available() else "fp32")
        )
    kwargs: dict[str, Any] = {
        "output_dir": config["out"],
        "max_steps": config["steps"],
        "per_device_train_batch_size": config["batch_size"],
        "learning_rate": config["learning_rate"],
        "lr_scheduler_type": "linear",
        "logging_steps": max(config["steps"], 1),
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 42,
        "max_length": config["max_length"],
        "packing": config["packing"],
        "completion_only_loss": True,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
    }
    for key, value in config["extra"].items():
        try:
            kwargs[key] = json.loads(value)  # numbers, true/false, lists, objects
        except json.JSONDecodeError:
            kwargs[key] = value
    peft_config = None
    if config["mode"] == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"].split(","), task_type="CAUSAL_LM",
        )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=SFTConfig(**kwargs), train_dataset=train,
        processing_class=tokenizer, peft_config=peft_config,
    )  # fmt: skip
    trainer.train()


# --------------------------------------------------------------------------- report
def row(name: str, mode: str, rec: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    return [
        mode,
        name,
        fmt(rec.get("tokens_per_s")),
        ratio(rec.get("tokens_per_s"), (base or {}).get("tokens_per_s")),
        fmt(rec.get("loss_tokens_per_s")),
        fmt(rec.get("sequences_per_s"), ".1f"),
        fmt(rec.get("padding_fraction"), ".1%") if rec.get("padding_fraction") is not None else "-",
        fmt(rec.get("startup_to_first_step_s"), ".1f"),
        fmt(rec.get("wall_s"), ".1f"),
        fmt(rec.get("peak_rss_mb")),
    ]


HEADERS = [
    "mode", "system", "tokens/s", "vs trl", "loss tok/s", "seq/s", "padding",
    "start (s)", "wall (s)", "peak RSS MB",
]  # fmt: skip


def scale_section(args: argparse.Namespace, model_for: dict[int, tuple[Path, Path]]) -> list[dict]:
    """instructkit train -o max_steps=2 at several row counts, twice each (cold, then warm)."""
    results = []
    for total, (mix, model) in model_for.items():
        for attempt in ("first", "second"):
            out = args.work / f"scale-{total}-{attempt}"
            rec = run_instructkit(args, mix, model, "full", {"max_steps": "2", **args.ik_opts}, out)
            results.append({"rows": total, "run": attempt, **rec})
            print(
                f"  rows={total:>9,} {attempt:<6} "
                f"start {rec.get('startup_to_first_step_s', 0):7.1f} s"
                f"  wall {rec['wall_s']:7.1f} s  peak RSS {rec['peak_rss_mb']:8,.0f} MB",
                flush=True,
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ik-bench-train")
    parser.add_argument("--model", help="a real causal model directory (default: a tiny llama)")
    parser.add_argument("--tiny-hidden", type=int, default=256)
    parser.add_argument("--tiny-layers", type=int, default=4)
    parser.add_argument("--tiny-vocab", type=int, default=8000)
    parser.add_argument("--rows", type=int, default=4000, help="train rows in the mixture")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-steps", type=int, default=2, help="steps left out of tokens/s")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-source-length", type=int, default=384)
    parser.add_argument("--max-target-length", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument(
        "--dtype", default="fp32", choices=["auto", "fp32", "bf16", "fp16"],
        help="weights' load dtype on both sides (instructkit -o dtype; TRL from_pretrained)",
    )  # fmt: skip
    parser.add_argument("--modes", default="full,lora")
    parser.add_argument("--systems", default="instructkit,trl,trl-packed")
    parser.add_argument("--repeats", type=int, default=1, help="runs per system (median)")
    parser.add_argument(
        "--ik-option", action="append", default=[], metavar="KEY=VALUE",
        help="extra -o for every instructkit run (e.g. a cache or packing flag)",
    )  # fmt: skip
    parser.add_argument(
        "--ik-variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="an extra instructkit row with these -o options, e.g. packed:packing=true",
    )  # fmt: skip
    parser.add_argument(
        "--trl-option", action="append", default=[], metavar="KEY=VALUE",
        help="extra SFTConfig field for every TRL run (JSON values)",
    )  # fmt: skip
    parser.add_argument("--trl-cold", action="store_true", help="clear datasets caches per TRL run")
    parser.add_argument(
        "--ik-before", metavar="SHELL_CMD",
        help="run before every instructkit run, e.g. 'rm -rf ~/.cache/instructkit/tokenized'",
    )  # fmt: skip
    parser.add_argument(
        "--scale-rows", default="", help="also time startup + peak RSS of instructkit at these rows"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--quick", action="store_true", help="tiny model, few rows and steps")
    parser.add_argument("--keep-work", action="store_true", help="keep --work (rendered data)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--trl-child", help=argparse.SUPPRESS)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_child:
        trl_child(json.loads(args.trl_child), args.probe)
        return 0
    if args.quick:
        args.tiny_hidden, args.tiny_layers, args.tiny_vocab = 128, 2, 1000
        args.rows, args.steps, args.batch_size = min(args.rows, 2000), min(args.steps, 8), 4
        args.max_source_length, args.max_target_length = 256, 64
    if not need_data(args.data / "dialogsum", "DialogSum"):
        return 0
    args.ik_opts = dict(kv.split("=", 1) for kv in args.ik_option)
    variants = {"instructkit": dict(args.ik_opts)}
    for spec in args.ik_variant:
        name, _, opts = spec.partition(":")
        variants[f"instructkit-{name}"] = {
            **args.ik_opts, **dict(kv.split("=", 1) for kv in opts.split(",") if kv)
        }  # fmt: skip
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - {"instructkit", "trl", "trl-packed", "trl-wrapped"}
    if unknown:
        parser.error(f"unknown {sorted(unknown)}; known: instructkit, trl, trl-packed, trl-wrapped")
    if "instructkit" in systems:
        systems[systems.index("instructkit") : systems.index("instructkit") + 1] = list(variants)
    if any(s.startswith("trl") for s in systems) and library_versions(("trl",))["trl"] == "absent":
        print("NOTE: trl is not installed: TRL rows skipped (pip install --no-deps trl)")
        systems = [s for s in systems if not s.startswith("trl")]

    started = time.time()
    mix, model = prepare(args, args.rows)
    print(
        f"# train: model {model.name}, {args.rows} mixed rows, {args.steps} steps, batch "
        f"{args.batch_size}, lengths {args.max_source_length}+{args.max_target_length}, "
        f"{args.precision}; tokens/s after {args.skip_steps} steps",
        flush=True,
    )
    results: dict[str, Any] = {}
    table = []
    for mode in [m for m in args.modes.split(",") if m]:
        for system in systems:
            runs = []
            for attempt in range(args.repeats):
                out = args.work / f"run-{mode}-{system}-{attempt}"
                if system.startswith("trl"):
                    if args.trl_cold:
                        clear_datasets_cache(mix)
                    rec = run_trl(args, mix, model, mode, system, out)
                else:
                    rec = run_instructkit(args, mix, model, mode, variants[system], out)
                runs.append(rec)
            runs.sort(key=lambda r: r.get("tokens_per_s") or 0)
            rec = dict(runs[len(runs) // 2], repeats=runs)
            results[f"{mode}/{system}"] = rec
            print(
                f"  {mode:<5} {system:<22} {fmt(rec.get('tokens_per_s')):>9} tok/s  "
                f"padding {fmt(rec.get('padding_fraction'), '.1%')}  "
                f"start {fmt(rec.get('startup_to_first_step_s'), '.1f')} s  "
                f"RSS {fmt(rec.get('peak_rss_mb'))} MB",
                flush=True,
            )
        for system in systems:
            table.append(row(system, mode, results[f"{mode}/{system}"], results.get(f"{mode}/trl")))
    print()
    print_table(HEADERS, table)
    for mode in [m for m in args.modes.split(",") if m]:
        packed = results.get(f"{mode}/trl-packed", {}).get("tokens_per_s")
        for name in variants:
            ours = results.get(f"{mode}/{name}", {}).get("tokens_per_s")
            if ours and packed:
                print(f"{mode}: {name} / trl-packed tokens/s = {ours / packed:.2f}x")

    scale = []
    if args.scale_rows:
        print("\n# startup and peak RSS of `instructkit train -o max_steps=2` by row count")
        sized = {int(n): prepare(args, int(n)) for n in args.scale_rows.split(",") if n}
        scale = scale_section(args, sized)
        firsts = {r["rows"]: r for r in scale if r["run"] == "first"}
        seconds = {r["rows"]: r for r in scale if r["run"] == "second"}
        if len(firsts) >= 2:
            lo, hi = min(firsts), max(firsts)
            print(
                f"peak RSS {hi:,} / {lo:,} rows = "
                f"{firsts[hi]['peak_rss_mb'] / firsts[lo]['peak_rss_mb']:.2f}"
            )
        for n in firsts:
            a = firsts[n].get("startup_to_first_step_s")
            b = seconds.get(n, {}).get("startup_to_first_step_s")
            if a and b:
                print(f"rows={n:,}: startup first / second run = {a / b:.2f}x")

    write_json(
        args.json,
        {
            "benchmark": "bench_train",
            "args": {k: v for k, v in vars(args).items() if k not in ("trl_child", "probe")},
            "model": str(model),
            "machine": machine_info(),
            "versions": library_versions(("torch", "transformers", "trl", "peft", "datasets")),
            "results": results,
            "scale": scale,
            "key": cache_key(vars(args)),
            "seconds": time.time() - started,
        },
    )
    if not args.keep_work:
        for path in args.work.glob("run-*"):
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Chat template or not: zero-shot vs LoRA-tuned ROUGE of SmolLM2-135M-Instruct on DialogSum.

    python benchmarks/bench_chat_template.py --quick           # smoke test: 4 rows, 2 steps
    python benchmarks/bench_chat_template.py --json build/bench/chat_template.json
    python benchmarks/bench_chat_template.py --steps 12        # as measured in docs/chat.md
    python benchmarks/bench_chat_template.py --skip-zero-shot --steps 60   # adapters only

Issue 13's measurement. Every step is the instructkit CLI in a fresh process (as a user runs it)
and is timed whole, spawn to exit (imports and model loads included):

1. render DialogSum through one summary phrasing twice: text rows and conversational rows;
2. locate SmolLM2 (`instructkit models get smollm2-135m-instruct`);
3. zero-shot: evaluate the base on the first N test rows through its chat template
   (conversational rows) and without it (text rows, `--chat-template off`);
4. LoRA-train once per form: conversational rows (trained through the template) and text rows
   (`-o chat_template=off`: plain `prompt + completion + eos`);
5. evaluate each adapter on the same N rows, prompted the way it was trained.

Defaults, sized for about 30 minutes on 2 CPU cores (a 135M model in fp32): 100 test rows,
greedy, at most 64 new tokens (DialogSum summaries: median 26, 90th percentile 45 tokens),
batches of 20; prompts cut to 256 tokens in training and evaluation alike (median DialogSum
prompt 240 tokens: about 40% lose dialogue from the middle, the instruction and the end stay);
LoRA r=16, alpha 32, lr 1e-3 (the real demo's), 40 steps x 4 rows = 160 train rows, completions
cut at 64 tokens, a 16-row validation loss at the end. Measured on 2 shared cores (docs/chat.md):
an evaluation that runs to 64 tokens costs ~540 CPU-seconds, one that stops early ~245; a
12-step training 205 (tokenizing the 12,460-row split included), about 14 more per step.

Each condition's metrics.json must record the encoding it was meant to use (a template id, or
none); the script stops otherwise, and when two conditions did not score the same test rows.
Generation is greedy and uncached (`--no-cache`), so the times are of real generation.
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
    cache_key,
    child_env,
    instructkit_cmd,
    library_versions,
    machine_info,
    need_data,
    print_table,
    run_child,
    write_json,
)

MODEL_NAME = "smollm2-135m-instruct"
FORMS = {"chat": "conversational", "plain": "text"}
# (condition, row form, adapter trained on that form or None for the base)
CONDITIONS = [
    ("zero-shot", "chat", False),
    ("zero-shot", "plain", False),
    ("LoRA", "chat", True),
    ("LoRA", "plain", True),
]
METRICS = ("rouge1", "rouge2", "rougeL")
# what each training's instructkit-train.json contributes to the results
RUN_RECORD_KEYS = (
    "steps", "train_seconds", "train_loss", "eval_loss", "encoding", "truncated_prompts",
    "truncated_completions",
)  # fmt: skip


# --------------------------------------------------------------------------- steps
def timed(
    cmd: list[str], verbose: bool, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """Run one CLI command to completion: its wall time and peak RSS, and its stdout."""
    result = run_child(cmd, echo=verbose, env=child_env(env)).check()
    record = {
        "wall_s": round(result.seconds, 2),
        "cpu_s": round(result.cpu_s, 2),
        "peak_rss_mb": round(result.peak_rss_mb),
    }
    return record, result.stdout


def render(args: argparse.Namespace, form: str, out: Path) -> dict[str, Any]:
    cmd = instructkit_cmd(
        "render", "dialogsum", "--data-dir", str(args.data / "dialogsum"),
        "--template", args.template, "--form", form, "--out", str(out), "--overwrite", "-q",
    )  # fmt: skip
    return timed(cmd, args.verbose)[0]


def locate_model(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The cached SmolLM2 folder, as `models get` prints it (converts it on a first run)."""
    if args.model:
        return Path(args.model), {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0}
    cmd = instructkit_cmd("models", "get", MODEL_NAME)
    record, stdout = timed(cmd, args.verbose)
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or not Path(lines[-1]).is_dir():
        raise RuntimeError(f"`instructkit models get {MODEL_NAME}` printed no folder: {stdout!r}")
    return Path(lines[-1]), record


def train(args: argparse.Namespace, data: Path, model: Path, encoding: str, out: Path) -> dict:
    opts = {
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "r": args.lora_r,
        "alpha": 2 * args.lora_r,
        "max_source_length": args.max_source_length,
        "max_target_length": args.max_target_length,
        # cut long summaries instead of dropping their rows: every step sees batch_size rows
        "truncate_completions": "true",
        "chat_template": encoding,
        # one small validation loss at the end, not four passes over 500 rows
        "eval_steps": 0,
        "max_eval_samples": args.eval_samples,
        "logging_steps": max(args.steps // 4, 1),
        "save_steps": 10**9,
        "seed": 42,
    }
    cmd = instructkit_cmd(
        "train", str(data), "--backend", "lora", "--model", str(model), "--out", str(out),
        "--overwrite", "-q",
    )  # fmt: skip
    for key, value in opts.items():
        cmd += ["-o", f"{key}={value}"]
    # a cache of its own, emptied per run: every training tokenizes its split, as a first run does
    cache = out.parent / f"{out.name}.cache"
    shutil.rmtree(cache, ignore_errors=True)
    record, _ = timed(cmd, args.verbose, {"INSTRUCTKIT_CACHE": str(cache)})
    shutil.rmtree(cache, ignore_errors=True)
    info = json.loads((out / "instructkit-train.json").read_text())
    record["run_record"] = {k: info.get(k) for k in RUN_RECORD_KEYS if k in info}
    record["options"] = opts
    return record


def evaluate(
    args: argparse.Namespace, data: Path, model: Path, chat_template: str, out: Path
) -> dict[str, Any]:
    cmd = instructkit_cmd(
        "evaluate", str(data), "--model", str(model), "--split", "test",
        "--max-rows", str(args.eval_rows), "--max-new-tokens", str(args.max_new_tokens),
        "--max-source-length", str(args.max_source_length),
        "--batch-size", str(args.eval_batch_size), "--bootstrap", str(args.bootstrap),
        "--chat-template", chat_template, "--no-cache", "--out", str(out), "--overwrite", "-q",
    )  # fmt: skip
    record, _ = timed(cmd, args.verbose)
    metrics = json.loads((out / "metrics.json").read_text())
    record["template_id"] = metrics["model"].get("chat_template_id")
    task = metrics["tasks"]["dialogsum"]
    record["rows"] = task["num_rows"]
    record["scores"] = {m: task["metrics"]["rouge"]["scores"][m] for m in METRICS}
    record["example_ids"] = [
        json.loads(line)["example_id"]
        for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    record["first_prediction"] = first_prediction(out)
    return record


def first_prediction(out: Path) -> str:
    line = (out / "predictions.jsonl").read_text(encoding="utf-8").split("\n", 1)[0]
    return str(json.loads(line).get("prediction", ""))[:200]


# --------------------------------------------------------------------------- checks and report
def check_conditions(evals: dict[str, dict[str, Any]]) -> None:
    """Stop when a condition was not prompted as meant, or scored other rows than the rest."""
    for key, rec in evals.items():
        wants_template = key.endswith("/chat")
        if bool(rec.get("template_id")) != wants_template:
            raise RuntimeError(
                f"{key}: evaluated with chat template id {rec.get('template_id')!r}; "
                f"expected {'a template' if wants_template else 'none'}"
            )
    ids = {key: rec["example_ids"] for key, rec in evals.items()}
    first = next(iter(ids.values()))
    differing = [key for key, value in ids.items() if value != first]
    if differing:
        raise RuntimeError(f"{', '.join(differing)} scored other test rows than the first")


def score_cell(score: dict[str, float]) -> str:
    """'31.42 [27.10, 35.88]' (x 100, mean and 95% bootstrap interval)."""
    if score.get("low") is None:
        return f"{score['value']:.2f}"
    return f"{score['value']:.2f} [{score['low']:.2f}, {score['high']:.2f}]"


def score_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per condition: ROUGE-1/2/L with intervals, its train and evaluate wall time."""
    headers = ["model", "prompt", "rows", "ROUGE-1", "ROUGE-2", "ROUGE-L", "train (s)", "eval (s)"]
    rows = []
    for condition, form, tuned in CONDITIONS:
        rec = results["evaluate"].get(f"{condition}/{form}")
        if rec is None:
            continue
        trained = results["train"].get(form) if tuned else None
        prompt = "chat template" if form == "chat" else "plain text"
        rows.append(
            [condition, prompt, str(rec["rows"])]
            + [score_cell(rec["scores"][m]) for m in METRICS]
            + [f"{trained['wall_s']:.0f}" if trained else "-", f"{rec['wall_s']:.0f}"]
        )
    return headers, rows


def steps_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every timed step in the order it ran: wall time, CPU time (user + system; on a shared
    machine the figure that does not grow with other jobs' load) and peak RSS."""
    rows = []
    for name, rec in results["steps"]:
        cpu = rec.get("cpu_s")  # absent from records written before it was measured
        rows.append(
            [name, f"{rec['wall_s']:.1f}", "-" if cpu is None else f"{cpu:.1f}"]
            + [f"{rec['peak_rss_mb']:,}"]
        )
    total = sum(rec["wall_s"] for _, rec in results["steps"])
    cpu_total = sum(rec.get("cpu_s") or 0.0 for _, rec in results["steps"])
    rows.append(["total", f"{total:.1f}", f"{cpu_total:.1f}", ""])
    return ["step", "wall (s)", "CPU (s)", "peak RSS MB"], rows


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "ik-bench-chat-template"
    )
    parser.add_argument("--model", help="SmolLM2 folder (default: `instructkit models get`)")
    parser.add_argument("--template", default="summarize_before", help="DialogSum phrasing")
    parser.add_argument("--eval-rows", type=int, default=100, help="first N test rows")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-source-length", type=int, default=256, help="prompt tokens")
    parser.add_argument("--max-target-length", type=int, default=64, help="train completions")
    parser.add_argument("--eval-batch-size", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=40, help="LoRA steps per training")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=16, help="alpha is 2r")
    parser.add_argument("--eval-samples", type=int, default=16, help="validation rows in train")
    parser.add_argument(
        "--skip-zero-shot", action="store_true", help="only train and evaluate the adapters"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--quick", action="store_true", help="4 rows, 2 steps, 8 new tokens")
    parser.add_argument("--keep-work", action="store_true", help="keep --work")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.eval_rows, args.max_new_tokens, args.eval_batch_size = 4, 8, 4
        args.steps, args.batch_size, args.eval_samples = 2, 2, 2
        args.max_source_length, args.max_target_length, args.bootstrap = 128, 32, 100
    return args


def run(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every step in order, each recorded into ``results`` as soon as it ends."""
    work = args.work
    work.mkdir(parents=True, exist_ok=True)

    def step(name: str, record: dict[str, Any]) -> dict[str, Any]:
        results["steps"].append((name, record))
        print(f"  {name:<28} {record['wall_s']:8.1f} s", flush=True)
        return record

    data = {key: work / f"render-{form}" for key, form in FORMS.items()}
    for key, form in FORMS.items():
        step(f"render ({form})", render(args, form, data[key]))
    model, located = locate_model(args)
    step("models get", located)
    results["model"] = str(model)
    encoding = {"chat": "auto", "plain": "off"}
    for key in FORMS if not args.skip_zero_shot else ():
        out = work / f"eval-zero-shot-{key}"
        rec = evaluate(args, data[key], model, encoding[key], out)
        results["evaluate"][f"zero-shot/{key}"] = step(f"evaluate zero-shot ({key})", rec)
    for key in FORMS:
        out = work / f"lora-{key}"
        rec = train(args, data[key], model, encoding[key], out)
        results["train"][key] = step(f"train LoRA ({key})", rec)
    for key in FORMS:
        out = work / f"eval-lora-{key}"
        rec = evaluate(args, data[key], work / f"lora-{key}", encoding[key], out)
        results["evaluate"][f"LoRA/{key}"] = step(f"evaluate LoRA ({key})", rec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not need_data(args.data / "dialogsum", "DialogSum"):
        return 0
    started = time.time()
    machine_before = machine_info()
    print(
        f"# chat template: SmolLM2 on {args.eval_rows} DialogSum test rows ('{args.template}'), "
        f"greedy <= {args.max_new_tokens} new tokens, prompts <= {args.max_source_length} "
        f"tokens; LoRA r={args.lora_r} lr={args.learning_rate:g}, {args.steps} steps x "
        f"{args.batch_size} rows",
        flush=True,
    )
    results: dict[str, Any] = {"steps": [], "train": {}, "evaluate": {}}
    failure = None
    try:
        run(args, results)
        check_conditions(results["evaluate"])
    except RuntimeError as exc:  # a failed step or check: still report what was measured
        failure = str(exc)
    print()
    print_table(*score_table(results))
    print()
    print_table(*steps_table(results))
    for key, rec in results["train"].items():
        print(f"train {key}: {rec['run_record']}")
    for key, rec in results["evaluate"].items():
        print(f"first prediction, {key}: {rec['first_prediction']!r}")
    if failure:
        results["failure"] = failure
    write_json(
        args.json,
        {
            "benchmark": "bench_chat_template",
            "args": vars(args),
            "machine_before": machine_before,
            "machine": machine_info(),
            "versions": library_versions(("torch", "transformers", "peft")),
            "results": results,
            "key": cache_key(vars(args)),
            "seconds": time.time() - started,
        },
    )
    if not args.keep_work:
        shutil.rmtree(args.work, ignore_errors=True)
    if failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

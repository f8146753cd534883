"""Whole-process `instructkit render` against a per-row Jinja loop, timed as a user times them.

    python benchmarks/bench_render_process.py --quick          # 1 copy (112k pairs), ~1-2 min
    python benchmarks/bench_render_process.py                  # 8 copies: 99,680 dialogues
    python benchmarks/bench_render_process.py --scales 8,80    # peak RSS at 100k vs 1M dialogues
    python benchmarks/bench_render_process.py --num-proc 1,2,16 --repeats 3
    python benchmarks/bench_render_process.py --scale 2 --num-proc 1,2 --jinja --no-baseline

The workload of issue 17: DialogSum train replicated --scale times (fnames made unique, the
preset's file layout), every template of the dialogsum pack (`--assignment all`), train only.

- instructkit: `python -m instructkit render dialogsum --data-dir REPLICA --splits train
  --assignment all --out OUT` in a fresh process; wall time from spawn to exit (imports,
  reading, hashing, rendering, writing, manifest) and peak RSS (wait4), run with -q as a
  user runs it. If `render --help` offers a phase profile flag (--profile, --timings or
  --phases), one more run per --num-proc passes it and its phase lines are printed (not
  counted in the timings). The checkout is byte-compiled first, as pip does on install.
  Each round runs it cold (its input cache emptied: the JSON Lines file is parsed and hashed)
  and warm (the parsed input kept by the cold run: a re-render of the same data); both are
  reported (--input-cache picks one).
- baseline, also a fresh process: json.loads per line, the pack's .jinja files compiled once
  (the same sandboxed, strict environment options), each row rendered through every
  template's `prompt` and `completion` blocks in a Python loop, then
  `datasets.Dataset.from_dict(...).save_to_disk(...)`. Its own phases are printed.
The ratio is baseline wall / instructkit wall, median of --repeats, in the same run.

--jinja renders a copy of the pack whose fields pass through a no-op filter (`| string`): the
same bytes, but every row goes through Jinja (no vectorised path), the case where rendering
dominates and --num-proc workers have work to share.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPO,
    SHARED_DATA,
    child_env,
    compile_bytecode,
    fmt,
    instructkit_cmd,
    library_versions,
    machine_info,
    median,
    need_data,
    print_table,
    run_child,
    write_dialogsum_replica,
    write_json,
)

PHASE_FLAGS = ("--profile", "--timings", "--phases")


def detect_phase_flag() -> str | None:
    """The render command's phase-profile flag, if this checkout has one."""
    help_text = run_child(instructkit_cmd("render", "--help")).check().stdout
    return next((f for f in PHASE_FLAGS if re.search(rf"(^|\s){f}\b", help_text)), None)


def run_instructkit(
    replica: Path,
    out: Path,
    num_proc: int,
    phase_flag: str | None,
    extra: list[str],
    cache: Path,
    cold: bool,
) -> dict[str, Any]:
    """One render in a fresh process; ``cold``: its input cache emptied first (the input is
    parsed and hashed), else the entry the previous run left is used (a re-render)."""
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    cli = [
        "render", "dialogsum", "--data-dir", str(replica), "--splits", "train",
        "--assignment", "all", "--num-proc", str(num_proc), "--out", str(out), "--overwrite",
    ]  # fmt: skip
    if phase_flag:
        cli.append(phase_flag)
    else:
        cli.append("-q")
    env = child_env({"INSTRUCTKIT_CACHE": str(cache)})
    result = run_child(instructkit_cmd(*cli, *extra), env=env).check()
    manifest = json.loads((out / "instructkit.json").read_text())
    pairs = manifest["splits"]["train"]["num_rows"]
    record = {"wall_s": result.seconds, "peak_rss_mb": result.peak_rss_mb, "pairs": pairs}
    if phase_flag:
        lines = (result.stdout + result.stderr).strip().splitlines()
        record["phase_output"] = [line for line in lines if re.search(r"\d", line)][-30:]
    shutil.rmtree(out, ignore_errors=True)
    return record


def jinja_pack(source: Path, target: Path) -> Path:
    """A copy of the pack whose fields go through `| string`: per-row Jinja, same text."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        text = path.read_text()
        if path.suffix == ".jinja":
            text = re.sub(r"\{\{ *(\w+) *\}\}", r"{{ \1 | string }}", text)
        (target / path.name).write_text(text)
    return target


def run_baseline(replica: Path, out: Path, templates: Path) -> dict[str, Any]:
    config = {"replica": str(replica), "out": str(out), "templates": str(templates)}
    cmd = [sys.executable, __file__, "--baseline-child", json.dumps(config)]
    result = run_child(cmd).check()
    record = {"wall_s": result.seconds, "peak_rss_mb": result.peak_rss_mb}
    record.update(json.loads(result.stdout.strip().splitlines()[-1]))
    shutil.rmtree(out, ignore_errors=True)
    return record


def baseline_child(config: dict[str, Any]) -> None:
    """Child process: the per-row loop a careful user writes (templates compiled once)."""
    phases: dict[str, float] = {}
    t = time.perf_counter()
    import datasets
    import jinja2
    import yaml
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    datasets.disable_progress_bars()
    phases["import"] = time.perf_counter() - t

    t = time.perf_counter()
    pack_dir = Path(config["templates"])
    pack = yaml.safe_load((pack_dir / "pack.yaml").read_text())
    ids = list(pack.get("templates") or []) or sorted(p.stem for p in pack_dir.glob("*.jinja"))
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=False, autoescape=False,
    )  # fmt: skip
    compiled = [env.from_string((pack_dir / f"{i}.jinja").read_text()) for i in ids]
    blocks = [(c, c.blocks["prompt"], c.blocks["completion"]) for c in compiled]
    phases["compile"] = time.perf_counter() - t

    t = time.perf_counter()
    with open(Path(config["replica"]) / "dialogsum.train.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    phases["read"] = time.perf_counter() - t

    t = time.perf_counter()
    prompts: list[str] = []
    completions: list[str] = []
    for row in rows:
        for template, prompt, completion in blocks:
            context = template.new_context(row)
            prompts.append("".join(prompt(context)).strip())
            completions.append("".join(completion(context)).strip())
    phases["render"] = time.perf_counter() - t

    t = time.perf_counter()
    dataset = datasets.Dataset.from_dict({"prompt": prompts, "completion": completions})
    dataset.save_to_disk(config["out"])
    phases["write"] = time.perf_counter() - t
    print(json.dumps({"pairs": len(prompts), "rows": len(rows), "phases": phases}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="shared data folder")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ik-bench-rp")
    parser.add_argument("--scale", type=int, default=8, help="copies of DialogSum train")
    parser.add_argument("--scales", default="", help="several scales (peak RSS by row count)")
    parser.add_argument("--num-proc", default="1", help="instructkit --num-proc values, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phase-flag", default="auto", help="auto, none, or a flag to pass")
    parser.add_argument("--ik-arg", action="append", default=[], help="extra render argument")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--jinja", action="store_true", help="per-row Jinja pack (see above)")
    parser.add_argument(
        "--input-cache",
        choices=["both", "cold", "warm"],
        default="both",
        help="instructkit runs with its input cache emptied (cold), kept (warm), or both",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="--scale 1 --repeats 1")
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline_child(json.loads(args.baseline_child))
        return 0
    if args.quick:
        args.scale, args.repeats = 1, 1
    source = args.data / "dialogsum"
    if not need_data(source, "DialogSum"):
        return 0
    scales = [int(s) for s in args.scales.split(",") if s] or [args.scale]
    modes = ["cold", "warm"] if args.input_cache == "both" else [args.input_cache]
    procs = [int(p) for p in args.num_proc.split(",") if p]
    if args.jinja:
        pack = jinja_pack(REPO / "templates" / "dialogsum", args.work / "dialogsum-jinja")
        args.ik_arg += ["--templates", str(pack)]
    compile_bytecode()
    phase_flag = {"auto": None, "none": None}.get(args.phase_flag, args.phase_flag)
    if args.phase_flag == "auto":
        phase_flag = detect_phase_flag()
    started = time.time()
    results: list[dict[str, Any]] = []
    table = []
    for scale in scales:
        replica = args.work / f"dialogsum-x{scale}"
        dialogues = write_dialogsum_replica(source, scale, replica)
        print(
            f"# render dialogsum x{scale}: {dialogues:,} dialogues, --assignment all, "
            f"repeats {args.repeats} (median); phase flag: {phase_flag or 'none'}",
            flush=True,
        )
        base_runs = []
        sides = [(p, mode == "cold") for p in procs for mode in modes]
        ours_runs: dict[tuple[int, bool], list[dict[str, Any]]] = {side: [] for side in sides}
        cache = args.work / "ik-cache"  # instructkit's cache for these runs only
        out = args.work / "ik-out"
        for _ in range(args.repeats):  # interleaved, so that load drifts hit both sides
            if not args.no_baseline:
                base_runs.append(
                    run_baseline(
                        replica, args.work / "baseline-out", REPO / "templates" / "dialogsum"
                    )
                )
            for p, cold in sides:  # timed as users run it: -q, no profile
                ours_runs[p, cold].append(
                    run_instructkit(replica, out, p, None, args.ik_arg, cache, cold)
                )
        profiled = {}  # one more run each with the phase profile, not in the timings
        if phase_flag:
            for p, cold in sides:
                profiled[p, cold] = run_instructkit(
                    replica, out, p, phase_flag, args.ik_arg, cache, cold
                )
        base = None
        if base_runs:
            base = {
                "wall_s": median([r["wall_s"] for r in base_runs]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in base_runs),
                "pairs": base_runs[0]["pairs"],
                "phases": base_runs[len(base_runs) // 2]["phases"],
                "runs": base_runs,
            }
            table.append(
                [
                    f"x{scale}", "per-row Jinja + datasets", "-", f"{base['pairs']:,}",
                    fmt(base["wall_s"], ".1f"), fmt(base["pairs"] / base["wall_s"]), "1.00x",
                    fmt(base["peak_rss_mb"]),
                ]
            )  # fmt: skip
            phases = ", ".join(f"{k} {v:.1f}s" for k, v in base["phases"].items())
            print(f"  baseline phases: {phases}")
        for (p, cold), runs in ours_runs.items():
            ours = {
                "wall_s": median([r["wall_s"] for r in runs]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "pairs": runs[0]["pairs"],
                "runs": runs,
            }
            table.append(
                [
                    f"x{scale}", f"instructkit render ({'cold' if cold else 'warm'})", str(p),
                    f"{ours['pairs']:,}",
                    fmt(ours["wall_s"], ".1f"), fmt(ours["pairs"] / ours["wall_s"]),
                    f"{base['wall_s'] / ours['wall_s']:.2f}x" if base else "-",
                    fmt(ours["peak_rss_mb"]),
                ]
            )  # fmt: skip
            side = "cold" if cold else "warm"
            if profiled.get((p, cold), {}).get("phase_output"):
                ours["profiled_run"] = profiled[p, cold]
                print(f"  instructkit phases ({side}, num_proc={p}; a run with {phase_flag}):")
                for line in profiled[p, cold]["phase_output"]:
                    print(f"    {line}")
            if base and base["pairs"] != ours["pairs"]:
                print(f"  NOTE: pair counts differ: baseline {base['pairs']}, ours {ours['pairs']}")
            results.append(
                {"scale": scale, "dialogues": dialogues, "num_proc": p, "input_cache": side,
                 "instructkit": ours, "baseline": base}
            )  # fmt: skip
    print()
    print_table(
        ["scale", "side", "num_proc", "pairs", "wall (s)", "pairs/s", "vs baseline", "peak RSS MB"],
        table,
    )
    if len(scales) >= 2:
        for p in procs:
            by_scale = {
                r["scale"]: r
                for r in results
                if r["num_proc"] == p
                and r["input_cache"] == ("cold" if "cold" in modes else "warm")
            }
            lo, hi = min(by_scale), max(by_scale)
            peaks = {s: r["instructkit"]["peak_rss_mb"] for s, r in by_scale.items()}
            print(f"num_proc={p}: peak RSS x{hi} / x{lo} = {peaks[hi] / peaks[lo]:.2f}")
    write_json(
        args.json,
        {
            "benchmark": "bench_render_process",
            "args": {k: v for k, v in vars(args).items() if k != "baseline_child"},
            "phase_flag": phase_flag,
            "machine": machine_info(),
            "versions": library_versions(("datasets", "pyarrow", "jinja2")),
            "results": results,
            "seconds": time.time() - started,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

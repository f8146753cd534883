"""The main job end to end: catastrophic forgetting shown, and cured, on a laptop.

One command runs the real pipeline — render → mix → train → evaluate — on dialogues that ship
with the project (or any folder in DialogSum's layout) and a tiny model built on the fly:

0. teach a fresh tiny model task A (dialogue → topic): the "base", so it has something to forget;
1. from the base: (a) full fine-tuning on task B (dialogue → summary) only, (b) full fine-tuning
   on an A+B mixture, (c) LoRA on B, (d) prompt tuning on B;
2. the forgetting report: every model on A and B test, as a table, JSON and a PNG chart, with
   the loss probe (completion loss on A and B, and on a plain-text sample);
3. forgetting over training: the checkpoints of (a) and (b) scored on A and B, as a curve.

The adapters leave the base weights untouched, so with the adapter removed (c) and (d) score
exactly what the base scores on A; the report's base column is that number.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import atomic_output_dir, open_split
from instructkit.errors import InstructkitError
from instructkit.evaluate.predictions_cache import PredictionCache
from instructkit.paths import demo_data_dir

TASK_A = "dialogsum_topic"
TASK_B = "dialogsum"
SHIPPED_DATA = demo_data_dir()


@dataclass
class DemoRecipe:
    """Sizes measured to show the effect in a few minutes on 2 CPU cores (docs/demo-notes.md)."""

    # a tiny Llama learned task A better and faster than GPT-2 or T5 of the same budget
    arch: str = "llama"
    hidden_size: int = 64
    layers: int = 2
    vocab_size: int = 1024
    # one phrasing per task keeps the tiny model's job small enough to learn in seconds
    template_a: str = "topic_before"
    template_b: str = "summarize_before"
    base_steps: int = 400
    tune_steps: int = 300
    batch_size: int = 16
    full_lr: float = 3e-3
    lora_lr: float = 1e-2
    lora_r: int = 16
    # the base only ever produced topics: LoRA on the attention alone cannot reach summary
    # words, so the output layer trains too (measured: B stays ~20 ROUGE-L without it)
    lora_modules_to_save: str = "lm_head"
    prompt_tuning_lr: float = 0.3
    virtual_tokens: int = 20
    eval_rows: int = 100
    # checkpoints kept along full-B and mix-AB for the curve (every tune_steps // curve_points)
    curve_points: int = 4
    max_new_tokens: int = 40
    seed: int = 0
    threads: int = 1


Step = Callable[[str], None]


def check_demo_data(data: Path) -> Path:
    """``data`` if it holds DialogSum-layout files (both demos need them), else a one-line error."""
    if not (data / "dialogsum.train.jsonl").is_file():
        raise InstructkitError(
            f"No DialogSum-layout data in '{data}' (dialogsum.train.jsonl): pass --data-dir."
        )
    return data


def run_demo(
    out: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    model: str | None = None,
    recipe: DemoRecipe | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    echo: Step = print,
) -> Any:
    """Run the whole experiment into ``out`` and return the forgetting report."""
    recipe = recipe or DemoRecipe()
    data = check_demo_data(Path(data_dir) if data_dir else SHIPPED_DATA)
    with atomic_output_dir(out, overwrite, "demo", [data, model]) as tmp:
        report = _run_steps(tmp, data, model, recipe, quiet, echo, final=Path(out))
    report.out = Path(out)
    return report


def _run_steps(
    tmp: Path, data: Path, model: str | None, recipe: DemoRecipe, quiet: bool, echo: Step,
    final: Path,
) -> Any:  # fmt: skip
    import torch

    # Tiny models are bound by per-op overhead: one thread was 5-10x faster than two on a busy
    # 2-core machine (measured), and no slower on an idle one.
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    timer = StepTimer(echo)
    with timer("render task A (topic) and task B (summary)"):
        task_a = _render(data, TASK_A, recipe.template_a, tmp / "data" / "topic", recipe)
        task_b = _render(data, TASK_B, recipe.template_b, tmp / "data" / "summary", recipe)
    with timer("mix A+B for multitask fine-tuning"):
        mix = _mix(task_a, task_b, tmp / "data" / "mix", recipe)
    with timer("build the tiny base model" if model is None else f"use model {model}"):
        init = model or str(_build_tiny_model(tmp / "models" / "init", [task_a, task_b], recipe))
    runs = tmp / "runs"
    with timer(f"teach the base task A ({recipe.base_steps} steps, full)"):
        base = _train(
            task_a, "full", init, runs / "base", recipe.base_steps, recipe.full_lr, recipe, quiet,
        )  # fmt: skip
    keep = {"keep_checkpoints": f"every:{max(1, recipe.tune_steps // recipe.curve_points)}"}
    trainings: list[tuple[str, Path, str, float, dict[str, Any]]] = [
        ("full-B", task_b, "full", recipe.full_lr, keep),
        ("mix-AB", mix, "full", recipe.full_lr, keep),
        ("lora-B", task_b, "lora", recipe.lora_lr,
         {"r": recipe.lora_r, "alpha": 2 * recipe.lora_r, "target_modules": "all-linear",
          "modules_to_save": recipe.lora_modules_to_save}),
        ("prompt-B", task_b, "prompt-tuning", recipe.prompt_tuning_lr,
         {"num_virtual_tokens": recipe.virtual_tokens}),
    ]  # fmt: skip
    models = {"base": str(base)}
    for name, dataset, backend, lr, extra in trainings:
        with timer(f"{name}: {backend} on {'A+B' if dataset == mix else 'B'}"):
            path = _train(
                dataset, backend, str(base), runs / name, recipe.tune_steps, lr, recipe, quiet,
                extra,
            )  # fmt: skip
            models[name] = str(path)
    cache = PredictionCache(tmp / ".cache")  # the curve reuses the report's base and finals
    with timer(f"forgetting report ({recipe.eval_rows} test rows per task)"):
        report = _report(models, [task_a, task_b], tmp / "report", recipe, quiet, cache)
    with timer("forgetting over training: checkpoints of full-B and mix-AB on A and B"):
        runs_to_curve = {name: models[name] for name in ("full-B", "mix-AB")}
        _curve(runs_to_curve, [task_a, task_b], tmp / "curve", recipe, quiet, cache)
    shutil.rmtree(tmp / ".cache", ignore_errors=True)
    _write_recipe(tmp, recipe, data, model)
    relocate_paths(report, tmp, final)
    return report


class StepTimer:
    """Prints each step with its number and wall time: the demo narrates what it runs."""

    def __init__(self, echo: Step) -> None:
        self.echo = echo
        self.number = 0

    def __call__(self, title: str) -> StepTimer:
        self.number += 1
        self.title = title
        return self

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        self.echo(f"[{self.number}] {self.title} ...")

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.echo(f"    done in {time.perf_counter() - self.started:.1f} s")


def _render(data: Path, pack: str, template: str, out: Path, recipe: DemoRecipe) -> Path:
    from instructkit.render.run import RenderOptions, render_dataset

    options = RenderOptions(data_dir=str(data), template_ids=[template], seed=recipe.seed)
    render_dataset(pack, out, options)
    return out


def _mix(task_a: Path, task_b: Path, out: Path, recipe: DemoRecipe) -> Path:
    from instructkit.mix.run import mix_datasets
    from instructkit.mix.spec import load_mix_spec

    size_b = open_split(task_b, "train").num_rows
    spec = load_mix_spec(
        {
            "strategy": "weights",
            # every B row once, plus as many A rows: the same steps as the B-only runs
            "total": 2 * size_b,
            "seed": recipe.seed,
            "tasks": [
                {"path": str(task_a), "weight": 1},
                {"path": str(task_b), "weight": 1},
            ],
        }
    )
    mix_datasets(spec, out, quiet=True)
    return out


def _build_tiny_model(out: Path, datasets: list[Path], recipe: DemoRecipe) -> Path:
    from instructkit.tiny import save_tiny_model

    return save_tiny_model(
        out, recipe.arch, texts=corpus_of(datasets), seed=recipe.seed, vocab_size=recipe.vocab_size,
        size=recipe.hidden_size, layers=recipe.layers,
    )  # fmt: skip


def corpus_of(datasets: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Every prompt and completion of the datasets' train splits: text for a tokenizer."""
    corpus: list[str] = []
    for dataset in datasets:
        table = open_split(dataset, "train")
        corpus += table.column("prompt").to_pylist() + table.column("completion").to_pylist()
    return corpus


def _train(
    dataset: Path, backend: str, model: str, out: Path, steps: int, lr: float,
    recipe: DemoRecipe, quiet: bool = True, extra: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    from instructkit.train.run import run_training

    options = {
        "max_steps": steps,
        "learning_rate": lr,
        "batch_size": recipe.batch_size,
        "seed": recipe.seed,
        "logging_steps": max(1, steps // 10),
        "eval_steps": max(1, steps // 5),
        "max_eval_samples": 64,
        "save_steps": steps + 1,
        "lr_scheduler": "constant_with_warmup",
        "warmup": 0.05,
        **(extra or {}),
    }
    # not quiet: a bar on a terminal, a line every 30 s in a log (a step takes minutes)
    run_training(dataset, backend, model, out, options, quiet=quiet)
    return out


def _report(
    models: dict[str, str], datasets: list[Path], out: Path, recipe: DemoRecipe, quiet: bool,
    cache: PredictionCache,
) -> Any:  # fmt: skip
    from instructkit.evaluate.forgetting import compare_models
    from instructkit.evaluate.probes import ProbeOptions

    return compare_models(
        models, datasets, "test", out, **_eval_options(recipe), quiet=quiet, cache=cache,
        probe=ProbeOptions(max_rows=recipe.eval_rows),
    )  # fmt: skip


def _eval_options(recipe: DemoRecipe) -> dict[str, Any]:
    from instructkit.evaluate.generate import GenerationOptions
    from instructkit.evaluate.run import ScoringOptions

    return {
        "generation": GenerationOptions(max_new_tokens=recipe.max_new_tokens, batch_size=32),
        "scoring": ScoringOptions(bootstrap=200, seed=recipe.seed),
        "max_rows": recipe.eval_rows,
    }


def _curve(
    runs: dict[str, str], datasets: list[Path], out: Path, recipe: DemoRecipe, quiet: bool,
    cache: PredictionCache,
) -> Any:  # fmt: skip
    from instructkit.evaluate.curves import score_curves

    return score_curves(
        runs, datasets, "test", out, **_eval_options(recipe), quiet=quiet, cache=cache
    )


def _write_recipe(tmp: Path, recipe: DemoRecipe, data: Path, model: str | None) -> None:
    import json

    record = {"recipe": asdict(recipe), "data_dir": str(data), "model": model or "tiny (built)"}
    (tmp / "demo.json").write_text(
        json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


def relocate_paths(report: Any, tmp: Path, final: Path) -> None:
    """Point every recorded path at ``final``, which the temporary directory is about to become.

    Adapters record their base model's absolute path and manifests record their inputs': left
    as they are, they would name a directory that no longer exists after the rename.
    """
    for path in tmp.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        if str(tmp) in text:
            path.write_text(text.replace(str(tmp), str(final.resolve())), encoding="utf-8")
    for entry in report.models:
        entry.path = entry.path.replace(str(tmp), str(final.resolve()))
        if entry.adapter:
            entry.adapter = entry.adapter.replace(str(tmp), str(final.resolve()))


ADAPTER_RUNS = ("lora-B", "prompt-B")
MIN_BASE_A = 10.0  # below this the base knows too little of A for forgetting to be measured


def verdict(report: Any) -> list[str]:
    """Plain-language findings read off the report's numbers (never assumed)."""
    rows = {row.task: row for row in report.tasks}
    if TASK_A not in rows or TASK_B not in rows:
        return []
    a, b = rows[TASK_A], rows[TASK_B]
    base_a, base_b = a.scores["base"].value, b.scores["base"].value
    lines = [f"base: task A {base_a:.1f}, task B {base_b:.1f} (ROUGE-L)"]
    if base_a < MIN_BASE_A:
        return lines + [
            f"the base never learned task A (below {MIN_BASE_A} ROUGE-L), so there is nothing "
            "to forget: raise --base-steps, or start from a pretrained --model"
        ]
    for name in [m.name for m in report.models[1:]]:
        gain = b.scores[name].value - base_b
        kept_a = a.scores[name].value >= 0.75 * base_a
        learned = "learned B" if gain >= 5 else "did NOT learn B"
        line = f"{name}: {learned} ({gain:+.1f}); task A {a.scores[name].value:.1f}"
        if name in ADAPTER_RUNS:
            line += f" with the adapter on, {base_a:.1f} with it removed (base weights untouched)"
        else:
            line += " (A kept)" if kept_a else " (A FORGOTTEN)"
        lines.append(line)
    return lines

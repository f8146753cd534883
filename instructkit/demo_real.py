"""The main job on a real pretrained instruct model: forgetting shown where it actually happens.

``instructkit demo --model smollm2-135m-instruct`` runs the story the lectures tell, on a model
that already does several things (no task is taught first):

1. before: the base zero-shot, through its chat template, on three tasks — A, name a
   dialogue's topic; B, summarize it; and G, short general questions with exact answers
   (arithmetic, comparisons, opposites, capitals, repeating a word), written by this module;
2. single-task fine-tuning on B: full, LoRA, prompt tuning (and IA³ when the example plugin
   is installed and asked for);
3. the cure by data: full fine-tuning with the same budget on an exact mixture of B with A and G;
4. after: the forgetting report over every task and model, with bootstrap intervals, plus a
   "LoRA, adapter removed" column that is the base exactly — checked on the logits, not assumed.

Rows are string rows trained and prompted with ``chat_template=on`` (one user turn, one assistant
turn): the model sees its own ChatML format. Switching to the conversational render form later
changes nothing the model sees.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import (
    SCHEMA,
    atomic_output_dir,
    open_split,
    write_dataset_dict,
    write_split,
)
from instructkit.artifacts.manifest import MANIFEST_NAME, write_manifest
from instructkit.demo import StepTimer, check_demo_data, relocate_paths
from instructkit.errors import InstructkitError

TASK_A = "dialogsum_topic"
TASK_B = "dialogsum"
TASK_G = "general_qa"
REAL_MODEL = "smollm2-135m-instruct"
ADAPTER_OFF = "lora-B-off"

Step = Callable[[str], None]


@dataclass
class RealRecipe:
    """Sizes chosen to fit 20 minutes on 2 CPU cores (README; measured under load, see there)."""

    template_a: str = "topic_before"
    template_b: str = "summarize_before"
    qa_train_rows: int = 240
    # every G test row is scored: short answers are cheap, and 96 rows narrow G's interval
    # (the skill where forgetting is looked for) to about +-10 points
    qa_test_rows: int = 96
    steps: int = 12
    batch_size: int = 8
    # 5e-4, not the gentler 1e-4: at 1e-4, 12 steps change the answer style and leave the
    # general questions intact (G 47.9 -> 55.2); at 5e-4 full-B loses them (G 21.9), which is
    # the forgetting the lectures describe, measured (docs/real-demo.md)
    full_lr: float = 5e-4
    lora_lr: float = 1e-3
    lora_r: int = 16
    prompt_tuning_lr: float = 3e-2
    virtual_tokens: int = 16
    # started from the task's own instruction, not random vectors: randomly started, 12 steps
    # left a soft prompt that made the model babble (B fell from 31.7 to 7.6, measured)
    prompt_init_text: str = "Summarize this dialogue in one sentence:"
    ia3: bool = False
    ia3_lr: float = 3e-3
    # the shipped dialogues are 40-60 words; real DialogSum ones are longer and get cut from
    # the middle (head and tail kept) so a step costs the same
    max_source_length: int = 192
    max_target_length: int = 48
    eval_rows: int = 24  # of A and of B (G: all qa_test_rows)
    max_new_tokens: int = 40
    eval_batch_size: int = 24
    bootstrap: int = 1000
    seed: int = 0
    threads: int = 2


# ---------------------------------------------------------------- task G: our own questions

_OPPOSITES = [
    ("hot", ["cold"]), ("big", ["small", "little"]), ("fast", ["slow"]), ("up", ["down"]),
    ("day", ["night"]), ("happy", ["sad", "unhappy"]), ("open", ["closed", "shut"]),
    ("early", ["late"]), ("full", ["empty"]), ("wet", ["dry"]), ("light", ["dark", "heavy"]),
    ("tall", ["short"]), ("win", ["lose"]), ("push", ["pull"]), ("hard", ["soft", "easy"]),
    ("rich", ["poor"]), ("strong", ["weak"]), ("above", ["below"]), ("inside", ["outside"]),
    ("buy", ["sell"]), ("left", ["right"]), ("north", ["south"]), ("black", ["white"]),
    ("before", ["after"]),
]  # fmt: skip
_CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"),
    ("Spain", "Madrid"), ("Egypt", "Cairo"), ("Russia", "Moscow"), ("England", "London"),
    ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Norway", "Oslo"), ("Ireland", "Dublin"),
    ("Austria", "Vienna"), ("Poland", "Warsaw"), ("China", "Beijing"), ("Kenya", "Nairobi"),
]  # fmt: skip
_PLURALS = [
    ("mouse", "mice"), ("child", "children"), ("foot", "feet"), ("tooth", "teeth"),
    ("man", "men"), ("woman", "women"), ("goose", "geese"), ("person", "people"),
    ("leaf", "leaves"), ("knife", "knives"), ("wolf", "wolves"), ("ox", "oxen"),
]  # fmt: skip


def _question(rng: random.Random) -> tuple[str, str, list[str]]:
    """(question, a one-sentence answer for training, the answers ``contains`` accepts).

    The answer never occurs in the question, so ``contains`` cannot be satisfied by echoing it
    (an earlier "which is larger, 40 or 25?" and "repeat this word" scored "37 is larger than
    49" as right). Training answers are whole sentences in the base's own style ("The capital
    city of Greece is Athens."): answer-only training rows changed the format and, at a dozen
    steps, cost the mixture the knowledge itself (measured, docs/real-demo.md).
    """
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.", [str(a + b)]
    if kind == 1:
        n = rng.randint(10, 98)
        return (
            f"What number comes right after {n}?",
            f"The number that comes right after {n} is {n + 1}.",
            [str(n + 1)],
        )
    if kind == 2:
        word, answers = rng.choice(_OPPOSITES)
        return (
            f"What is the opposite of the word '{word}'?",
            f"The opposite of '{word}' is '{answers[0]}'.",
            answers,
        )
    if kind == 3:
        country, city = rng.choice(_CAPITALS)
        return (
            f"What is the capital city of {country}?",
            f"The capital city of {country} is {city}.",
            [city],
        )
    word, plural = rng.choice(_PLURALS)
    return (
        f"What is the plural of the word '{word}'?",
        f"The plural of '{word}' is '{plural}'.",
        [plural],
    )


def general_qa_splits(train_rows: int, test_rows: int, seed: int = 0) -> dict[str, list[Any]]:
    """Seeded (question, answer, references) items; test questions never appear in train."""
    rng = random.Random(f"general_qa:{seed}")
    seen: set[str] = set()
    splits: dict[str, list[Any]] = {"test": [], "train": []}
    for split, count in (("test", test_rows), ("train", train_rows)):
        attempts = 0
        while len(splits[split]) < count and attempts < 100 * count:
            attempts += 1
            item = _question(rng)
            if item[0] in seen:
                continue
            seen.add(item[0])
            splits[split].append(item)
    return splits


def write_general_qa(out: Path, train_rows: int, test_rows: int, seed: int = 0) -> Path:
    """Task G as an instructkit dataset directory (train + test), scored by ``contains``."""
    import pyarrow as pa

    out.mkdir(parents=True, exist_ok=True)
    splits = general_qa_splits(train_rows, test_rows, seed)
    for split, items in splits.items():
        rows: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
        for index, (prompt, answer, answers) in enumerate(items):
            values = {
                "prompt": prompt,
                "completion": answer,
                "references": answers,
                "task": TASK_G,
                "template_id": f"{TASK_G}/question",
                "example_id": f"{split}_{index}",
                "source_split": split,
                "source_index": index,
            }
            for name in SCHEMA.names:
                rows[name].append(values[name])
        write_split(out, split, [pa.table(rows, schema=SCHEMA)], schema=SCHEMA)
    write_dataset_dict(out, list(splits))
    write_manifest(
        out,
        {
            "kind": "render",
            "command": "instructkit.demo_real.write_general_qa",
            "task": TASK_G,
            "metrics": ["contains"],
            "seed": seed,
            "counts": {split: len(items) for split, items in splits.items()},
        },
    )
    return out


# ---------------------------------------------------------------- the run


def run_real_demo(
    out: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    model: str = REAL_MODEL,
    recipe: RealRecipe | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    echo: Step = print,
) -> Any:
    """Run the real-model experiment into ``out`` and return the forgetting report."""
    from instructkit.pretrained import MODELS, get_model

    recipe = recipe or RealRecipe()
    data = check_demo_data(Path(data_dir))
    started = time.perf_counter()
    model_dir = str(get_model(model)) if model in MODELS else model
    # the same --overwrite rule as the tiny demo: only a demo output, never an input
    with atomic_output_dir(out, overwrite, "demo", [data, model_dir]) as tmp:
        report, timings = _run_steps(tmp, data, model_dir, recipe, quiet, echo)
        timings["total"] = round(time.perf_counter() - started, 1)
        record = {
            "recipe": asdict(recipe), "data_dir": str(data), "model": model,
            "model_dir": model_dir, "timings_s": timings,
        }  # fmt: skip
        (tmp / "demo.json").write_text(
            json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
        relocate_paths(report, tmp, Path(out))
    report.out = Path(out)
    report.timings = timings
    return report


def _run_steps(
    tmp: Path, data: Path, model: str, recipe: RealRecipe, quiet: bool, echo: Step
) -> tuple[Any, dict[str, float]]:
    import torch

    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    timer = _Timed(StepTimer(echo))
    with timer("render A (topic), B (summary) and G (general questions)"):
        task_a = _render(data, TASK_A, recipe.template_a, tmp / "data" / "topic", recipe)
        task_b = _render(data, TASK_B, recipe.template_b, tmp / "data" / "summary", recipe)
        task_g = write_general_qa(
            tmp / "data" / "general", recipe.qa_train_rows, recipe.qa_test_rows, recipe.seed
        )
    rows = recipe.steps * recipe.batch_size
    with timer(f"train sets: {rows} rows of B alone, and an exact B+A+G mixture of {rows}"):
        only_b = _mix({task_b: 1}, rows, tmp / "data" / "train-B", recipe)
        mix = _mix({task_b: 2, task_a: 1, task_g: 1}, rows, tmp / "data" / "train-mix", recipe)
    runs = tmp / "runs"
    trainings: list[tuple[str, Path, str, float, dict[str, Any]]] = [
        ("full-B", only_b, "full", recipe.full_lr, {}),
        ("mix-BAG", mix, "full", recipe.full_lr, {}),
        ("lora-B", only_b, "lora", recipe.lora_lr,
         {"r": recipe.lora_r, "alpha": 2 * recipe.lora_r, "target_modules": "all-linear"}),
        ("prompt-B", only_b, "prompt-tuning", recipe.prompt_tuning_lr,
         {"num_virtual_tokens": recipe.virtual_tokens, "init": "text",
          "init_text": recipe.prompt_init_text}),
    ]  # fmt: skip
    if recipe.ia3:
        trainings.append(("ia3-B", only_b, "ia3", recipe.ia3_lr, {}))
    models = {"base": model}
    for name, dataset, backend, lr, extra in trainings:
        what = "B+A+G mixture" if dataset == mix else "B only"
        with timer(f"{name}: {backend}, {recipe.steps} steps x {recipe.batch_size} on {what}"):
            models[name] = str(_train(dataset, backend, model, runs / name, lr, recipe, extra))
    with timer(f"check: LoRA with the adapter removed is the base (logits on {TASK_B} prompts)"):
        diff = adapter_removed_difference(model, models["lora-B"], task_b, rows=4)
    tasks = [
        _first_test_rows(task_a, recipe.eval_rows, tmp / "data" / "topic-eval"),
        _first_test_rows(task_b, recipe.eval_rows, tmp / "data" / "summary-eval"),
        task_g,
    ]
    with timer(
        f"evaluate {len(models)} models x 3 tasks ({recipe.eval_rows} test rows of A and of B, "
        f"{recipe.qa_test_rows} of G; greedy, <= {recipe.max_new_tokens} new tokens)"
    ):
        report = _report(models, tasks, tmp / "report", recipe, quiet)
    add_adapter_removed(report, models["lora-B"], diff)
    from instructkit.evaluate.forgetting import write_report

    write_report(report, tmp / "report")
    return report, timer.timings


class _Timed:
    """The tiny demo's step timer, also keeping each step's seconds for demo.json."""

    def __init__(self, timer: Any) -> None:
        self.timer = timer
        self.timings: dict[str, float] = {}

    def __call__(self, title: str) -> _Timed:
        self.timer(title)
        return self

    def __enter__(self) -> None:
        self.timer.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.timer.__exit__(*exc)
        self.timings[self.timer.title] = round(time.perf_counter() - self.timer.started, 1)


def _render(data: Path, pack: str, template: str, out: Path, recipe: RealRecipe) -> Path:
    from instructkit.render.run import RenderOptions, render_dataset

    options = RenderOptions(data_dir=str(data), template_ids=[template], seed=recipe.seed)
    render_dataset(pack, out, options)
    return out


def _first_test_rows(dataset: Path, rows: int, out: Path) -> Path:
    """``dataset``'s first ``rows`` test rows with its manifest (so its task and metrics).

    The evaluator's row limit is one number for every task; this gives A and B fewer rows
    than G, whose short answers are cheap to generate.
    """
    table = open_split(dataset, "test")
    out.mkdir(parents=True)
    write_split(out, "test", [table.slice(0, rows)], schema=table.schema)
    write_dataset_dict(out, ["test"])
    shutil.copyfile(dataset / MANIFEST_NAME, out / MANIFEST_NAME)
    return out


def _mix(weights: dict[Path, int], total: int, out: Path, recipe: RealRecipe) -> Path:
    from instructkit.mix.run import mix_datasets
    from instructkit.mix.spec import load_mix_spec

    spec = load_mix_spec(
        {
            "strategy": "weights",
            "total": total,
            "seed": recipe.seed,
            "tasks": [{"path": str(path), "weight": w} for path, w in weights.items()],
        }
    )
    mix_datasets(spec, out, quiet=True)
    return out


def _train(
    dataset: Path, backend: str, model: str, out: Path, lr: float, recipe: RealRecipe,
    extra: dict[str, Any],
) -> Path:  # fmt: skip
    from instructkit.train.run import run_training

    options = {
        "max_steps": recipe.steps,
        "learning_rate": lr,
        "batch_size": recipe.batch_size,
        "seed": recipe.seed,
        "logging_steps": max(1, recipe.steps // 8),
        "save_steps": recipe.steps + 1,
        # no warm-up: at a dozen steps a warm-up step at lr 0 would waste a twelfth of the budget
        "lr_scheduler": "constant",
        "warmup": 0.0,
        "chat_template": "on",
        "max_source_length": recipe.max_source_length,
        "max_target_length": recipe.max_target_length,
        "eval_steps": 0,  # one small validation loss, at the end
        "max_eval_samples": 8,
        **extra,
    }
    run_training(dataset, backend, model, out, options, quiet=True)
    return out


def adapter_removed_difference(
    base: str, adapter: str, dataset: str | os.PathLike[str], rows: int = 4
) -> float:
    """Largest |logit difference| between the base and base+adapter with the adapter disabled.

    0.0 means the adapter leaves the base weights untouched: with it removed, every greedy
    prediction — hence every score — is the base's.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    prompts = open_split(dataset, "test").column("prompt").to_pylist()[:rows]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    with torch.no_grad():
        before = model(**batch).logits
        wrapped = PeftModel.from_pretrained(model, adapter).eval()
        with wrapped.disable_adapter():
            after = wrapped(**batch).logits
    return float((after - before).abs().max())


def add_adapter_removed(report: Any, adapter: str, difference: float) -> None:
    """Add the "adapter removed" column: the base's scores, valid because the logits match."""
    from instructkit.evaluate.forgetting import ModelEntry

    if difference != 0.0:
        raise InstructkitError(
            f"LoRA with its adapter removed differs from the base (max |logit diff| "
            f"{difference:g}): the base weights were changed."
        )
    base = report.models[0]
    report.models.append(ModelEntry(ADAPTER_OFF, base.path, None, base.base, []))
    for row in report.tasks:
        row.scores[ADAPTER_OFF] = row.scores[base.name]


def _report(
    models: dict[str, str], datasets: list[Path], out: Path, recipe: RealRecipe, quiet: bool
) -> Any:
    from instructkit.evaluate.forgetting import compare_models
    from instructkit.evaluate.generate import GenerationOptions
    from instructkit.evaluate.run import ScoringOptions

    return compare_models(
        models,
        datasets,
        "test",
        out,
        generation=GenerationOptions(
            max_new_tokens=recipe.max_new_tokens,
            batch_size=recipe.eval_batch_size,
            max_source_length=recipe.max_source_length,
            chat_template="on",
        ),
        scoring=ScoringOptions(bootstrap=recipe.bootstrap, seed=recipe.seed),
        quiet=quiet,
    )


# ---------------------------------------------------------------- the story


def _inside(value: float, score: Any) -> bool:
    return score.low is not None and score.low <= value <= score.high


def real_verdict(report: Any) -> list[str]:
    """The story, read off the report's numbers (never assumed)."""
    rows = {row.task: row for row in report.tasks}
    if not {TASK_A, TASK_B, TASK_G} <= set(rows):
        return []
    names = [m.name for m in report.models[1:]]
    b = rows[TASK_B]
    others = [rows[TASK_A], rows[TASK_G]]
    base_b = b.scores["base"].value
    lines = [
        "base (zero-shot, chat template): "
        + ", ".join(f"{r.task} {r.scores['base'].format(1)}" for r in report.tasks)
    ]
    for name in names:
        if name == ADAPTER_OFF:
            lines.append(
                f"{name}: LoRA with the adapter removed = the base exactly "
                "(logits identical, checked), so every skill is back"
            )
            continue
        gain = b.scores[name].value - base_b
        costs = []
        for row in others:
            base, score = row.scores["base"], row.scores[name]
            delta = score.value - base.value
            if _inside(base.value, score) or delta >= 0:
                verdict = "kept"
            else:
                verdict = "LOST" if delta < 0 and not _inside(score.value, base) else "dropped"
            costs.append(f"{row.task} {base.value:.1f} -> {score.value:.1f} ({verdict})")
        lines.append(
            f"{name}: B {base_b:.1f} -> {b.scores[name].value:.1f} ({gain:+.1f}); "
            + "; ".join(costs)
        )
    if "prompt-B" in names:
        gained = b.scores["prompt-B"].value - base_b
        full = b.scores.get("full-B")
        ref = f" against full fine-tuning's {full.value - base_b:+.1f}" if full else ""
        lines.append(
            f"prompt tuning reached {gained:+.1f} on B{ref}: on a 135M model it lags, as expected "
            "(it catches up only on large models)"
        )
    return lines


def format_timings(timings: dict[str, float]) -> list[str]:
    return [f"{seconds:8.1f} s  {title}" for title, seconds in timings.items()]

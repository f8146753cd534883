"""lm-evaluation-harness as an optional evaluation engine (the ``lm-eval`` extra).

:func:`run_harness` runs harness tasks — local YAMLs through ``include_path`` (for example
those ``instructkit templates lm-eval`` exports), or hub tasks such as ``mmlu``,
``hellaswag``, ``arc_easy``, ``ifeval`` — for a model, or a base model plus a peft adapter
(``peft=``), and returns ``{task: {metric: value}}`` for the forgetting report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from instructkit.errors import InstructkitError

# ---------------------------------------------------------------- the harness as an engine


@dataclass
class HarnessOptions:
    """Harness tasks to run for every model of a report (``--lm-eval-tasks``)."""

    tasks: Sequence[str]
    include_path: str | None = None
    limit: int | None = None
    batch_size: int = 8
    num_fewshot: int | None = None


class HarnessMissing(InstructkitError):
    """lm-evaluation-harness is not installed (the ``lm-eval`` extra)."""


def harness_available() -> bool:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def run_harness(
    model: str,
    tasks: Sequence[str],
    adapter: str | None = None,
    include_path: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    num_fewshot: int | None = None,
    device: str | None = None,
) -> dict[str, dict[str, float]]:
    """Run harness tasks for a model (or base + peft adapter): ``{task: {metric: value}}``.

    Metrics keep the harness's names without the filter suffix (``rougeL``, ``acc``,
    ``acc_norm``, ``exact_match``); standard errors come as ``<metric>_stderr``.
    """
    if not harness_available():
        raise HarnessMissing(
            "lm-evaluation-harness is not installed: pip install 'instructkit[lm-eval]'."
        )
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from instructkit.modeling import adapter_base_model, is_adapter_dir

    if adapter is None and is_adapter_dir(model):
        model, adapter = adapter_base_model(model), model
    model_args = f"pretrained={model}"
    if adapter is not None:
        model_args += f",peft={adapter}"
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    results = simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(tasks),
        task_manager=manager,
        limit=limit,
        batch_size=batch_size,
        num_fewshot=num_fewshot,
        device=device or ("cuda" if _has_cuda() else "cpu"),
        log_samples=False,
    )
    if results is None:  # a non-zero rank under accelerate
        return {}
    table: dict[str, dict[str, float]] = {}
    for task, metrics in results["results"].items():
        values = {}
        for key, value in metrics.items():
            if not isinstance(value, (int, float)) or key.startswith(("alias", "sample_len")):
                continue
            name, _, _filter = key.partition(",")
            values[name] = float(value)
        table[task] = values
    return table


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def harness_markdown(
    harness: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str
) -> list[str]:
    """The harness results as a markdown table: a row per task and metric, Δ against baseline."""
    if not harness:
        return []
    names = list(harness)
    header = ["harness task", "metric"]
    for name in names:
        header += [name] if name == baseline else [name, f"Δ {name}"]
    lines = [
        "",
        "lm-evaluation-harness (± standard error where the harness gives one), Δ against "
        f"'{baseline}'.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["--:"] * (len(header) - 2)) + "|",
    ]
    for task, metric in harness_metrics(harness):
        cells = [task, metric]
        base = harness.get(baseline, {}).get(task, {}).get(metric)
        for name in names:
            values = harness[name].get(task, {})
            value = values.get(metric)
            stderr = values.get(f"{metric}_stderr")
            text = "" if value is None else f"{value:.4g}"
            if value is not None and stderr:
                text += f" ± {stderr:.2g}"
            cells.append(text)
            if name != baseline:
                change = None if value is None or base is None else value - base
                cells.append("" if change is None else f"{change:+.4g}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def harness_metrics(
    harness: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> list[tuple[str, str]]:
    """(task, metric) pairs reported by any model, standard errors left out."""
    pairs: dict[tuple[str, str], None] = {}
    for tasks in harness.values():
        for task, metrics in tasks.items():
            for metric in metrics:
                if not metric.endswith("_stderr"):
                    pairs[(task, metric)] = None
    return list(pairs)

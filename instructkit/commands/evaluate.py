"""CLI command ``evaluate``: generate + score, or the forgetting report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from instructkit.evaluate.metrics import DEFAULT_BOOTSTRAP, MULTI_REF_MODES
from instructkit.hookspecs import hookimpl

MAX_BOOTSTRAP = 100_000  # more resamples change no digit shown, and cost minutes to hours

_MODEL_SPEC_HELP = "NAME=MODEL_OR_ADAPTER"


_EVALUATE_METRIC_HELP = (
    "Score with this metric (repeatable); default: each task's metrics from its template "
    "pack (the dataset manifest), else rouge."
)


def scoring_options(metric_help: str) -> Any:
    return lambda func: _add_scoring_options(func, metric_help)


def _add_scoring_options(func: Any, metric_help: str) -> Any:
    options = [
        click.option("--metric", "metrics", multiple=True, help=metric_help),
        click.option(
            "--num-proc",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Processes that score in parallel (same results for any value).",
        ),
        click.option(
            "--bootstrap",
            type=click.IntRange(min=0, max=MAX_BOOTSTRAP),
            default=DEFAULT_BOOTSTRAP,
            show_default=True,
            help="Bootstrap resamples for the 95% confidence intervals (0: none).",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the bootstrap (and of --do-sample).",
        ),  # fmt: skip
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _generation_options(func: Any) -> Any:
    options = [
        click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True,
                     help="Tokens generated at most per row."),
        click.option("--num-beams", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Beam search width (1: greedy)."),
        click.option("--do-sample", is_flag=True, help="Sample instead of greedy decoding."),
        click.option("--temperature", type=float, default=1.0, show_default=True,
                     help="Sampling temperature (with --do-sample)."),
        click.option("--top-p", type=float, default=1.0, show_default=True,
                     help="Nucleus sampling mass (with --do-sample)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Prompts generated per batch."),
        click.option("--max-source-length", type=click.IntRange(min=1), default=512,
                     show_default=True, help="Prompt tokens kept at most."),
        click.option("--chat-template", type=click.Choice(["auto", "on", "off"]), default="auto",
                     show_default=True,
                     help="Prompt through the tokenizer's chat template: auto = as the model was "
                          "trained, else for conversational rows only."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def split_model_specs(values: list[str], compare: bool) -> tuple[dict[str, str], list[str]]:
    """Split ``NAME=PATH`` model specs from dataset paths (the specs only count with --compare)."""
    models: dict[str, str] = {}
    datasets: list[str] = []
    for value in values:
        name, sep, path = value.partition("=")
        if not compare or not sep or Path(value).exists():
            datasets.append(value)
            continue
        if not name or not path:
            raise click.BadParameter(
                f"'{value}' is not {_MODEL_SPEC_HELP}.", param_hint="--compare"
            )
        if name in models:
            raise click.BadParameter(f"model name '{name}' is used twice.", param_hint="--compare")
        models[name] = path
    return models, datasets


def _check_model_spec(value: str) -> None:
    """A --compare value itself must be NAME=PATH (later models may follow as arguments)."""
    name, sep, path = value.partition("=")
    if not (name and sep and path):
        example = f"{name or 'base'}={path or 'MODEL_DIR'}" if sep else f"base={value}"
        raise click.BadParameter(
            f"'{value}' is not {_MODEL_SPEC_HELP}: write e.g. --compare {example}.",
            param_hint="--compare",
        )


def format_scores(reports: dict[str, Any], with_mode: bool) -> str:
    """Aligned text tables, one per metric: task rows plus an overall row."""
    blocks = []
    first = next(iter(reports.values()))
    for metric, overall in first.overall.items():
        header = ["task"] + (["multi-ref"] if with_mode else []) + ["rows"]
        header += list(overall.scores)
        table = [header]
        for mode, report in reports.items():
            groups = [(t, r[metric]) for t, r in report.tasks.items() if metric in r]
            if len(groups) > 1:
                groups.append(("(overall)", report.overall[metric]))
            for task, result in groups:
                cells = [task] + ([mode] if with_mode else []) + [str(result.num_rows)]
                table.append(cells + [s.format() for s in result.scores.values()])
        has_interval = next(iter(overall.scores.values())).low is not None
        summary = "mean [95% CI]" if has_interval else "mean"
        blocks.append(f"{metric} (x 100, {summary})\n" + _align(table))
    return "\n\n".join(blocks)


def _align(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


@click.command(name="evaluate")
@click.argument("data", nargs=-1, required=True)
@click.option("--model", "-m", help="Model directory, hub name or adapter directory.")
@click.option("--adapter", help="Adapter directory to apply on --model.")
@click.option(
    "--compare",
    multiple=True,
    metavar=_MODEL_SPEC_HELP,
    help="Compare models on every task (the first is the baseline): "
    "--compare base=DIR tuned=DIR ... writes the forgetting report.",
)
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False), help="Output directory."
)
@click.option(
    "--multi-ref",
    type=click.Choice(MULTI_REF_MODES),
    default="max",
    show_default=True,
    help="Reduce several references per row by max, mean or first.",
)
@scoring_options(_EVALUATE_METRIC_HELP)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    help="Evaluate at most N rows per task (the first N, or see --sample-seed).",
)
@click.option("--sample-seed", type=int, help="With --max-rows: a seeded random sample.")
@_generation_options
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is an evaluation written before, or empty (nothing else).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate_command(data: tuple[str, ...], model: str | None, adapter: str | None,
                     compare: tuple[str, ...], split: str, out: str, multi_ref: str,
                     metrics: tuple[str, ...], num_proc: int, bootstrap: int, seed: int,
                     max_rows: int | None, sample_seed: int | None, overwrite: bool,
                     quiet: bool, **generation: Any) -> None:  # fmt: skip
    """Generate predictions for a split and score them, or compare models on every task.

    \b
    Examples:
        instructkit evaluate build/dialogsum --model runs/full --split test --out runs/eval
        instructkit evaluate build/mix --model google/flan-t5-small --adapter runs/lora \\
            --split validation --out runs/eval-lora --max-rows 200
        instructkit evaluate --compare base=models/base full=runs/full lora=runs/lora \\
            build/mix --split test --out runs/forgetting
    """
    from instructkit.evaluate.generate import GenerationOptions
    from instructkit.evaluate.run import ScoringOptions, evaluate_model

    if sample_seed is not None and max_rows is None:
        raise click.UsageError("--sample-seed picks the rows of --max-rows N: give both.")
    for value in compare:
        _check_model_spec(value)
    models, datasets = split_model_specs(list(compare) + list(data), bool(compare))
    if compare and (model or adapter):
        raise click.UsageError("Give either --model/--adapter or --compare, not both.")
    if not compare and not model:
        raise click.UsageError("Give --model MODEL (or --compare NAME=MODEL ...).")
    if not datasets:
        raise click.UsageError("Give at least one dataset directory (DATA).")
    options: dict[str, Any] = {
        "generation": GenerationOptions(**generation, seed=seed),
        "scoring": ScoringOptions(metrics or None, multi_ref, num_proc, bootstrap, seed=seed),
        "max_rows": max_rows,
        "sample_seed": sample_seed,
        "overwrite": overwrite,
        "quiet": quiet,
    }
    if compare:
        from instructkit.evaluate.forgetting import REPORT_CHART, REPORT_JSON, compare_models

        report = compare_models(models, datasets, split, out, **options)
        click.echo(report.to_markdown())
        click.echo(f"Wrote {Path(out) / REPORT_JSON} and {Path(out) / REPORT_CHART}")
        for name, warning in report.warnings.items():
            click.echo(f"Warning: {name}: {warning}", err=True)
        return
    assert model is not None
    result = evaluate_model(model, datasets, split, out, adapter=adapter, **options)
    click.echo(format_scores({multi_ref: result.report}, with_mode=False))
    click.echo(f"Wrote {len(result.rows)} predictions and metrics to {out}")
    if result.warning:
        click.echo(f"Warning: {result.warning}", err=True)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``evaluate``."""
    cli.add_command(evaluate_command)

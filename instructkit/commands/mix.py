"""CLI command ``mix``: blend rendered datasets by a spec (or --task options)."""

from __future__ import annotations

import json
from typing import Any

import click

from instructkit.errors import MixError
from instructkit.hookspecs import hookimpl


def _parse_tasks(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list:
    from instructkit.mix.spec import parse_task_option

    try:
        return [parse_task_option(v) for v in values]
    except MixError as ex:
        raise click.BadParameter(str(ex), ctx=ctx, param=param) from ex


@click.command(name="mix")
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output dataset directory.")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    callback=_parse_tasks,
    metavar="DIR[:KEY=VALUE,...]",
    help="A rendered dataset and its rule, e.g. build/samsum:weight=3 (keys: name, weight, "
    "count [rows], epochs [passes], cap [rows]). Repeat per task; replaces the spec's tasks.",
)
@click.option(
    "--strategy",
    type=click.Choice(["weights", "proportional", "temperature"]),
    help="How tasks without count/epochs share the total.",
)
@click.option("--total", type=click.IntRange(min=1), help="Train rows (tokens with --unit tokens).")
@click.option(
    "--temperature", type=click.FloatRange(min=0, min_open=True), help="T for temperature."
)
@click.option("--cap", type=click.IntRange(min=1), help="Per-task cap in rows (tokens) for rates.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed for row order [default: 0].")
@click.option(
    "--epoch",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Re-mix for epoch K: row order from (seed, K), same quotas.",
)
@click.option("--unit", type=click.Choice(["examples", "tokens"]), help="Unit of shares and total.")
@click.option("--tokenizer", help="Tokenizer (hub id or path) to count tokens in the plan.")
@click.option(
    "--eval-cap", type=click.IntRange(min=1), help="At most N validation/test rows per task."
)
@click.option(
    "--dedup/--no-dedup", default=None, help="Drop exact duplicate train rows [default: on]."
)
@click.option(
    "--decontaminate",
    type=click.Choice(["off", "report", "drop"]),
    help="N-gram overlap with evaluation rows: off, report [default] or drop.",
)
@click.option("--ngram", type=click.IntRange(min=1), help="N-gram length in words [default: 13].")
@click.option(
    "--eval-set",
    "eval_sets",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra evaluation dataset to decontaminate against (repeatable).",
)
@click.option("--num-shards", type=click.IntRange(min=1), help="Shards for the train split.")
@click.option("--dry-run", is_flag=True, help="Print the plan and write nothing.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a mixture written before, or empty (nothing else).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest (or plan) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option(
    "--profile",
    is_flag=True,
    help="Print the time spent in each phase (start-up, read, hygiene, plan, schedule and "
    "gather, write, ...) to stderr; also INSTRUCTKIT_PROFILE=1.",
)
def mix_command(
    spec_file: str | None, out: str | None, tasks: list, profile: bool, **options: Any
) -> None:
    """Mix rendered datasets into one exact, reproducible multitask dataset.

    Quotas are exact (largest remainder), every prefix of the train split stays within one
    row of each task's share, and the same spec and seed give the same bytes. Units:
    weight = relative share, count = rows, epochs = passes over the task, total/cap = rows.

    \b
    Examples:
        instructkit mix examples/mix.yaml --out build/mix
        instructkit mix examples/mix.yaml --dry-run
        instructkit mix --task build/samsum:weight=3 --task build/dialogsum:weight=1 \\
            --total 20000 --out build/mix
        instructkit mix examples/mix.yaml --epoch 1 --out build/mix-epoch1
    """
    from instructkit import profiling

    if profile:
        profiling.enable()
    profiling.command_started()
    with profiling.phase("import mix modules"):
        from instructkit.mix.run import format_plan, mix_datasets
        from instructkit.mix.spec import load_mix_spec

    run = {k: options.pop(k) for k in ("epoch", "dry_run", "overwrite", "num_shards", "quiet")}
    as_json = options.pop("as_json")
    if not spec_file and not tasks:
        raise click.UsageError("Give a spec file or at least one --task DIR[:weight=W].")
    if not run["dry_run"] and not out:
        raise click.UsageError("Missing --out DIR (or use --dry-run to only print the plan).")
    overrides = {k: v for k, v in options.items() if v not in (None, ())}
    if tasks:
        overrides["tasks"] = tasks
    spec = load_mix_spec(spec_file if spec_file else {}, overrides)
    params = click.get_current_context().params
    # --profile changes nothing in the output, so the manifest does not record it
    command = {k: v for k, v in params.items() if v not in (None, (), [], False) and k != "profile"}
    result = mix_datasets(spec, out, command={"name": "mix", **command}, **run)
    if as_json:
        click.echo(
            json.dumps(
                result.manifest or _plan_json(result), indent=2, sort_keys=True, allow_nan=False
            )
        )
    else:
        click.echo(format_plan(result))
    profiling.print_report()


def _plan_json(result: Any) -> dict[str, Any]:
    total = result.total
    target_total = sum(t.target_rows for t in result.tasks)
    return {
        "spec": result.spec.to_json(),
        "total": total,
        "tasks": [t.to_json(total, target_total) for t in result.tasks],
        "decontamination": result.contamination,
    }


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``mix``."""
    cli.add_command(mix_command)

"""CLI commands for render: ``render``, ``render-spec`` and ``preview``."""

from __future__ import annotations

import math

import click

from instructkit.hookspecs import hookimpl
from instructkit.keyvalue import key_value


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        pair = key_value(value)
        if pair is None or not pair[1]:
            raise click.BadParameter(f"'{value}' is not NAME=VALUE.", ctx, param)
        pairs[pair[0]] = pair[1]
    return pairs


def _csv(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ratios(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    if not value:
        return None
    try:
        ratios = [float(v) for v in value.split(",")]
    except ValueError as ex:
        raise click.BadParameter(f"'{value}' is not comma-separated numbers.", ctx, param) from ex
    if not all(math.isfinite(r) for r in ratios):
        raise click.BadParameter(f"'{value}': every ratio must be a finite number.", ctx, param)
    return ratios


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if not value:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (value[:-1], value[-1].upper()) if value[-1].upper() in units else (value, "")
    try:
        size = float(number) * units.get(unit, 1)
    except ValueError as ex:
        raise click.BadParameter(f"'{value}' is not a size like 500M.", ctx, param) from ex
    if not math.isfinite(size) or size < 1:
        raise click.BadParameter(f"'{value}' is not a positive size like 500M.", ctx, param)
    return int(size)


source_options = [
    click.option("--templates", "templates", metavar="PACK_OR_DIR",
                 help="Template pack name or directory (default: the pack named like SOURCE)."),
    click.option("--data-dir", type=click.Path(), help="Folder with the preset's files "
                 "(default: load the preset from the hub)."),
    click.option("--data-file", "data_files", multiple=True, callback=_pairs,
                 metavar="SPLIT=PATH", help="A file per split for a generic source (repeatable)."),
    click.option("--revision", help="Hub revision (branch, tag or commit) of a hub dataset."),
    click.option("--column-map", "column_map", multiple=True, callback=_pairs,
                 metavar="FIELD=COLUMN", help="Read a template field from another column."),
    click.option("--key", "key_column", metavar="COLUMN",
                 help="Column holding a stable example id (default: the preset's, else a hash "
                      "of the row)."),
]  # fmt: skip


def with_source_options(command):
    for option in reversed(source_options):
        command = option(command)
    return command


@click.command(name="render")
@click.argument("source")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output dataset directory.")
@with_source_options
@click.option("--splits", callback=_csv, help="Only these source splits, e.g. train,test.")
@click.option(
    "--split-ratios",
    callback=_ratios,
    metavar="TRAIN,VAL,TEST",
    help="Pool all rows and cut new splits by these ratios (sum to 1).",
)
@click.option(
    "--assignment",
    type=click.Choice(["balanced", "random", "all"]),
    default="balanced",
    show_default=True,
    help="balanced: exact quotas per template; random; all: every template per row.",
)
@click.option(
    "--template",
    "template_ids",
    callback=_csv,
    metavar="ID[,ID]",
    help="Only these templates of the pack.",
)
@click.option(
    "--eval-inverted",
    is_flag=True,
    help="Also use inverted templates on validation/test (default: original only).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--on-empty",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="Rows with an empty or missing field: skip+count or fail.",
)
@click.option(
    "--form",
    type=click.Choice(["text", "conversational"]),
    help="Row form: text (prompt/completion strings) or conversational (TRL's message lists); "
    "default: the pack's 'form', else text.",
)
@click.option(
    "--system",
    metavar="TEXT",
    help="System prompt (default: the pack's 'system'); '' for none.",
)
@click.option(
    "--separator",
    metavar="TEXT",
    help="Text form: what ends each prompt, joining it to the completion (default: the "
    "pack's 'separator', else a newline); '' for none.",
)
@click.option(
    "--few-shot",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="K",
    help="K demonstrations from the train split before each prompt (earlier turns).",
)
@click.option("--tokenizer", metavar="NAME_OR_PATH", help="Count tokens; enables budgets.")
@click.option("--max-prompt-tokens", type=click.IntRange(1), help="Trim the dialogue to fit.")
@click.option("--max-completion-tokens", type=click.IntRange(1), help="Count longer targets.")
@click.option("--num-shards", type=click.IntRange(1), help="Shards per split.")
@click.option("--max-shard-size", callback=_size, metavar="SIZE", help="e.g. 500M.")
@click.option(
    "--num-proc",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes (output is identical for any value).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if instructkit rendered it before, or it is empty (nothing else).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--profile",
    is_flag=True,
    help="Print the time spent in each phase (start-up, read, scan, render, write, ...) to "
    "stderr; also INSTRUCTKIT_PROFILE=1.",
)
def render_command(source: str, out: str, quiet: bool, profile: bool, **options) -> None:
    """Render a raw dataset through a template pack into instruction pairs.

    SOURCE is a preset (samsum, dialogsum), a pack name (its preset's data), a hub id, a
    data file, a folder of split files, or a folder written by save_to_disk.

    \b
    Examples:
        instructkit render dialogsum --data-dir data/dialogsum --out build/dialogsum
        instructkit render dialogsum_topic --data-dir data/dialogsum --out build/topic
        instructkit render samsum --data-dir data/samsum --out build/samsum --assignment all
        instructkit render my.jsonl --templates samsum --split-ratios 0.8,0.1,0.1 --out build/x
        instructkit render dialogsum --data-dir data/dialogsum --out build/chat \\
            --form conversational --system "You summarize dialogues." --few-shot 2
    """
    from instructkit import profiling

    if profile:
        profiling.enable()
    profiling.command_started()
    with profiling.phase("import render modules"):
        from instructkit.render.report import summary_table
        from instructkit.render.run import RenderOptions, render_dataset

    if options["max_prompt_tokens"] and not options["tokenizer"]:
        raise click.UsageError("--max-prompt-tokens needs --tokenizer.")
    if options["max_completion_tokens"] and not options["tokenizer"]:
        raise click.UsageError("--max-completion-tokens needs --tokenizer.")
    if options["data_files"] == {}:
        options["data_files"] = None
    result = render_dataset(source, out, RenderOptions(quiet=quiet, **options))
    click.echo(summary_table(result))
    profiling.print_report()


@click.command(name="render-spec")
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option(
    "--num-proc",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes per task (output is identical for any value).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output directories.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--profile", is_flag=True, help="Print the time spent in each phase to stderr.")
def render_spec_command(
    spec_file: str, num_proc: int, overwrite: bool, quiet: bool, profile: bool
) -> None:
    """Render many tasks (sources x packs) in one process, as a YAML spec lists them.

    Each task is written exactly as 'instructkit render SOURCE --out OUT [options]' would
    write it (same files, same manifest), without paying the start-up once per task. The
    spec has 'tasks' (each a source, an out and render options, long option names) and
    optional 'defaults' for every task; see docs/render.md.

    \b
    Examples:
        instructkit render-spec build/tasks.yaml
        instructkit render-spec build/tasks.yaml --overwrite -q
    """
    from instructkit import profiling

    if profile:
        profiling.enable()
    profiling.command_started()
    with profiling.phase("import render modules"):
        from instructkit.render.spec import load_render_spec, render_spec

    tasks = load_render_spec(spec_file, overwrite=overwrite, quiet=quiet, num_proc=num_proc)

    def done(result) -> None:
        click.echo(
            f"{result.task:<30} {result.num_rows:>10,} rows  {result.seconds:6.2f} s  "
            f"-> {result.out}"
        )

    results = render_spec(tasks, on_done=done)
    rows = sum(r.num_rows for r in results)
    click.echo(f"{len(results)} tasks, {rows:,} rows")
    profiling.print_report()


@click.command(name="preview")
@click.argument("source")
@with_source_options
@click.option("--split", default="train", show_default=True)
@click.option("-n", "rows", type=click.IntRange(1), default=2, show_default=True)
@click.option("--template", "template_id", metavar="ID", help="Only this template.")
def preview_command(source: str, split: str, rows: int, template_id: str | None, **options):
    """Render the first rows of a split through every template (or one) to the terminal.

    \b
    Examples:
        instructkit preview samsum --data-dir data/samsum -n 1
        instructkit preview dialogsum --data-dir data/dialogsum --split test --template tldr
    """
    from instructkit.render.report import preview

    if options["data_files"] == {}:
        options["data_files"] = None
    click.echo(preview(source, split, rows, template_id, **options), nl=False)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``render``, ``render-spec`` and ``preview``."""
    cli.add_command(render_command)
    cli.add_command(render_spec_command)
    cli.add_command(preview_command)

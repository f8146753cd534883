"""CLI group ``templates``: list, show, lint and import template packs."""

from __future__ import annotations

from typing import Any

import click

from instructkit.commands.render import with_source_options
from instructkit.hookspecs import hookimpl


@click.group(name="templates")
def templates_group() -> None:
    """List, show and check template packs.

    \b
    Examples:
        instructkit templates list
        instructkit templates show samsum
        instructkit templates lint templates/samsum --data data/samsum/train.jsonl
    """


@templates_group.command(name="list")
def templates_list() -> None:
    """List the template packs on the search path.

    \b
    Examples:
        instructkit templates list
    """
    from instructkit.render.report import pack_list

    click.echo(pack_list())


@templates_group.command(name="show")
@click.argument("pack")
def templates_show(pack: str) -> None:
    """Show a pack: its task, source, metrics and every template's text.

    \b
    Examples:
        instructkit templates show dialogsum_topic
    """
    from instructkit.render.report import pack_details

    click.echo(pack_details(pack))


@templates_group.command(name="lint")
@click.argument("pack")
@click.option("--data", metavar="SRC", help="Check fields against this data (file, dir, preset).")
@click.option("--data-dir", type=click.Path(), help="Folder with the preset's files.")
def templates_lint(pack: str, data: str | None, data_dir: str | None) -> None:
    """Check a pack: syntax, fields against the data, empty output, duplicate bodies.

    \b
    Examples:
        instructkit templates lint samsum
        instructkit templates lint ./my_pack --data data/train.jsonl
    """
    from instructkit.render.lint import lint_pack

    problems = lint_pack(pack, data, data_dir)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in pack '{pack}'.")
    click.echo(f"Pack '{pack}': no problems found.")


@templates_group.command(name="import")
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(), help="Pack directory to write.")
@click.option("--task", help="Task name (default: the file's dataset).")
@click.option("--source", help="Default source of the pack (a preset name).")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a pack imported before, or empty (nothing else).",
)
def templates_import(
    yaml_file: str, out: str, task: str | None, source: str | None, overwrite: bool
) -> None:
    """Import a promptsource templates.yaml as a pack (rendered the way promptsource does).

    \b
    Examples:
        instructkit templates import promptsource/templates/samsum/templates.yaml --out packs/ps
        instructkit render samsum --templates packs/ps --data-dir data/samsum --out build/ps
    """
    from instructkit.render.promptsource import import_promptsource
    from instructkit.render.templates import load_pack

    pack = load_pack(import_promptsource(yaml_file, out, task, source, overwrite))
    click.echo(f"Imported {len(pack.templates)} template(s) into pack '{pack.task}' at {out}.")


@templates_group.command(name="lm-eval")
@click.argument("source")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the task YAMLs, the data and the scoring utils.",
)
@with_source_options
@click.option("--split", default="test", show_default=True, help="Split the tasks evaluate.")
@click.option(
    "--template",
    "template_ids",
    multiple=True,
    metavar="ID",
    help="Export these phrasings (repeatable; default: every original one).",
)
@click.option("--max-rows", type=click.IntRange(min=1), help="Export at most N rows.")
@click.option(
    "--max-gen-toks",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Tokens the harness generates at most per row.",
)
def templates_lm_eval(
    source: str,
    out: str,
    split: str,
    template_ids: tuple[str, ...],
    max_rows: int | None,
    max_gen_toks: int,
    **options: Any,
) -> None:
    """Export a pack's phrasings as lm-evaluation-harness tasks (Jinja doc_to_text/target).

    \b
    Examples:
        instructkit templates lm-eval dialogsum --data-dir data/dialogsum --out lm-eval-tasks
        lm_eval --model hf --model_args pretrained=runs/full \\
            --include_path lm-eval-tasks --tasks instructkit_dialogsum
    """  # fmt: skip
    from instructkit.render.lm_eval_export import export_pack

    export = export_pack(
        source, out, data_dir=options.get("data_dir"),
        data_files=options.get("data_files") or None, templates=options.get("templates"),
        split=split, template_ids=template_ids or None, max_rows=max_rows,
        max_gen_toks=max_gen_toks,
    )  # fmt: skip
    for path in export.tasks:
        click.echo(f"Wrote {path}")
    click.echo(f"Run them: lm_eval --model hf --model_args pretrained=MODEL --include_path {out} "
               f"--tasks {export.tag}")  # fmt: skip


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the ``templates`` group."""
    cli.add_command(templates_group)

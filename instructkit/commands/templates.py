"""CLI group ``templates``: list, show, lint and import template packs."""

from __future__ import annotations

import click

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


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the ``templates`` group."""
    cli.add_command(templates_group)

"""CLI command ``inspect``: describe any dataset directory."""

from __future__ import annotations

import json

import click

from instructkit.hookspecs import hookimpl


@click.command(name="inspect")
@click.argument("dataset_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary and manifest as JSON.")
@click.option("--chart", type=click.Path(dir_okay=False), help="Write a PNG bar chart here.")
def inspect_command(dataset_dir: str, as_json: bool, chart: str | None) -> None:
    """Show an instructkit dataset: rows per split and task, and a mixture's composition.

    \b
    Examples:
        instructkit inspect build/mix
        instructkit inspect build/mix --json
        instructkit inspect build/mix --chart mix.png
    """
    from instructkit.artifacts.dataset import check_output_file
    from instructkit.artifacts.inspect import (
        format_inspection,
        inspect_dataset,
        write_composition_chart,
    )
    from instructkit.output_guard import check_not_an_input

    if chart:
        check_output_file(chart)
        check_not_an_input(chart, [dataset_dir])
    info = inspect_dataset(dataset_dir)
    click.echo(
        json.dumps(info, indent=2, sort_keys=True, allow_nan=False)
        if as_json
        else format_inspection(info)
    )
    if chart:
        write_composition_chart(info, chart)
        click.echo(f"Chart written to {chart}", err=as_json)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``inspect``."""
    cli.add_command(inspect_command)

"""CLI command ``export``: a dataset in the formats TRL, LLaMA-Factory and axolotl read."""

from __future__ import annotations

import click

from instructkit.hookspecs import hookimpl

# instructkit.artifacts.export.FORMATS, spelt out so that `--help` does not import pyarrow
FORMATS = ("jsonl", "parquet", "conversational", "messages", "alpaca", "sharegpt")
FILE_TYPES = ("jsonl", "parquet")


@click.command(name="export")
@click.argument("dataset_dir", type=click.Path(file_okay=False))
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
    help="Row shape: jsonl/parquet (prompt, completion and lineage columns as they are), "
    "conversational (TRL prompt/completion message lists), messages, alpaca or sharegpt.",
)  # fmt: skip
@click.option(
    "--file-type", type=click.Choice(FILE_TYPES),
    help="Files for the conversational, messages, alpaca and sharegpt shapes (default: jsonl).",
)  # fmt: skip
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--split", "splits", multiple=True, help="Export only this split (repeatable).")
@click.option("--name", help="Dataset name in dataset_info.json and the card (default: folder).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def export_command(
    dataset_dir: str, fmt: str, file_type: str | None, out: str, splits: tuple[str, ...],
    name: str | None, overwrite: bool,
) -> None:  # fmt: skip
    """Export a rendered or mixed dataset for other trainers: one file per split.

    Writes the rows in the chosen shape, LLaMA-Factory's dataset_info.json, an axolotl
    datasets entry (axolotl.yaml) and a dataset card (README.md) with the lineage of the
    manifest and front matter that the hub's loader reads after an upload.

    \b
    Examples:
        instructkit export build/mix --format messages --out export/mix-messages
        instructkit export build/mix --format alpaca --out export/mix-alpaca
        instructkit export build/summary --format parquet --split train --out export/summary
    """
    from instructkit.artifacts.export import export_dataset

    result = export_dataset(
        dataset_dir, out, fmt, file_type, list(splits) or None, name, overwrite=overwrite
    )
    for split, record in result.files.items():
        click.echo(f"{split}: {record['num_rows']} rows -> {result.out / record['path']}")
    extras = ["README.md (dataset card)", "instructkit.json"]
    extras += [n for n in ("dataset_info.json", "axolotl.yaml") if (result.out / n).is_file()]
    click.echo(f"Also written: {', '.join(extras)}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``export``."""
    cli.add_command(export_command)

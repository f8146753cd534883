"""CLI command ``tiny-model``: a tiny random model and tokenizer, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from instructkit.hookspecs import hookimpl


@click.command(name="tiny-model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--arch", type=click.Choice(["t5", "gpt2", "llama"]), default="t5", show_default=True,
    help="Architecture: t5 (seq2seq), gpt2 or llama (causal).",
)  # fmt: skip
@click.option(
    "--corpus", "corpora", multiple=True, type=click.Path(exists=True, file_okay=False),
    help="Rendered dataset(s) whose train text the tokenizer learns (repeatable).",
)  # fmt: skip
@click.option("--vocab-size", type=click.IntRange(64), default=1000, show_default=True)
@click.option("--hidden-size", type=click.IntRange(16), default=128, show_default=True)
@click.option("--layers", type=click.IntRange(1), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace OUT if it is a tiny model written before, or empty (nothing else).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def tiny_model_command(
    out: str, arch: str, corpora: tuple[str, ...], vocab_size: int, hidden_size: int,
    layers: int, seed: int, overwrite: bool, quiet: bool,
) -> None:  # fmt: skip
    """Build a tiny random model and a tokenizer trained on the fly: no downloads.

    For trying the pipeline offline, CI, and testing trainer plugins. The model is
    useless until trained, but exercises the same code paths as FLAN-T5 or Llama.

    \b
    Examples:
        instructkit tiny-model build/tiny-t5 --corpus build/summary
        instructkit tiny-model build/tiny-llama --arch llama --hidden-size 64
    """
    from instructkit.progress import working

    with working(f"Building a tiny {arch} model and training its tokenizer", quiet):
        _build(out, arch, corpora, vocab_size, hidden_size, layers, seed, overwrite)
    click.echo(f"Tiny {arch} model written to {out}")


def _build(
    out: str, arch: str, corpora: tuple[str, ...], vocab_size: int, hidden_size: int,
    layers: int, seed: int, overwrite: bool,
) -> None:  # fmt: skip
    from instructkit.artifacts.dataset import atomic_output_dir, check_output_path
    from instructkit.demo import corpus_of
    from instructkit.output_guard import MODEL_RECORD
    from instructkit.tiny import save_tiny_model

    check_output_path(Path(out), overwrite, "tiny-model", corpora)
    texts = corpus_of(corpora) if corpora else None
    with atomic_output_dir(out, overwrite, "tiny-model") as tmp:
        save_tiny_model(
            tmp, arch, texts=texts, seed=seed, vocab_size=vocab_size, size=hidden_size,
            layers=layers,
        )  # fmt: skip
        record = {"kind": "tiny-model", "arch": arch, "seed": seed}
        (tmp / MODEL_RECORD).write_text(json.dumps(record, allow_nan=False) + "\n")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``tiny-model``."""
    cli.add_command(tiny_model_command)

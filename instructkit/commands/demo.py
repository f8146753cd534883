"""The `instructkit demo` command: the main job end to end (see instructkit.demo)."""

from __future__ import annotations

from collections.abc import Callable

import click

from instructkit.hookspecs import hookimpl


@click.command(name="demo")
@click.option(
    "--out", type=click.Path(file_okay=False), default="demo-output", show_default=True,
    help="Folder for every artifact: data, models, runs and the report.",
)  # fmt: skip
@click.option(
    "--data-dir", type=click.Path(exists=True, file_okay=False),
    help="Dialogues in DialogSum's layout, e.g. ../shared/data/dialogsum (default: the sample "
    "shipped in examples/data).",
)  # fmt: skip
@click.option(
    "--model",
    help="smollm2-135m-instruct: the real-model story (no task taught first; see the README). "
    "Any other model: start the tiny story from it instead of a tiny model built on the fly.",
)
@click.option("--base-steps", type=click.IntRange(1), help="Steps teaching the base task A.")
@click.option("--tune-steps", type=click.IntRange(1), help="Steps of each fine-tuning run.")
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

    With --model smollm2-135m-instruct (a real instruct model from the package index) there
    is no task to teach: the base is scored zero-shot on topic, summary and general questions,
    then fine-tuned on the summary four ways (full, mixture, LoRA, prompt tuning).

    \b
    Examples:
        instructkit demo
        instructkit demo --model smollm2-135m-instruct --out demo-real --overwrite
        instructkit demo --data-dir ../shared/data/dialogsum --out demo-dialogsum --overwrite
    """
    from instructkit.pretrained import MODELS

    echo = (lambda _: None) if quiet else click.echo
    if model in MODELS:
        _real_demo(out, data_dir, model, tune_steps, eval_rows, seed, overwrite, quiet, echo)
        return
    from instructkit.demo import DemoRecipe, run_demo, verdict

    recipe = DemoRecipe(seed=seed)
    for name, value in (("base_steps", base_steps), ("tune_steps", tune_steps),
                        ("eval_rows", eval_rows)):  # fmt: skip
        if value is not None:
            setattr(recipe, name, value)
    report = run_demo(out, data_dir, model, recipe, overwrite, quiet, echo)
    click.echo("")
    click.echo(report.to_markdown())
    for line in verdict(report):
        click.echo(line)
    click.echo("")
    click.echo(f"Report: {report.out}/report/report.md, report.json, report.png")
    click.echo(f"Curve: {report.out}/curve/curve.md, curve.json, curve.png")


def _real_demo(
    out: str, data_dir: str | None, model: str, steps: int | None, eval_rows: int | None,
    seed: int, overwrite: bool, quiet: bool, echo: Callable[[str], None],
) -> None:  # fmt: skip
    from instructkit.demo import SHIPPED_DATA
    from instructkit.demo_real import RealRecipe, format_timings, real_verdict, run_real_demo

    recipe = RealRecipe(seed=seed)
    if steps is not None:
        recipe.steps = steps
    if eval_rows is not None:
        recipe.eval_rows = eval_rows
    report = run_real_demo(out, data_dir or SHIPPED_DATA, model, recipe, overwrite, quiet, echo)
    click.echo("")
    click.echo(report.to_markdown())
    for line in real_verdict(report):
        click.echo(line)
    click.echo("")
    for line in format_timings(report.timings):
        click.echo(line)
    click.echo(f"Report: {report.out}/report/report.md, report.json, report.png")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``demo``."""
    cli.add_command(demo_command)

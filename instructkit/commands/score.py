"""CLI command ``score``: score a predictions file with no model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from instructkit.commands.evaluate import format_scores, scoring_options
from instructkit.evaluate.metrics import MULTI_REF_MODES
from instructkit.hookspecs import hookimpl

_SCORE_METRIC_HELP = "Score with this metric (repeatable).  [default: rouge]"


@click.command(name="score")
@click.argument("predictions", type=click.Path(dir_okay=False))
@click.option(
    "--references",
    "-r",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="References: a jsonl file (see --reference-fields) or a text file with "
    "one reference per line; repeat for several references per row.",
)
@click.option(
    "--reference-fields",
    metavar="A,B,C",
    help="Fields of a jsonl --references file holding the references.",
)
@click.option(
    "--multi-ref",
    type=click.Choice([*MULTI_REF_MODES, "all"]),
    help="Reduce several references by max, mean or first; default: all three "
    "when rows have several references, else max.",
)
@scoring_options(_SCORE_METRIC_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Also write JSON here.")
def score_command(predictions: str, references: tuple[str, ...], reference_fields: str | None,
                  multi_ref: str | None, metrics: tuple[str, ...], num_proc: int,
                  bootstrap: int, seed: int, as_json: bool,
                  out: str | None) -> None:  # fmt: skip
    """Score a predictions file (jsonl, or one prediction per line) with no model.

    \b
    Examples:
        instructkit score runs/eval/predictions.jsonl
        instructkit score preds.txt --references dialogsum.test.jsonl \\
            --reference-fields summary1,summary2,summary3
        instructkit score preds.txt -r refs.txt --metric exact_match --json
    """
    from instructkit.artifacts.dataset import check_output_file
    from instructkit.evaluate.run import ScoringOptions, score_file
    from instructkit.output_guard import check_not_an_input

    if out:
        check_output_file(out)
        check_not_an_input(out, [predictions, *references])
    fields = [f.strip() for f in reference_fields.split(",")] if reference_fields else None
    if fields is not None and not all(fields):
        raise click.BadParameter("give field names separated by commas.",
                                 param_hint="--reference-fields")  # fmt: skip
    modes = list(MULTI_REF_MODES) if multi_ref == "all" else [multi_ref] if multi_ref else None
    scoring = ScoringOptions(metrics or None, modes[0] if modes else "max", num_proc,
                             bootstrap, seed=seed)  # fmt: skip
    reports = score_file(predictions, references, fields, scoring, modes)
    data = {
        "predictions": predictions,
        "scoring": scoring.to_json() | {"multi_ref": list(reports)},
        "multi_ref": {mode: report.to_json() for mode, report in reports.items()},
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        click.echo(format_scores(reports, with_mode=len(reports) > 1))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``score``."""
    cli.add_command(score_command)

"""The `instructkit demo` command: the main job end to end (see instructkit.demo)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from instructkit.hookspecs import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="demo")
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

    @cli.command(name="tiny-model")
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
    def tiny_model_command(
        out: str, arch: str, corpora: tuple[str, ...], vocab_size: int, hidden_size: int,
        layers: int, seed: int, overwrite: bool,
    ) -> None:  # fmt: skip
        """Build a tiny random model and a tokenizer trained on the fly: no downloads.

        For trying the pipeline offline, CI, and testing trainer plugins. The model is
        useless until trained, but exercises the same code paths as FLAN-T5 or Llama.

        \b
        Examples:
            instructkit tiny-model build/tiny-t5 --corpus build/summary
            instructkit tiny-model build/tiny-llama --arch llama --hidden-size 64
        """
        from instructkit.artifact import atomic_output_dir, check_output_path
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
        click.echo(f"Tiny {arch} model written to {out}")

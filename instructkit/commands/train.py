"""``instructkit train``: hand a dataset directory to a trainer backend (a thin CLI layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from instructkit.hookspecs import hookimpl

CONFIG_KEYS = ("dataset", "backend", "model", "out", "options")


@click.command(name="train")
@click.argument("dataset", required=False, type=click.Path(path_type=Path))
@click.option(
    "-b", "--backend", envvar="INSTRUCTKIT_TRAIN_BACKEND", help="Trainer backend (see --list)."
)
@click.option(
    "-m",
    "--model",
    envvar="INSTRUCTKIT_TRAIN_MODEL",
    help="Base model: a local directory or a hub id.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Output directory to create.")
@click.option(
    "-o",
    "--option",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Trainer option (repeatable); overrides the config file.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML run file: dataset, backend, model, out and an options mapping.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a training output, or empty (nothing else); also discards "
    "an interrupted run's checkpoints.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or notes; errors still show.")
@click.option("--list", "list_backends", is_flag=True, help="List backends and their options.")
@click.option(
    "--accelerate-config",
    metavar="NAME|FILE",
    help="Re-launch on many GPUs through accelerate: ddp, fsdp, zero2, zero3 (shipped) or a file.",
)
@click.option(
    "--num-processes",
    type=click.IntRange(min=1),
    help="With --accelerate-config: processes per machine (default: every visible GPU).",
)
@click.option(
    "--print-launch",
    is_flag=True,
    help="With --accelerate-config: print the accelerate launch command instead of running it.",
)
def train(
    dataset: Path | None,
    backend: str | None,
    model: str | None,
    out: Path | None,
    option_pairs: tuple[str, ...],
    config: Path | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    list_backends: bool,
    accelerate_config: str | None,
    num_processes: int | None,
    print_launch: bool,
) -> None:
    """Fine-tune a model on an instructkit dataset with a pluggable backend.

    Backends: full (all weights), lora and prompt-tuning (peft adapters), plus any
    installed plugin's. Flags beat INSTRUCTKIT_TRAIN_* variables, which beat --config.

    \b
    Examples:
        instructkit train build/mix --backend lora --model google/flan-t5-small --out runs/lora
        instructkit train build/mix -b full -m ./tiny-t5 --out runs/full -o max_steps=200
        instructkit train --config run.yaml -o learning_rate=1e-3
        instructkit train build/mix -b lora -m ./tiny-t5 --out runs/lora --resume
        instructkit train build/mix -b full -m gpt2 --out runs/full -o optim=adafactor
        instructkit train build/mix -b full -m gpt2 --out r --accelerate-config zero3
        accelerate launch -m instructkit train build/mix -b full -m gpt2 --out runs/full
        instructkit train --list
    """
    from instructkit.train.base import parse_option_strings
    from instructkit.train.run import TrainingInterrupted, is_main_process, run_training

    if list_backends:
        click.echo(backends_listing())
        return
    if (num_processes or print_launch) and not accelerate_config:
        raise click.UsageError("--num-processes and --print-launch go with --accelerate-config.")
    settings = load_run_config(config) if config else {}
    values = {"dataset": dataset, "backend": backend, "model": model, "out": out}
    run = {key: values[key] if values[key] is not None else settings.get(key) for key in values}
    missing = [key for key, value in run.items() if value is None]
    if missing:
        flags = ", ".join("DATASET" if key == "dataset" else f"--{key}" for key in missing)
        raise click.UsageError(f"Missing {flags} (give them as arguments or in --config).")
    options = merge_options(settings.get("options", {}), parse_option_strings(option_pairs))
    if accelerate_config:
        relaunch(accelerate_config, num_processes, print_launch, run, option_pairs, config)
        return
    try:
        summary = run_training(
            str(run["dataset"]), str(run["backend"]), str(run["model"]), str(run["out"]),
            options, overwrite=overwrite, resume=resume, quiet=quiet,
        )  # fmt: skip
    except TrainingInterrupted as ex:
        click.echo(str(ex), err=True)
        raise SystemExit(130) from None
    if not is_main_process():
        return  # under a launcher, rank 0 reports for the run
    if not quiet:
        for note in summary.notes:
            click.echo(f"Note: {note}", err=True)
    click.echo(summary_line(summary.metadata, summary.output_dir))


def merge_options(from_file: dict[str, Any], from_flags: dict[str, Any]) -> dict[str, Any]:
    """``-o`` beats the config file, also when one names an option by its alias (lr vs
    learning_rate); within one source, an alias and its target together stay an error."""
    from instructkit.train.hf_options import target_of

    overridden = {target_of(key) for key in from_flags}
    kept = {k: v for k, v in from_file.items() if target_of(k) not in overridden}
    return {**kept, **from_flags}


def relaunch(
    accelerate_config: str,
    num_processes: int | None,
    print_only: bool,
    run: dict[str, Any],
    option_pairs: tuple[str, ...],
    config: Path | None,
) -> None:
    """Run this train command again under ``accelerate launch`` with a shipped config."""
    import subprocess

    from instructkit.train.launch import format_command, launch_command

    ctx = click.get_current_context()
    args = [str(run["dataset"]), "--backend", str(run["backend"]), "--model", str(run["model"])]
    args += ["--out", str(run["out"])]
    if config is not None:
        args += ["--config", str(config)]
    for pair in option_pairs:
        args += ["-o", pair]
    for flag in ("resume", "overwrite", "quiet"):
        if ctx.params.get(flag):
            args.append(f"--{flag}")
    command = launch_command(accelerate_config, num_processes, args)
    if print_only:
        click.echo(format_command(command))
        return
    code = subprocess.call(command)
    if code:
        raise SystemExit(code)


def load_run_config(path: Path) -> dict[str, Any]:
    """Read a YAML run file; unknown keys are an error naming the valid ones."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as ex:
        raise click.BadParameter(f"'{path}' is not valid YAML: {ex}", param_hint="--config") from ex
    if not isinstance(data, dict):
        raise click.BadParameter(f"'{path}' must be a mapping.", param_hint="--config")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise click.BadParameter(
            f"'{path}' has unknown keys {', '.join(unknown)}: use {', '.join(CONFIG_KEYS)} "
            f"(trainer options go under 'options:').",
            param_hint="--config",
        )
    if not isinstance(data.get("options", {}), dict):
        raise click.BadParameter(f"'options' in '{path}' must be a mapping.", param_hint="--config")
    return data


def summary_line(metadata: dict[str, Any], out: Path) -> str:
    """One line saying what was trained, how it went and where it is."""
    losses = f"train loss {_fmt(metadata.get('train_loss'))}"
    if metadata.get("eval_loss") is not None:
        losses += f", validation loss {_fmt(metadata['eval_loss'])}"
    return (
        f"Trained {metadata['backend']} on {metadata['train_rows']} rows for "
        f"{metadata['steps']} steps in {metadata.get('train_seconds', 0):.1f} s ({losses}): {out}"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def backends_listing() -> str:
    """Options every backend shares, then each backend with its own options and defaults, then
    the transformers.TrainingArguments fields that pass through by their HF names."""
    from instructkit.train.base import TrainerOptions, describe_options, list_trainers
    from instructkit.train.hf_options import aliases_of, describe_passthrough

    common = {opt["name"]: opt for opt in describe_options(TrainerOptions)}
    aliases = aliases_of(common)
    for name, opt in common.items():
        opt["aliases"] = aliases.get(name, [])
    lines = ["Options of every backend (-o KEY=VALUE):", *_option_lines(common.values())]
    for trainer_cls in list_trainers():
        lines += ["", f"{trainer_cls.trainer_id}: {trainer_cls.description}"]
        own = [
            opt
            for opt in describe_options(trainer_cls.Options)
            if opt["name"] not in common or opt["default"] != common[opt["name"]]["default"]
        ]
        lines += _option_lines(own)
    passthrough = describe_passthrough()
    if passthrough:
        lines += [
            "",
            "transformers.TrainingArguments fields, by their HF names (backends on the HF "
            "Trainer: full, lora, prompt-tuning, ...; values typed as HF declares them):",
        ]
        lines += [
            f"  {row['name']} ({row['type']}, default {row['default']})\n      {row['help']}"
            for row in passthrough
        ]
    return "\n".join(lines)


def _option_lines(options: Any) -> list[str]:
    lines = []
    for opt in options:
        choices = f"; one of {', '.join(opt['choices'])}" if opt["choices"] else ""
        alias = f"; also {', '.join(opt['aliases'])}" if opt.get("aliases") else ""
        lines.append(f"  {opt['name']} ({opt['type']}, default {opt['default']}{choices}{alias})")
        lines.append(f"      {opt['help']}")
    return lines


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``train``."""
    cli.add_command(train)

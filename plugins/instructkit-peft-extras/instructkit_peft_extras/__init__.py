"""Example instructkit plugin: an IA³ trainer and a command, added only through hooks.

instructkit never imports this package by name: the ``instructkit`` entry point in
``pyproject.toml`` is how it is found. Copy it to write your own backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

import instructkit
from instructkit import (
    HFTrainer,
    TrainerOptions,
    TrainRun,
    option,
    peft_task_type,
    trainable_parameters,
)


@dataclass
class IA3Options(TrainerOptions):
    # IA³ learns a few scaling vectors: it takes large steps, like the paper's 3e-3
    learning_rate: float = option(3e-3, "Peak learning rate.", minimum=0)
    target_modules: list[str] | None = option(
        None, "Modules to rescale, comma separated (default: peft's choice for the architecture)."
    )
    feedforward_modules: list[str] | None = option(
        None, "Which of target_modules are feed-forward layers (default: peft's choice)."
    )


class IA3Trainer(HFTrainer):
    """IA³ (Liu et al. 2022): learned vectors rescale keys, values and feed-forward activations."""

    trainer_id = "ia3"
    description = "IA³ adapters through peft (plugin instructkit-peft-extras)."
    Options = IA3Options

    def wrap_model(self, model: Any, options: TrainerOptions, run: TrainRun) -> Any:
        from peft import IA3Config, get_peft_model

        assert isinstance(options, IA3Options)
        config = IA3Config(
            task_type=peft_task_type(model),
            target_modules=options.target_modules,
            feedforward_modules=options.feedforward_modules,
            # GPT-2 stores its projections transposed (Conv1D)
            fan_in_fan_out=model.config.model_type == "gpt2",
        )
        return get_peft_model(model, config)

    def describe_model(self, model: Any, options: TrainerOptions) -> dict[str, Any]:
        return {"trainable_parameters": trainable_parameters(model)}


@instructkit.hookimpl
def register_trainers(register: Any) -> None:
    register(IA3Trainer)


@instructkit.hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="peft-extras")
    def peft_extras() -> None:
        """Show what the instructkit-peft-extras plugin adds."""
        click.echo("instructkit-peft-extras: example plugin loaded through its entry point.")
        click.echo("Trainers: ia3 (instructkit train DATA --backend ia3 ...)")

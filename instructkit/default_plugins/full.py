"""Built-in trainer ``full``: fine-tune every weight of the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from instructkit.hookspecs import hookimpl
from instructkit.train.base import TrainerOptions, option
from instructkit.train.hf import HFTrainer


@dataclass
class FullOptions(TrainerOptions):
    learning_rate: float = option(5e-5, "Peak learning rate.", minimum=0)


class FullTrainer(HFTrainer):
    """Update all weights; the output is a complete model directory."""

    trainer_id = "full"
    description = "Full fine-tuning: every weight is trained; saves a complete model."
    Options = FullOptions

    def describe_model(self, model: Any, options: TrainerOptions) -> dict[str, Any]:
        return {"trainable_parameters": sum(p.numel() for p in model.parameters())}


@hookimpl
def register_trainers(register: Any) -> None:
    register(FullTrainer)

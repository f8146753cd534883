"""Built-in trainer ``prompt-tuning``: learn soft prompt embeddings with peft, base frozen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from instructkit.errors import OptionsError
from instructkit.hookspecs import hookimpl
from instructkit.train.base import TrainerOptions, TrainRun, option
from instructkit.train.hf import HFTrainer, peft_task_type, trainable_parameters


@dataclass
class PromptTuningOptions(TrainerOptions):
    # soft prompts need a much larger step than weights (Lester et al. used 0.3)
    learning_rate: float = option(3e-2, "Peak learning rate.", minimum=0)
    num_virtual_tokens: int = option(20, "Length of the learned soft prompt.", minimum=1)
    init: str = option(
        "random",
        "Initialise the soft prompt randomly or from init_text.",
        choices=("random", "text"),
    )
    init_text: str | None = option(None, "Text whose embeddings start the prompt (init=text).")

    def validate(self) -> None:
        super().validate()
        if self.init == "text" and not self.init_text:
            raise OptionsError("Option init=text needs init_text: set init_text='Summarize:'.")
        if self.init == "random" and self.init_text:
            raise OptionsError("Option init_text is only used with init=text: set init=text too.")


class PromptTuningTrainer(HFTrainer):
    """Prepend trainable virtual tokens to every input; only they are trained."""

    trainer_id = "prompt-tuning"
    description = "Prompt tuning through peft: a learned soft prompt, random or text init."
    Options = PromptTuningOptions

    def wrap_model(self, model: Any, options: TrainerOptions, run: TrainRun) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

        assert isinstance(options, PromptTuningOptions)
        text = options.init == "text"
        config = PromptTuningConfig(
            task_type=peft_task_type(model),
            num_virtual_tokens=options.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=options.init_text if text else None,
            tokenizer_name_or_path=run.model if text else None,
        )
        return get_peft_model(model, config)

    def describe_model(self, model: Any, options: TrainerOptions) -> dict[str, Any]:
        return {"trainable_parameters": trainable_parameters(model)}


@hookimpl
def register_trainers(register: Any) -> None:
    register(PromptTuningTrainer)

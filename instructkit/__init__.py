"""instructkit: build instruction-tuning data and hand it to pluggable fine-tuning backends.

The public API is ``__all__``: plugins and scripts import from here, never from the modules
behind it (docs/architecture.md lists both). Everything but the errors and the hook marker
loads on first use, so ``import instructkit`` (which every plugin does) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from instructkit.errors import (
    DatasetDirError,
    EvaluateError,
    InstructkitError,
    MixError,
    ModelError,
    OptionsError,
    OutputError,
    OutputExistsError,
    PluginError,
    RenderError,
    SourceError,
    TemplateError,
    TrainerError,
    UnknownTrainerError,
)
from instructkit.hookspecs import hookimpl

__version__ = "0.1.0"

if TYPE_CHECKING:
    from instructkit.artifacts.dataset import open_split
    from instructkit.artifacts.inspect import inspect_dataset
    from instructkit.artifacts.manifest import Manifest, load_manifest, read_manifest
    from instructkit.evaluate.forgetting import compare_models
    from instructkit.evaluate.generate import GenerationOptions
    from instructkit.evaluate.metrics import Metric
    from instructkit.evaluate.run import ScoringOptions, evaluate_model, score_file
    from instructkit.mix.run import format_plan, mix_datasets
    from instructkit.mix.spec import MixSpec, load_mix_spec
    from instructkit.render.run import RenderOptions, RenderResult, render_dataset
    from instructkit.render.sources import RawDataset, RawSplit, Source, from_files, from_hub
    from instructkit.testing import assert_trainer_contract
    from instructkit.train.base import Trainer, TrainerOptions, TrainResult, TrainRun, option
    from instructkit.train.hf import HFTrainer, peft_task_type, trainable_parameters
    from instructkit.train.run import run_training

# The lazily loaded names, by the module that defines them.
_LAZY_MODULES: dict[str, tuple[str, ...]] = {
    "instructkit.render.sources": ("RawDataset", "RawSplit", "Source", "from_files", "from_hub"),
    "instructkit.render.run": ("RenderOptions", "RenderResult", "render_dataset"),
    "instructkit.mix.spec": ("MixSpec", "load_mix_spec"),
    "instructkit.mix.run": ("format_plan", "mix_datasets"),
    "instructkit.train.base": ("Trainer", "TrainerOptions", "TrainResult", "TrainRun", "option"),
    "instructkit.train.hf": ("HFTrainer", "peft_task_type", "trainable_parameters"),
    "instructkit.train.run": ("run_training",),
    "instructkit.evaluate.metrics": ("Metric",),
    "instructkit.evaluate.generate": ("GenerationOptions",),
    "instructkit.evaluate.run": ("ScoringOptions", "evaluate_model", "score_file"),
    "instructkit.evaluate.forgetting": ("compare_models",),
    "instructkit.artifacts.dataset": ("open_split",),
    "instructkit.artifacts.manifest": ("Manifest", "load_manifest", "read_manifest"),
    "instructkit.artifacts.inspect": ("inspect_dataset",),
    "instructkit.testing": ("assert_trainer_contract",),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}

__all__ = [
    "__version__",
    # plugins: the hook marker and the contracts behind the hooks
    "hookimpl",
    "Trainer",
    "TrainerOptions",
    "TrainRun",
    "TrainResult",
    "option",
    "HFTrainer",
    "peft_task_type",
    "trainable_parameters",
    "assert_trainer_contract",
    "Metric",
    "Source",
    "RawDataset",
    "RawSplit",
    "from_files",
    "from_hub",
    # the stages, from Python
    "render_dataset",
    "RenderOptions",
    "RenderResult",
    "load_mix_spec",
    "MixSpec",
    "mix_datasets",
    "format_plan",
    "run_training",
    "evaluate_model",
    "score_file",
    "compare_models",
    "GenerationOptions",
    "ScoringOptions",
    # the files stages exchange
    "open_split",
    "read_manifest",
    "load_manifest",
    "Manifest",
    "inspect_dataset",
    # errors
    "InstructkitError",
    "PluginError",
    "SourceError",
    "TemplateError",
    "RenderError",
    "DatasetDirError",
    "OutputError",
    "OutputExistsError",
    "MixError",
    "TrainerError",
    "UnknownTrainerError",
    "OptionsError",
    "ModelError",
    "EvaluateError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

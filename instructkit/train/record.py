"""What ``instructkit-train.json`` records beyond the options: environment, scale, base model.

- library versions (read from package metadata, nothing imported), the command line;
- for HF backends: world size, effective batch size, device, precision and dtype; the
  ``tokenization`` entry (train/hf.py: the train split's cache key, hit, seconds, packing) sits
  beside them;
- ``base_model_ref``: how an adapter finds its base model on another machine: a hub id as given,
  or a local path relative to the run directory plus the absolute path as a hint.
  ``artifacts.train_output.resolve_base_model`` (used by ``modeling.adapter_base_model``)
  reads it back.
"""

from __future__ import annotations

import os
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "datasets", "tokenizers")
#: the run record's one tokenization entry: {"key", "hit", "seconds", ["packing"], ["validation"]}
TOKENIZATION_FIELD = "tokenization"


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (``instructkit train ...``), shell-quoted."""
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name in ("instructkit", "__main__.py"):
        args[0] = "instructkit"
    return shlex.join(args)


def hf_run_facts(trainer: Any, model: Any) -> dict[str, Any]:
    """World size, effective batch, device, precision and dtype of an HF ``Trainer`` run."""
    from instructkit.train.model_loading import model_dtype

    args = trainer.args
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    world = int(args.world_size)
    return {
        "world_size": world,
        "effective_batch_size": int(
            args.per_device_train_batch_size * args.gradient_accumulation_steps * world
        ),
        "device": str(args.device),
        "device_name": _device_name(args.device),
        "precision": precision,
        "dtype": model_dtype(model),
        "distributed": str(args.parallel_mode).rsplit(".", 1)[-1].lower(),
    }


def _device_name(device: Any) -> str | None:
    try:
        import torch

        if getattr(device, "type", "") == "cuda":
            return str(torch.cuda.get_device_name(device))
    except Exception:  # a record field must never fail a finished run
        return None
    return None


def base_model_ref(base_model: str, out: str | os.PathLike[str]) -> dict[str, Any]:
    """How the run's base model is found again: {"hub_id"} or {"relative_path", "absolute_path"}.

    ``relative_path`` is relative to the output directory ``out``.
    """
    path = Path(base_model)
    if not path.is_absolute() or not path.exists():
        return {"hub_id": base_model}
    target = Path(out).resolve()
    return {
        "relative_path": os.path.relpath(path.resolve(), target),
        "absolute_path": str(path.resolve()),
    }

"""A timing probe installed in a benchmark's child process before instructkit (or TRL) runs.

It wraps two stable third-party entry points, never instructkit's own modules:
- ``transformers.Trainer.training_step``: per micro-batch, the wall time and the token counts of
  the batch (slots = input_ids.numel(), real tokens = attention_mask.sum() or, for padding-free
  packed batches with no mask, every slot, and loss tokens = labels != -100), plus a callback that
  stamps each optimizer step's end. Any engine built on the HF Trainer (instructkit's today, TRL's
  SFTTrainer) is measured the same way.
- ``transformers.GenerationMixin.generate``: per call, the wall time, rows and new tokens.

At exit it writes one JSON file: absolute time stamps (time.time()) so that the parent can
compute the time from spawning the process to the first step, plus VmHWM (peak RSS).
If an engine stops using the HF Trainer, the probe sees no steps and the benchmark falls back to
timing whole runs (documented in benchmarks/README.md).
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import time
from pathlib import Path
from typing import Any

STATE: dict[str, Any] = {
    "imported_at": time.time(),
    "micro_batches": [],  # [start, end, slots, real_tokens, loss_tokens, rows]
    "step_ends": [],
    "train_begin": None,
    "train_end": None,
    "generate_calls": [],  # [start, end, rows, new_tokens, prompt_slots]
}


def _count(inputs: Any) -> tuple[int, int, int, int]:
    ids = inputs.get("input_ids") if hasattr(inputs, "get") else None
    if ids is None:
        return 0, 0, 0, 0
    slots = int(ids.numel())
    rows = int(ids.shape[0]) if ids.dim() > 1 else 1
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        real = int(mask.sum())
    else:
        # padding-free / packed batches carry position_ids and no mask: every slot is a token
        # (TRL pads a flattened batch to a multiple only when asked)
        real = slots
        starts = inputs.get("position_ids")
        if starts is not None:
            rows = int((starts == 0).sum())
    labels = inputs.get("labels")
    loss = int((labels != -100).sum()) if labels is not None else real
    decoder = inputs.get("decoder_input_ids")
    if decoder is not None:  # seq2seq: count target-side slots too
        slots += int(decoder.numel())
        dmask = inputs.get("decoder_attention_mask")
        real += int(dmask.sum()) if dmask is not None else int((labels != -100).sum())
    return slots, real, loss, rows


def _install_trainer() -> None:
    try:
        import transformers
    except ImportError:
        return

    original_step = transformers.Trainer.training_step

    class _StepStamp(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            STATE["step_ends"].append(time.time())

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            STATE["train_end"] = time.time()

    def training_step(self, model, inputs, *args, **kwargs):  # noqa: ANN001
        if not getattr(self, "_bench_probe", False):
            self._bench_probe = True
            self.add_callback(_StepStamp())
            STATE["train_begin"] = time.time()
            STATE["trainer_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        start = time.time()
        counts = _count(inputs)
        out = original_step(self, model, inputs, *args, **kwargs)
        STATE["micro_batches"].append([start, time.time(), *counts])
        return out

    transformers.Trainer.training_step = training_step


def _install_generate() -> None:
    try:
        from transformers import GenerationMixin
    except ImportError:
        return
    original = GenerationMixin.generate

    def generate(self, *args, **kwargs):  # noqa: ANN001
        ids = kwargs.get("input_ids", args[0] if args else None)
        start = time.time()
        out = original(self, *args, **kwargs)
        seq = getattr(out, "sequences", out)
        rows = int(seq.shape[0]) if hasattr(seq, "shape") else 0
        prompt = int(ids.shape[1]) if hasattr(ids, "shape") else 0
        is_encoder_decoder = bool(getattr(getattr(self, "config", None), "is_encoder_decoder", 0))
        new = int(seq.shape[1]) - (0 if is_encoder_decoder else prompt) if rows else 0
        STATE["generate_calls"].append([start, time.time(), rows, rows * new, rows * prompt])
        return out

    GenerationMixin.generate = generate


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def install(out_path: str) -> None:
    """Patch the entry points and write the measurements to ``out_path`` at exit."""
    _install_trainer()
    _install_generate()
    STATE["probe_ready_at"] = time.time()

    def dump() -> None:
        STATE["exit_at"] = time.time()
        STATE["vmhwm_mb"] = _peak_rss_mb()
        Path(out_path).write_text(json.dumps(STATE))

    atexit.register(dump)


def run_module(module: str, argv: list[str]) -> None:
    """Run ``python -m module`` with ``argv`` inside this (probed) process."""
    sys.argv = argv
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def summarize_training(probe: dict[str, Any], launched: float, skip_steps: int = 1) -> dict:
    """Startup to the first step, and steady throughput after ``skip_steps`` optimizer steps."""
    batches = probe.get("micro_batches") or []
    ends = probe.get("step_ends") or []
    if not batches:
        return {}
    first = batches[0][0]
    total_slots = sum(b[2] for b in batches)
    total_real = sum(b[3] for b in batches)
    summary: dict[str, Any] = {
        "steps": len(ends),
        "micro_batches": len(batches),
        "startup_to_first_step_s": first - launched,
        "slots": total_slots,
        "real_tokens": total_real,
        "loss_tokens": sum(b[4] for b in batches),
        "sequences": sum(b[5] for b in batches),
        "padding_fraction": 1 - total_real / total_slots if total_slots else None,
        "train_loop_s": (ends[-1] if ends else batches[-1][1]) - first,
    }
    if len(ends) > skip_steps:
        t0 = ends[skip_steps - 1] if skip_steps else first
        after = [b for b in batches if b[0] >= t0]
        seconds = ends[-1] - t0
        summary["steady_steps"] = len(ends) - skip_steps
        summary["steady_s"] = seconds
        summary["tokens_per_s"] = sum(b[3] for b in after) / seconds
        summary["loss_tokens_per_s"] = sum(b[4] for b in after) / seconds
        summary["slots_per_s"] = sum(b[2] for b in after) / seconds
        summary["sequences_per_s"] = sum(b[5] for b in after) / seconds
    if probe.get("exit_at") and ends:
        summary["after_last_step_s"] = probe["exit_at"] - ends[-1]
    summary["vmhwm_mb"] = probe.get("vmhwm_mb")
    summary["trainer_class"] = probe.get("trainer_class")
    return summary


def summarize_generation(probe: dict[str, Any], launched: float) -> dict:
    calls = probe.get("generate_calls") or []
    if not calls:
        return {}
    seconds = sum(c[1] - c[0] for c in calls)
    rows = sum(c[2] for c in calls)
    return {
        "generate_calls": len(calls),
        "rows": rows,
        "new_tokens": sum(c[3] for c in calls),
        "generate_s": seconds,
        "rows_per_s": rows / seconds if seconds else None,
        "new_tokens_per_s": sum(c[3] for c in calls) / seconds if seconds else None,
        "startup_to_first_generate_s": calls[0][0] - launched,
        "after_last_generate_s": (probe.get("exit_at") or calls[-1][1]) - calls[-1][1],
        "vmhwm_mb": probe.get("vmhwm_mb"),
    }

"""Watching a run while it trains: ``training_log.jsonl`` appended live, plain log lines.

With stdout/stderr redirected (SLURM, nohup, CI) there is no progress bar, so every logged step
prints one plain line instead (silent with ``--quiet``). The log file is rewritten from the
restored history when a run resumes, then appended step by step; ``run_training`` replaces it
with the merged log (train and validation records of one step together) when the run ends.
torch and transformers are imported inside functions.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from instructkit.artifacts.train_output import finite, write_lines

# Keys kept from HF's log records (the rest is timing chatter); eval_<task>_loss are kept too.
LOG_KEYS = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm")
_TASK_LOSS = re.compile(r"^eval_.+_loss$")


def is_loss_key(key: str) -> bool:
    return key in ("loss", "eval_loss") or bool(_TASK_LOSS.match(key))


def log_record(logs: Mapping[str, Any], step: int) -> dict[str, Any] | None:
    """The part of an HF log record worth keeping, or None for records without a loss."""
    if not any(is_loss_key(k) for k in logs):
        return None
    record = {k: logs[k] for k in logs if k in LOG_KEYS or _TASK_LOSS.match(k)}
    record["step"] = int(step)
    return finite(record)


def live_log_callback(path: Path) -> Any:
    """Append each logged record to ``path`` as it happens (main process only)."""
    from transformers import TrainerCallback

    class LiveLogCallback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                # a resumed run starts from the history its checkpoint restored
                restored = (log_record(r, r.get("step", 0)) for r in state.log_history)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_lines(path, [r for r in restored if r is not None])

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                record = log_record(logs, state.global_step)
                if record is not None:
                    write_lines(path, [record], mode="a")

    return LiveLogCallback()


def plain_progress_callback(
    quiet: bool, stream: TextIO | None = None, per_task: bool = False
) -> Any:
    """One plain line per logged step when stderr is not a terminal (no bar there).

    ``per_task``: validation comes per task, then pooled; the task losses wait for the pooled
    one so that an evaluation prints one line.
    """
    from transformers import TrainerCallback

    class PlainProgressCallback(TrainerCallback):
        started = 0.0
        first_step = 0

        def __init__(self) -> None:
            self.pending: dict[str, Any] = {}

        def _active(self, state: Any) -> bool:
            on_terminal = stream is None and sys.stderr.isatty()
            return not quiet and bool(state.is_world_process_zero) and not on_terminal

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.monotonic()
            self.first_step = state.global_step

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or not self._active(state):
                return
            task_losses = {k: v for k, v in logs.items() if _TASK_LOSS.match(k)}
            if task_losses and "eval_loss" not in logs and per_task:
                self.pending.update(task_losses)  # one line per evaluation, with the pooled loss
                return
            if "eval_loss" in logs:
                logs, self.pending = {**self.pending, **logs}, {}
            line = progress_line(
                logs, state.global_step, state.max_steps, time.monotonic() - self.started,
                state.global_step - self.first_step,
            )  # fmt: skip
            if line:
                print(line, file=stream or sys.stderr, flush=True)

    return PlainProgressCallback()


def progress_line(
    logs: Mapping[str, Any], step: int, max_steps: int, elapsed: float, steps_done: int
) -> str | None:
    """``[train] step 20/100 (20%) loss 2.314 lr 1.9e-04 | 12 s, ~48 s left``."""
    parts = []
    for key in sorted(logs, key=lambda k: (k != "loss", k != "eval_loss", k)):
        value = logs[key]
        if is_loss_key(key) and isinstance(value, (int, float)):
            parts.append(f"{key} {value:.4g}")
    if not parts:
        return None
    if "learning_rate" in logs and isinstance(logs["learning_rate"], (int, float)):
        parts.append(f"lr {logs['learning_rate']:.3g}")
    percent = f" ({100 * step / max_steps:.0f}%)" if max_steps else ""
    timing = f"{elapsed:.0f} s"
    if steps_done > 0 and max_steps > step:
        timing += f", ~{elapsed / steps_done * (max_steps - step):.0f} s left"
    return f"[train] step {step}/{max_steps}{percent} {' '.join(parts)} | {timing}"

"""Many GPUs and machines: shipped accelerate configs chosen by name, and the launch command.

``instructkit train ... --accelerate-config zero3 --num-processes 8`` re-runs the same train
command under ``accelerate launch --config_file <shipped zero3.yaml>``. The configs live in the
package (``instructkit/train/accelerate_configs``: ddp, fsdp, zero2, zero3), so a wheel carries
them.
With the usual rendezvous variables set (``MASTER_ADDR``, ``MASTER_PORT``, ``NNODES``,
``NODE_RANK``, as torchrun and most SLURM scripts export them), the command spans machines.
Importing this module never imports torch.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from instructkit.errors import OptionsError

CONFIG_DIR = Path(__file__).resolve().parent / "accelerate_configs"
CONFIG_NAMES = ("ddp", "fsdp", "zero2", "zero3")
# Set by accelerate launch / torchrun in the processes they start.
LAUNCHED_MARKERS = ("LOCAL_RANK", "ACCELERATE_PROCESS_ID")


def shipped_configs() -> dict[str, Path]:
    """Name -> path of every accelerate config shipped with instructkit."""
    return {path.stem: path for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def config_path(name_or_path: str) -> Path:
    """A shipped config by name (``zero3``), or a config file of your own by path."""
    shipped = shipped_configs()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    raise OptionsError(
        f"Unknown accelerate config '{name_or_path}': use one of {', '.join(shipped)} or the "
        f"path of an accelerate config file."
    )


def already_launched(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return any(marker in env for marker in LAUNCHED_MARKERS)


def launch_command(
    config: str,
    num_processes: int | None,
    train_args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    gpus: int | None = None,
) -> list[str]:
    """The ``accelerate launch`` command running ``instructkit train <train_args>``.

    :param num_processes: processes per machine (default: every visible GPU).
    :param env: where rendezvous variables are read (default: this process's environment):
        ``NNODES`` (or ``NUM_NODES``) > 1 with ``MASTER_ADDR`` adds the multi-machine flags.
    :param gpus: visible CUDA devices (default: asked from torch); 0 runs CPU processes (gloo).
    """
    env = os.environ if env is None else env
    if already_launched(env):
        raise OptionsError(
            "--accelerate-config re-launches the run, but this process was already started by "
            "a launcher (LOCAL_RANK is set): drop --accelerate-config, or launch without it."
        )
    path = config_path(config)
    gpus = visible_gpus() if gpus is None else gpus
    per_machine = num_processes or gpus
    if not per_machine:
        raise OptionsError(
            "--accelerate-config on a machine without a GPU needs --num-processes N "
            "(CPU processes over gloo)."
        )
    machines = int(env.get("NNODES") or env.get("NUM_NODES") or "1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]
    command += ["--num_processes", str(per_machine * machines)]
    if machines > 1:
        if not env.get("MASTER_ADDR"):
            raise OptionsError(
                f"NNODES={machines} but MASTER_ADDR is not set: export MASTER_ADDR (the first "
                f"node's address), MASTER_PORT and NODE_RANK on every node."
            )
        command += [
            "--num_machines", str(machines),
            "--machine_rank", env.get("NODE_RANK") or env.get("SLURM_NODEID") or "0",
            "--main_process_ip", env["MASTER_ADDR"],
            "--main_process_port", env.get("MASTER_PORT") or "29500",
        ]  # fmt: skip
    if not gpus:
        # `accelerate launch --cpu` starts one process whatever --num_processes says; the
        # config's launcher (torchrun) with ACCELERATE_USE_CPU starts them all, DDP over gloo
        command = ["env", "ACCELERATE_USE_CPU=true", *command]
    return [*command, "-m", "instructkit", "train", *train_args]


def visible_gpus() -> int:
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def format_command(command: Sequence[str]) -> str:
    return shlex.join(command)

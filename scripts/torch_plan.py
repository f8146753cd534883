"""Which torch build the bootstrap installs, from where, and the constraint that keeps it.

Run by scripts/bootstrap.sh with the new venv's python (standard library only; it never imports
torch, whose import before numpy is installed prints "Failed to initialize NumPy")::

    python scripts/torch_plan.py install       # install torch unless the venv has it; one line
    python scripts/torch_plan.py constraints   # "torch==X" from the installed distribution

The rules (``decide``):

- ``INSTRUCTKIT_TORCH`` is the requirement, when set; otherwise ``torch==TESTED`` without a GPU
  and ``torch>=2.1`` with one.
- ``INSTRUCTKIT_TORCH_INDEX`` is the index torch (and its dependencies) come from, when set; it
  is the user's choice, so there is no fallback from it.
- Otherwise, Linux without an NVIDIA GPU uses the PyTorch CPU index (the default index serves
  Linux a CUDA build that pulls several GB of nvidia packages); when that index cannot be
  reached, the default index, said in one line. Machines with a GPU, and macOS/Windows (whose
  default-index builds are CPU-only already), use the default index.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TESTED_CPU_TORCH = "torch==2.13.0"  # the build CI and the README's numbers use
GPU_TORCH = "torch>=2.1"
HOW_TO_CHOOSE = (
    "choose with INSTRUCTKIT_TORCH_INDEX=<index URL> (e.g. a CPU or CUDA wheel index) "
    "and INSTRUCTKIT_TORCH=<requirement>"
)
PROBE_TIMEOUT_S = 8.0


@dataclass
class Attempt:
    """One way to install torch: the requirement and the index arguments for pip."""

    requirement: str
    index_args: list[str] = field(default_factory=list)
    note: str = ""  # the one line printed when this attempt is the one used


@dataclass
class Plan:
    attempts: list[Attempt]


def has_nvidia_gpu(proc_gpus: Path = Path("/proc/driver/nvidia/gpus")) -> bool:
    """True when ``nvidia-smi -L`` lists a GPU or the NVIDIA driver reports one."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            done = subprocess.run(
                [smi, "-L"], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and "GPU" in done.stdout:
            return True
    try:
        return any(proc_gpus.iterdir())
    except OSError:
        return False


def index_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url``'s page for torch answers (a file:// index: whether it exists)."""
    page = url.rstrip("/") + "/torch/"
    parsed = urllib.parse.urlparse(page)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path)).is_dir()
    try:
        with urllib.request.urlopen(page, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (OSError, ValueError, urllib.error.URLError):
        return False


def decide(
    env: Mapping[str, str],
    gpu: bool,
    system: str,
    reachable: Callable[[str], bool],
    cpu_index: str = CPU_INDEX,
) -> Plan:
    """The attempts, in order, that install torch on this machine (see the module docstring)."""
    user_requirement = env.get("INSTRUCTKIT_TORCH", "").strip()
    user_index = env.get("INSTRUCTKIT_TORCH_INDEX", "").strip()
    requirement = user_requirement or (GPU_TORCH if gpu else TESTED_CPU_TORCH)
    chosen = f" (INSTRUCTKIT_TORCH={user_requirement})" if user_requirement else ""

    if user_index:
        note = f"bootstrap: {requirement} from INSTRUCTKIT_TORCH_INDEX={user_index}{chosen}"
        return Plan([Attempt(requirement, ["--index-url", user_index], note)])
    if gpu:
        note = f"bootstrap: {requirement} from the default package index (NVIDIA GPU found)"
        return Plan([Attempt(requirement, [], note)])
    if system != "Linux":
        note = (
            f"bootstrap: {requirement} from the default package index "
            f"(CPU build: its {system} builds have no CUDA)"
        )
        return Plan([Attempt(requirement, [], note)])

    fallback = Attempt(
        requirement,
        [],
        f"bootstrap: no NVIDIA GPU, but the PyTorch CPU index {cpu_index} is unreachable, so "
        f"{requirement} comes from the default package index (on Linux that can be a CUDA "
        f"build of several GB); {HOW_TO_CHOOSE}",
    )
    if not reachable(cpu_index):
        return Plan([fallback])
    cpu = Attempt(
        requirement,
        ["--index-url", cpu_index],
        f"bootstrap: no NVIDIA GPU: {requirement}, CPU build, from {cpu_index}; {HOW_TO_CHOOSE}",
    )
    fallback.note = fallback.note.replace("is unreachable", "failed")
    return Plan([cpu, fallback])


def installed_version(name: str = "torch") -> str | None:
    """The installed distribution's version (what an index carries), never ``__version__``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def constraint_line(version: str, name: str = "torch") -> str:
    """A constraint that holds ``name`` at ``version`` and that pip can always satisfy.

    The local label (``+cpu``, ``+cu130``) is dropped: ``==2.13.0`` matches every build of
    2.13.0, the installed one included, while no index need carry ``2.13.0+cu130`` exactly.
    """
    public = version.split("+", 1)[0]
    if not re.fullmatch(r"[0-9][0-9A-Za-z.!-]*", public):
        raise ValueError(f"not a version: {version!r}")
    return f"{name}=={public}"


def pip_command(python: str, attempt: Attempt, extra: Sequence[str] = ()) -> list[str]:
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        *attempt.index_args,
        *extra,
        attempt.requirement,
    ]


def install(
    plan: Plan,
    python: str = sys.executable,
    extra: Sequence[str] = (),
    run: Callable[[list[str]], int] = lambda cmd: subprocess.call(cmd),
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Attempt:
    """Run the plan's attempts until one succeeds; print the line of the one that runs."""
    for attempt in plan.attempts:
        say(attempt.note)
        if run(pip_command(python, attempt, extra)) == 0:
            return attempt
    raise SystemExit("bootstrap: torch could not be installed (see pip's message above)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install", "plan", "constraints"])
    args = parser.parse_args(argv)
    if args.command == "constraints":
        version = installed_version()
        if version is None:
            raise SystemExit("bootstrap: torch is not installed in this environment")
        print(constraint_line(version))
        return 0
    version = installed_version()
    if args.command == "install" and version is not None:
        return 0  # the venv has torch already: keep it (its constraint is rewritten anyway)
    plan = decide(os.environ, has_nvidia_gpu(), platform.system(), index_reachable)
    if args.command == "plan":
        for attempt in plan.attempts:
            print(" ".join([*attempt.index_args, attempt.requirement]))
        return 0
    install(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())

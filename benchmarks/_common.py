"""Shared plumbing of the whole-process benchmarks (train, generate, render_process).

These benchmarks drive instructkit the way a user does: `python -m instructkit ...` in a fresh
process (the module entry point `accelerate launch -m instructkit` also uses), with PYTHONPATH
pointing at this checkout. They import nothing from instructkit themselves, so they keep working
while its modules move. Peak RSS is the child's own ``ru_maxrss`` from ``os.wait4`` (this driver
stays light: it never imports torch, so the value inherited across exec is small).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _shared_data() -> Path:
    """$INSTRUCTKIT_SHARED_DATA, else ../shared/data beside the checkout or its parent."""
    if os.environ.get("INSTRUCTKIT_SHARED_DATA"):
        return Path(os.environ["INSTRUCTKIT_SHARED_DATA"])
    candidates = [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    return next((c for c in candidates if c.exists()), candidates[0])


SHARED_DATA = _shared_data()
PLUGIN_DIRS = [REPO / "plugins" / "instructkit-peft-extras"]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: this checkout first on PYTHONPATH, offline hubs."""
    env = dict(os.environ)
    paths = [str(REPO), *(str(p) for p in PLUGIN_DIRS if p.exists()), str(HERE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.setdefault(key, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def compile_bytecode() -> None:
    """Byte-compile this checkout as pip does when it installs a package.

    Run from a source tree under ``PYTHONDONTWRITEBYTECODE=1`` (as on our CI machines) every
    child would compile instructkit's modules again: 50-60 ms of each start-up that an
    installed package never pays. The baseline's libraries are installed, so compiled.
    """
    import compileall

    for folder in (REPO / "instructkit", *PLUGIN_DIRS):
        if folder.exists():
            compileall.compile_dir(str(folder), quiet=1)


def instructkit_cmd(*args: str) -> list[str]:
    """`instructkit ARGS` as the module entry point of this interpreter."""
    return [sys.executable, "-m", "instructkit", *args]


def probed_instructkit_cmd(probe_out: Path, *args: str) -> list[str]:
    """`instructkit ARGS` with the step/generate timing probe (_probe.py) installed first."""
    code = (
        "import sys, _probe; _probe.install(sys.argv[1]);"
        "_probe.run_module('instructkit', ['instructkit', *sys.argv[2:]])"
    )
    return [sys.executable, "-c", code, str(probe_out), *args]


@dataclass
class ChildResult:
    cmd: list[str]
    returncode: int
    seconds: float
    peak_rss_mb: float
    started: float  # time.time() just before the child was spawned
    stdout: str = ""
    stderr: str = ""
    probe: dict[str, Any] = field(default_factory=dict)
    cpu_s: float = 0.0  # user + system CPU seconds of the child (wait4): robust to other load

    def check(self) -> ChildResult:
        if self.returncode != 0:
            tail = "\n".join((self.stderr or self.stdout).strip().splitlines()[-25:])
            raise RuntimeError(
                f"command failed ({self.returncode}): {shlex.join(self.cmd)}\n{tail}"
            )
        return self


def run_child(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    probe_out: Path | None = None,
    timeout: float | None = None,
    echo: bool = False,
) -> ChildResult:
    """Run one process to completion: wall seconds, its peak RSS (wait4) and its output."""
    if echo:
        shown = cmd[:1] + ["..."] + cmd[-12:] if len(cmd) > 16 else cmd
        print("  $", shlex.join(shown), flush=True)
    if probe_out is not None and probe_out.exists():
        probe_out.unlink()
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-child-{os.getpid()}.out"
    err_path = out_path.with_suffix(".err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env or child_env(), cwd=cwd)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = ChildResult(
        cmd=cmd,
        returncode=proc.returncode,
        seconds=seconds,
        # ru_maxrss is in KiB on Linux
        peak_rss_mb=usage.ru_maxrss / 1024,
        started=started,
        cpu_s=usage.ru_utime + usage.ru_stime,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    if probe_out is not None and probe_out.exists():
        result.probe = json.loads(probe_out.read_text())
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (load average included: these machines are shared)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["mem_gb"] = round(int(mem) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        info["commit"] = head.stdout.strip()
    except OSError:
        pass
    return info


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions without importing the packages."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def cache_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A markdown table (pastes into benchmarks/README.md as is)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nJSON written to {path}")


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def need_data(path: Path, what: str) -> bool:
    """True when the shared data is there; otherwise print why the benchmark skips."""
    if path.exists():
        return True
    print(f"SKIP: {what} not found at {path} (set --data or INSTRUCTKIT_SHARED_DATA)")
    return False


def write_dialogsum_replica(source_dir: Path, copies: int, out_dir: Path) -> int:
    """DialogSum train repeated ``copies`` times (fnames made unique) as the preset's file layout.

    Written with the standard library only; returns the number of dialogues.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "dialogsum.train.jsonl"
    stamp = out_dir / f".copies-{copies}"
    lines = (source_dir / "dialogsum.train.jsonl").read_text(encoding="utf-8").splitlines()
    if stamp.exists() and target.exists():
        return len(lines) * copies
    with open(target, "w", encoding="utf-8") as out:
        for copy in range(copies):
            for line in lines:
                if not line.strip():
                    continue
                row = json.loads(line)
                if copy:
                    row["fname"] = f"{row['fname']}#{copy}"
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    for old in out_dir.glob(".copies-*"):
        old.unlink()
    stamp.touch()
    return len(lines) * copies

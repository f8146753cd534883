"""scripts/torch_plan.py: which torch the bootstrap installs, from where, and its constraint.

Nothing here downloads: the decision is tested directly, and pip resolves against tiny fake
wheels in local file:// indexes (a "CPU index" and a "default index" whose torch, like PyPI's
Linux build, pulls an nvidia package).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "torch_plan.py"


def _load_plan() -> ModuleType:
    spec = importlib.util.spec_from_file_location("torch_plan", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["torch_plan"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


tp = _load_plan()

CPU = "https://cpu.example/whl/cpu"


def reachable(_url: str) -> bool:
    return True


def unreachable(_url: str) -> bool:
    return False


def _args(plan) -> list[tuple[str, list[str]]]:
    return [(a.requirement, a.index_args) for a in plan.attempts]


# ---------------------------------------------------------------- the decision


def test_no_gpu_gets_the_cpu_index_then_the_default_index() -> None:
    plan = tp.decide({}, gpu=False, system="Linux", reachable=reachable, cpu_index=CPU)
    assert _args(plan) == [
        (tp.TESTED_CPU_TORCH, ["--index-url", CPU]),
        (tp.TESTED_CPU_TORCH, []),
    ]
    note = plan.attempts[0].note
    assert note.count("\n") == 0 and CPU in note and "CPU build" in note
    assert "INSTRUCTKIT_TORCH_INDEX" in note and "INSTRUCTKIT_TORCH=" in note


def test_unreachable_cpu_index_falls_back_to_the_default_index_in_one_line() -> None:
    plan = tp.decide({}, gpu=False, system="Linux", reachable=unreachable, cpu_index=CPU)
    assert _args(plan) == [(tp.TESTED_CPU_TORCH, [])]
    note = plan.attempts[0].note
    assert "\n" not in note
    assert f"{CPU} is unreachable" in note and "default package index" in note
    assert "INSTRUCTKIT_TORCH_INDEX" in note and "INSTRUCTKIT_TORCH=" in note


def test_gpu_gets_the_normal_build_from_the_default_index() -> None:
    plan = tp.decide({}, gpu=True, system="Linux", reachable=reachable, cpu_index=CPU)
    assert _args(plan) == [(tp.GPU_TORCH, [])]
    assert "NVIDIA GPU found" in plan.attempts[0].note


def test_macos_without_gpu_uses_the_default_index_whose_build_is_cpu() -> None:
    plan = tp.decide({}, gpu=False, system="Darwin", reachable=reachable, cpu_index=CPU)
    assert _args(plan) == [(tp.TESTED_CPU_TORCH, [])]


@pytest.mark.parametrize("gpu", [False, True])
def test_user_index_and_requirement_win_without_fallback(gpu: bool) -> None:
    env = {"INSTRUCTKIT_TORCH": "torch==2.5.1", "INSTRUCTKIT_TORCH_INDEX": "https://my/cu121"}
    plan = tp.decide(env, gpu=gpu, system="Linux", reachable=unreachable, cpu_index=CPU)
    assert _args(plan) == [("torch==2.5.1", ["--index-url", "https://my/cu121"])]
    assert "INSTRUCTKIT_TORCH_INDEX=https://my/cu121" in plan.attempts[0].note


def test_user_requirement_alone_still_gets_the_cpu_index_without_gpu() -> None:
    env = {"INSTRUCTKIT_TORCH": "torch==2.5.1"}
    plan = tp.decide(env, gpu=False, system="Linux", reachable=reachable, cpu_index=CPU)
    assert _args(plan) == [("torch==2.5.1", ["--index-url", CPU]), ("torch==2.5.1", [])]


def test_install_tries_the_next_attempt_when_pip_fails() -> None:
    plan = tp.decide({}, gpu=False, system="Linux", reachable=reachable, cpu_index=CPU)
    commands: list[list[str]] = []
    lines: list[str] = []

    def run(cmd: list[str]) -> int:
        commands.append(cmd)
        return 1 if "--index-url" in cmd else 0

    used = tp.install(plan, python="py", run=run, say=lines.append)
    assert used is plan.attempts[1]
    assert [c[-1] for c in commands] == [tp.TESTED_CPU_TORCH] * 2
    assert "failed" in lines[-1]


# ---------------------------------------------------------------- detecting the machine


def _fake_smi(bin_dir: Path, output: str, code: int) -> None:
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    smi.chmod(0o755)


def test_gpu_detected_by_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_smi(tmp_path / "bin", "GPU 0: NVIDIA H100 (UUID: GPU-x)", 0)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert tp.has_nvidia_gpu(proc_gpus=tmp_path / "none")


def test_no_gpu_when_nvidia_smi_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_smi(tmp_path / "bin", "NVIDIA-SMI has failed: no driver", 9)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert not tp.has_nvidia_gpu(proc_gpus=tmp_path / "none")


def test_gpu_detected_by_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    assert tp.has_nvidia_gpu(proc_gpus=tmp_path / "gpus")
    assert not tp.has_nvidia_gpu(proc_gpus=tmp_path / "missing")


def test_file_index_reachability(tmp_path: Path) -> None:
    (tmp_path / "torch").mkdir()
    assert tp.index_reachable(tmp_path.as_uri())
    assert not tp.index_reachable((tmp_path / "nowhere").as_uri())


# ---------------------------------------------------------------- the constraint


def test_constraint_drops_the_local_label() -> None:
    assert tp.constraint_line("2.13.0+cu130") == "torch==2.13.0"
    assert tp.constraint_line("2.13.0+cpu") == "torch==2.13.0"
    assert tp.constraint_line("2.5.1") == "torch==2.5.1"
    with pytest.raises(ValueError):
        tp.constraint_line("")


def test_constraints_come_from_the_distribution_without_importing_torch(tmp_path: Path) -> None:
    """A torch whose import is noisy and whose __version__ has a label nobody serves."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "import sys\nprint('Failed to initialize NumPy', file=sys.stderr)\n"
        "__version__ = '2.13.0+cu130'\n"
    )
    dist_info = tmp_path / "torch-2.13.0+cu130.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cu130\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "constraints"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("torch==2.13.0\n", "")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "install"], capture_output=True, text=True, env=env
    )
    assert (done.returncode, done.stderr) == (0, "")  # installed already: nothing to do or say


# ---------------------------------------------------------------- pip against local indexes


def _wheel(index: Path, name: str, version: str, requires: list[str] = ()) -> None:
    """A minimal wheel, filed in a PEP 503 simple index at ``index``."""
    project = index / name.replace("_", "-")
    project.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {project.name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{name}/__init__.py": "",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(project / filename, "w") as wheel:
        for path, text in {**files, f"{dist_info}/RECORD": record}.items():
            wheel.writestr(path, text)
    links = "".join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(project.glob("*.whl")))
    (project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")


@pytest.fixture
def indexes(tmp_path: Path) -> tuple[str, str]:
    """(cpu index URL, default index URL); the default's torch pulls an nvidia package."""
    cpu, default = tmp_path / "cpu", tmp_path / "default"
    _wheel(cpu, "torch", "2.13.0+cpu")
    _wheel(default, "torch", "2.13.0", ["nvidia-cublas-cu13"])
    _wheel(default, "nvidia_cublas_cu13", "13.0.0")
    return cpu.as_uri(), default.as_uri()


def _pip_env(default_index: str) -> dict[str, str]:
    """pip as a user's: no config file, no find-links, only the default index given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_INDEX_URL=default_index,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PIP_NO_INPUT="1",
    )
    return env


def _would_install(plan, default_index: str, report: Path) -> tuple[list[str], str]:
    """What pip would install for the plan (dry run, ignoring this venv's torch)."""
    lines: list[str] = []
    env = _pip_env(default_index)

    def run(cmd: list[str]) -> int:
        return subprocess.run(cmd, env=env, capture_output=True, text=True).returncode

    extra = ["--dry-run", "--ignore-installed", "--report", str(report)]
    tp.install(plan, python=sys.executable, extra=extra, run=run, say=lines.append)
    installs = json.loads(report.read_text())["install"]
    names = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs]
    return sorted(names), lines[-1]


@pytest.mark.slow
def test_a_machine_reaching_the_cpu_index_gets_the_cpu_build_and_no_cuda(
    indexes: tuple[str, str], tmp_path: Path
) -> None:
    cpu, default = indexes
    plan = tp.decide({}, gpu=False, system="Linux", reachable=tp.index_reachable, cpu_index=cpu)
    names, line = _would_install(plan, default, tmp_path / "report.json")
    assert names == ["torch==2.13.0+cpu"]
    assert not any(n.startswith(("nvidia", "cuda")) for n in names)
    assert "CPU build" in line


@pytest.mark.slow
def test_unreachable_cpu_index_falls_back_to_the_default_build(
    indexes: tuple[str, str], tmp_path: Path
) -> None:
    _cpu, default = indexes
    missing = (tmp_path / "offline").as_uri()
    plan = tp.decide({}, gpu=False, system="Linux", reachable=tp.index_reachable, cpu_index=missing)
    names, line = _would_install(plan, default, tmp_path / "report.json")
    assert names == ["nvidia-cublas-cu13==13.0.0", "torch==2.13.0"]
    assert "unreachable" in line


@pytest.mark.slow
def test_constraint_from_a_local_label_is_one_pip_can_satisfy(
    indexes: tuple[str, str], tmp_path: Path
) -> None:
    """The index carries 2.13.0; torch.__version__ said 2.13.0+cu130 (the old constraint)."""
    _cpu, default = indexes
    env = _pip_env(default)

    def resolve(constraint: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "constraints.txt"
        path.write_text(constraint + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        return subprocess.run(
            [*cmd, "-c", str(path), "torch>=2.1"], env=env, capture_output=True, text=True
        )

    assert resolve(tp.constraint_line("2.13.0+cu130")).returncode == 0
    old = resolve("torch==2.13.0+cu130")  # what `torch.__version__` gave
    assert old.returncode != 0 and "ResolutionImpossible" in old.stderr + old.stdout

"""The package as users install it: a wheel that carries templates/ and the demo's data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(REPO_ROOT),
        ],
        check=True,
    )
    return next(out.glob("instructkit-*.whl"))


def test_wheel_carries_templates(wheel):
    shipped = {
        p.relative_to(REPO_ROOT / "templates").as_posix()
        for p in (REPO_ROOT / "templates").rglob("*")
        if p.is_file()
    }
    assert shipped, "templates/ is empty"
    names = set(zipfile.ZipFile(wheel).namelist())
    packed = {
        n.removeprefix("instructkit/templates/")
        for n in names
        if n.startswith("instructkit/templates/")
    }
    assert shipped <= packed


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    return target


def run_installed(target: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python code against the installed wheel, away from the checkout."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        # INSTRUCTKIT_LOAD_PLUGINS="": no third-party plugins from the environment
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "INSTRUCTKIT_LOAD_PLUGINS": ""},
    )


def test_installed_wheel_finds_templates(installed, tmp_path):
    target = installed
    code = "import instructkit.paths as p; print(p.builtin_templates_dir())"
    result = run_installed(target, code, tmp_path)
    assert result.returncode == 0, result.stderr
    found = Path(result.stdout.strip())
    assert found == target / "instructkit" / "templates"
    assert any(found.rglob("*.jinja"))


def test_wheel_carries_the_demo_data(wheel):
    shipped = REPO_ROOT / "examples" / "data" / "dialogs"
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in shipped.glob("*.jsonl"):
        assert f"instructkit/demo_data/{path.name}" in names


@pytest.mark.slow
def test_installed_wheel_runs_the_demo(installed, tmp_path):
    # the whole demo from the wheel, away from any checkout, with the smallest step counts
    out = tmp_path / "demo"
    code = (
        "import sys; from instructkit.cli import cli; sys.argv = ['instructkit', 'demo', "
        f"'--out', {str(out)!r}, '--base-steps', '1', '--tune-steps', '1', '--eval-rows', '1', "
        "'--quiet']; cli()"
    )
    result = run_installed(installed, code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "report" / "report.json").is_file()
    manifest = (out / "data" / "topic" / "instructkit.json").read_text()
    assert str(installed / "instructkit" / "demo_data") in manifest


def test_wheel_carries_the_accelerate_configs(wheel):
    # where launch.CONFIG_DIR looks for them (instructkit/train/accelerate_configs/)
    from instructkit.train.launch import CONFIG_DIR, CONFIG_NAMES

    assert CONFIG_DIR == REPO_ROOT / "instructkit" / "train" / "accelerate_configs"
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in CONFIG_NAMES:
        assert f"instructkit/train/accelerate_configs/{config}.yaml" in names

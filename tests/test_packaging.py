"""The package as users install it: a wheel that carries the top-level templates/ folder."""

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


def test_installed_wheel_finds_templates(wheel, tmp_path):
    target = tmp_path / "site"
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
    code = "import instructkit.paths as p; print(p.builtin_templates_dir())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    found = Path(result.stdout.strip())
    assert found == target / "instructkit" / "templates"
    assert any(found.rglob("*.jinja"))


def test_wheel_carries_the_accelerate_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in ("ddp", "fsdp", "zero2", "zero3"):
        assert f"instructkit/accelerate_configs/{config}.yaml" in names

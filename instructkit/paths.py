"""Where instructkit finds its user directory, template packs and the demo's sample data."""

from __future__ import annotations

import os
from pathlib import Path

import click

_PACKAGE_DIR = Path(__file__).resolve().parent


def user_dir() -> Path:
    """The user directory: INSTRUCTKIT_USER_PATH, else the platform's app directory."""
    configured = os.environ.get("INSTRUCTKIT_USER_PATH")
    return Path(configured) if configured else Path(click.get_app_dir("instructkit"))


def builtin_templates_dir() -> Path:
    """The shipped template packs: inside the package in a wheel, top-level in a checkout."""
    installed = _PACKAGE_DIR / "templates"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "templates"


def demo_data_dir() -> Path:
    """The demo's sample dialogues: inside the package in a wheel, in examples/ in a checkout."""
    installed = _PACKAGE_DIR / "demo_data"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "examples" / "data" / "dialogs"


def template_search_path() -> list[Path]:
    """Directories searched for packs, first match wins: env var, user dir, built-ins."""
    dirs = [
        Path(p) for p in os.environ.get("INSTRUCTKIT_TEMPLATES_PATH", "").split(os.pathsep) if p
    ]
    dirs.append(user_dir() / "templates")
    dirs.append(builtin_templates_dir())
    return dirs

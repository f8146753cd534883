"""Shared fixtures: an isolated user directory, offline hubs, no third-party plugin leakage."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # Read by instructkit.plugins before entry points load: installed plugins stay out of tests.
    sys._instructkit_under_test = True  # type: ignore[attr-defined]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gpu", action="store_true", help="run tests marked gpu (needs CUDA)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--gpu"):
        return
    skip_gpu = pytest.mark.skip(reason="needs a GPU: run with --gpu")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every user and cache directory at a temporary folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("INSTRUCTKIT_USER_PATH", str(home / "instructkit"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "hf" / "datasets"))
    monkeypatch.setenv("INSTRUCTKIT_CACHE", str(home / "cache"))
    monkeypatch.delenv("INSTRUCTKIT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("INSTRUCTKIT_TRACE_PLUGINS", raising=False)
    monkeypatch.delenv("INSTRUCTKIT_DEBUG", raising=False)
    return home


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Real SAMSum/DialogSum: INSTRUCTKIT_SHARED_DATA, else ../shared/data; skip if absent."""
    configured = os.environ.get("INSTRUCTKIT_SHARED_DATA")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not (path / "samsum").is_dir() or not (path / "dialogsum").is_dir():
        pytest.skip(f"shared data not found at {path} (set INSTRUCTKIT_SHARED_DATA)")
    return path


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core box: extra intra-op threads only fight each other (5x)."""
    from instructkit.testing import one_torch_thread as single_thread

    with single_thread():
        yield

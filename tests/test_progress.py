"""Long work is never silent: bars on a terminal, plain lines in a log, nothing with --quiet."""

from __future__ import annotations

import time

import pytest

from instructkit.cli import cli
from instructkit.progress import progress_bar, working


@pytest.fixture
def every_tick(monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_PROGRESS_EVERY", "0")


def test_bar_prints_plain_lines_when_not_a_terminal(capsys, every_tick):
    with progress_bar(4, "train", unit="steps") as bar:
        bar.set_postfix(loss="1.5")
        bar.update(2)
    assert capsys.readouterr().err.startswith("train: 2/4 steps (50%), 0 s, loss=1.5\n")
    with progress_bar(4, "train", quiet=True) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_plain_lines_wait_for_the_interval(capsys, monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_PROGRESS_EVERY", "30")
    with progress_bar(4, "mix train") as bar:
        bar.update(4)
    assert capsys.readouterr().err == ""  # quick work prints nothing


def test_working_beats_while_a_long_step_runs(capsys, monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_PROGRESS_EVERY", "0.05")
    with working("Loading model m"):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("Loading model m ... ") for line in lines)
    with working("Loading model m", quiet=True):
        time.sleep(0.15)
    assert capsys.readouterr().err == ""


def test_tiny_model_is_not_silent(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_PROGRESS_EVERY", "0.01")
    args = ["tiny-model", str(tmp_path / "m"), "--vocab-size", "64", "--hidden-size", "16"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Building a tiny t5 model and training its tokenizer ... " in result.output
    result = runner.invoke(cli, [*args[:1], str(tmp_path / "q"), *args[2:], "--quiet"])
    assert result.output == f"Tiny t5 model written to {tmp_path / 'q'}\n"

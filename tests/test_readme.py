"""Every command of the README's tour and of examples/ works as written (as a new user runs it)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from instructkit.cli import cli

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def bash_commands(markdown: str, section: str | None = None) -> list[list[str]]:
    """The `instructkit ...` command lines of a markdown file's bash blocks (joined on `\\`)."""
    if section is not None:
        markdown = markdown.split(section, 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("instructkit "):
                commands.append(shlex.split(line)[1:])
    return commands


def run(runner, args: list[str]) -> str:
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, f"instructkit {' '.join(args)}\n{result.output}"
    return result.output


def tour_block() -> str:
    tour = (REPO_ROOT / "README.md").read_text().split("## A tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", tour, flags=re.S)[0]


@pytest.fixture
def in_fresh_checkout(tmp_path, monkeypatch):
    """A working directory that looks like a fresh checkout: examples/ and nothing built yet."""
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_tour_runs_as_written(runner, in_fresh_checkout, one_torch_thread):
    commands = bash_commands((REPO_ROOT / "README.md").read_text(), "## A tour")
    assert len(commands) >= 10
    outputs = [run(runner, args) for args in commands]
    report = (in_fresh_checkout / "runs" / "report" / "report.md").read_text()
    assert "| dialogsum |" in report and "| dialogsum_topic |" in report
    assert (in_fresh_checkout / "build" / "mix.png").stat().st_size > 0
    assert (in_fresh_checkout / "build" / "mix-messages" / "dataset_info.json").is_file()
    # the tour ends in a result a newcomer can read: scores that mean something, or a warning
    # that says why they do not (as the README announces)
    from instructkit.evaluate.degenerate import degenerate_note

    evaluated = [
        (out, in_fresh_checkout / args[args.index("--out") + 1])
        for args, out in zip(commands, outputs, strict=True)
        if args[0] == "evaluate"
    ]
    for output, out_dir in evaluated:
        for predictions in sorted(out_dir.rglob("predictions.jsonl")):
            rows = [json.loads(line) for line in predictions.read_text().splitlines()]
            note = degenerate_note([row["prediction"] for row in rows])
            if note:
                assert f"{note}" in output, (predictions, output)
    assert "evaluate` says so in a\nwarning" in (REPO_ROOT / "README.md").read_text()


def test_tour_says_how_a_fresh_shell_reaches_the_command(tmp_path):
    """The tour's first line, run by bash in a fresh shell, puts the venv's command on PATH."""
    lines = [line for line in tour_block().splitlines() if line.strip()]
    setup = [line.split("#", 1)[0].strip() for line in lines if not line.startswith("#")]
    assert setup[0] == ". .venv/bin/activate"
    assert setup[1].startswith("instructkit ")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file() or not (venv / "bin" / "instructkit").is_file():
        pytest.skip("the tests do not run from a virtual environment with instructkit installed")
    (tmp_path / ".venv").symlink_to(venv)
    script = f"{setup[0]}\ncommand -v instructkit\n"
    found = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().endswith(".venv/bin/instructkit")
    assert "VENV ?= .venv" in (REPO_ROOT / "Makefile").read_text()


def test_examples_walkthrough_data_steps_run(runner, in_fresh_checkout, shared_data_dir):
    text = (REPO_ROOT / "examples" / "README.md").read_text()
    text = text.replace("../shared/data", str(shared_data_dir))
    data_steps = [c for c in bash_commands(text) if c[0] in ("render", "mix", "inspect")]
    assert len(data_steps) >= 5
    for args in data_steps:
        run(runner, args)
    from collections import Counter

    from instructkit.artifacts.dataset import open_split

    train = open_split(in_fresh_checkout / "build" / "mix", "train")
    assert Counter(train.column("task").to_pylist()) == {"samsum": 15000, "dialogsum": 5000}


@pytest.mark.parametrize("config", sorted((REPO_ROOT / "examples").rglob("train-*.yaml")))
def test_example_train_configs_are_valid(config):
    """The real-scale run files name an installed backend and only valid, well-typed options."""
    from instructkit.commands.train import load_run_config
    from instructkit.train.base import build_options, get_trainer

    run_config = load_run_config(config)
    trainer = get_trainer(run_config["backend"])
    build_options(trainer, run_config.get("options"))
    train_commands = bash_commands((REPO_ROOT / "examples" / "README.md").read_text())
    assert ["train", "--config", f"examples/{config.relative_to(REPO_ROOT / 'examples')}"] in (
        train_commands
    )

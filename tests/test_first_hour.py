"""A new user's first hour (issue 10): the traps a newcomer fell into, each closed by a test."""

from __future__ import annotations

import subprocess
import sys

import pytest

from instructkit.cli import cli
from instructkit.testing import make_tiny_dataset, tiny_rows


def error_of(runner, args: list[str]) -> str:
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    return result.output


@pytest.fixture
def beside_runs(tmp_path, monkeypatch):
    """A working directory with a dataset and an existing runs/ folder (as after the tour)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the hub is never asked either way
    (tmp_path / "runs" / "lora").mkdir(parents=True)
    (tmp_path / "runs" / "lora" / "config.json").write_text("{}")
    make_tiny_dataset(tmp_path / "build" / "mix", splits={"train": tiny_rows(4)})
    return tmp_path


def _no_hub(monkeypatch):
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("the hub was asked for a local path")

    for name in ("AutoTokenizer", "AutoConfig", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "build/mix", "-b", "full", "-m", "runs/lroa", "--out", "runs/x"],
        ["evaluate", "build/mix", "--model", "runs/lroa", "--split", "train", "--out", "runs/e"],
        ["evaluate", "--compare", "base=runs/lora", "typo=runs/lroa", "build/mix",
         "--split", "train", "--out", "runs/r"],
    ],
    ids=["train", "evaluate", "compare"],
)  # fmt: skip
def test_typo_in_a_local_model_path_fails_at_once(runner, beside_runs, monkeypatch, args):
    _no_hub(monkeypatch)
    assert error_of(runner, args) == "Error: Model directory 'runs/lroa' does not exist.\n"


def test_hub_ids_stay_hub_ids(beside_runs):
    from instructkit.modeling import looks_local

    assert looks_local("runs/lroa") and looks_local("./x") and looks_local("~/m")
    assert not looks_local("google/flan-t5-small")  # no folder 'google' here
    (beside_runs / "google").mkdir()
    assert looks_local("google/flan-t5-small")  # a folder of that name: the user means it


def test_closed_stdout_is_not_an_error():
    """`instructkit plugins --all | head -1`: the reader is gone before we write."""
    command = [sys.executable, "-m", "instructkit", "plugins", "--all", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # no reader left: every write gets EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait() == 0, stderr
    assert stderr == ""


def test_a_broken_pipe_elsewhere_is_still_an_error(runner, monkeypatch):
    """Only a closed stdout is quiet: a worker's broken pipe still fails with one line."""

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("instructkit.artifacts.inspect.inspect_dataset", broken)
    result = runner.invoke(cli, ["inspect", "build/mix"])
    assert result.exit_code == 1
    assert result.output == "Error: [Errno 32] Broken pipe (use --debug for details).\n"

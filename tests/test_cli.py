from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

import instructkit
from instructkit import errors
from instructkit.cli import cli
from instructkit.plugins import pm


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"instructkit, version {instructkit.__version__}"


def test_help_lists_core_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "plugins" in result.output


def test_a_command_freezes_what_start_up_left_once(runner, monkeypatch):
    import gc

    from instructkit import cli as cli_module

    calls = []
    monkeypatch.setattr(cli_module, "_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(1))
    assert runner.invoke(cli, ["plugins"]).exit_code == 0
    assert runner.invoke(cli, ["plugins"]).exit_code == 0
    assert calls == [1]  # the first command only: later ones' garbage is still collected


def test_python_dash_m_runs_cli():
    result = subprocess.run(
        [sys.executable, "-m", "instructkit", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("instructkit, version")


class FailingCommandPlugin:
    __name__ = "FailingCommandPlugin"

    @instructkit.hookimpl
    def register_commands(self, cli):
        @cli.command(name="explode")
        @click.option("--kind", default="user")
        def explode(kind):
            if kind == "user":
                raise errors.MixError("Weights must be positive: fix 'weight' for task 'x'.")
            raise KeyboardInterrupt

        @cli.command(name="bad-value")
        @click.option("--n", type=int, required=True)
        def bad_value(n):
            pass


@pytest.fixture
def failing_command():
    name = "failing-command"
    pm.register(FailingCommandPlugin(), name=name)
    try:
        pm.hook.register_commands.call_extra([], {"cli": cli})
        yield
    finally:
        pm.unregister(name=name)
        cli.commands.pop("explode", None)
        cli.commands.pop("bad-value", None)


def test_library_error_is_one_line_exit_1(runner, failing_command):
    result = runner.invoke(cli, ["explode"])
    assert result.exit_code == 1
    assert result.output == "Error: Weights must be positive: fix 'weight' for task 'x'.\n"
    assert "Traceback" not in result.output


def test_debug_flag_shows_the_exception(runner, failing_command):
    result = runner.invoke(cli, ["--debug", "explode"])
    assert result.exit_code == 1
    assert isinstance(result.exception, errors.MixError)


def test_interrupt_says_nothing_written(runner, failing_command):
    result = runner.invoke(cli, ["explode", "--kind", "interrupt"])
    assert result.exit_code == 130
    assert "Interrupted: nothing was written." in result.output


def test_usage_error_exit_2(runner, failing_command):
    result = runner.invoke(cli, ["bad-value", "--n", "many"])
    assert result.exit_code == 2
    assert "'many' is not a valid integer" in result.output


def test_plugins_json_lists_builtins(runner):
    result = runner.invoke(cli, ["plugins", "--all", "--json"])
    assert result.exit_code == 0
    plugins = json.loads(result.output)
    names = {p["name"] for p in plugins}
    assert "instructkit.default_plugins.full" in names
    assert all(p["builtin"] for p in plugins)  # entry points are off under pytest


def test_plugins_without_all_hides_builtins(runner):
    result = runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "No third-party plugins installed" in result.output


def test_import_and_help_do_not_import_torch():
    code = (
        "import sys, instructkit, instructkit.cli;"
        "from click.testing import CliRunner;"
        "r = CliRunner().invoke(instructkit.cli.cli, ['--help']);"
        "assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_missing_training_extra_is_one_line(runner, tmp_path, monkeypatch):
    """Without `instructkit[train]`, train says what to install instead of a traceback."""
    from instructkit.testing import make_tiny_dataset, make_tiny_model

    data = make_tiny_dataset(tmp_path / "data", train_rows=4)
    model = make_tiny_model(tmp_path / "model", "gpt2")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import now fails, as if absent
    result = runner.invoke(
        cli, ["train", str(data), "-b", "full", "-m", str(model), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1, result.output
    assert result.output == (
        "Error: This command needs the training extra (transformers is not installed): "
        "pip install 'instructkit[train]'.\n"
    )
    assert not list(tmp_path.glob("o*")), "nothing is left behind"

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import instructkit
from instructkit import hookspecs, plugins
from instructkit.plugins import pm

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = REPO_ROOT / "plugins" / "instructkit-peft-extras"
TESTS_DIR = Path(__file__).resolve().parent


def hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith(("register_", "prepare_")))


def test_every_hook_is_a_spec():
    assert set(hook_names()) == {h for h in dir(pm.hook) if not h.startswith("_")}


@pytest.mark.parametrize("name", hook_names())
def test_plugin_hooks_have_tests(name):
    source = "\n".join(p.read_text() for p in TESTS_DIR.rglob("test_*.py"))
    assert f"def test_hook_{name}" in source, f"write a test_hook_{name} test"


@pytest.mark.parametrize("name", hook_names())
def test_plugin_hooks_are_documented(name):
    spec = getattr(hookspecs, name)
    assert spec.__doc__ and ":param" in spec.__doc__


def test_hook_register_commands(runner):
    from instructkit.cli import cli

    class HelloPlugin:
        __name__ = "HelloPlugin"

        @instructkit.hookimpl
        def register_commands(self, cli):
            @cli.command(name="hello-test")
            def hello():
                print("hello from a plugin")

    pm.register(HelloPlugin(), name="hello-plugin")
    try:
        pm.hook.register_commands.call_extra([], {"cli": cli})
        result = runner.invoke(cli, ["hello-test"])
        assert result.exit_code == 0
        assert result.output == "hello from a plugin\n"
    finally:
        pm.unregister(name="hello-plugin")
        cli.commands.pop("hello-test", None)


def test_misspelt_hook_fails_loudly(monkeypatch):
    class Typo:
        __name__ = "Typo"

        @instructkit.hookimpl
        def register_trainerz(self, register):
            pass

    pm.register(Typo(), name="typo")
    try:
        monkeypatch.setattr(plugins, "_loaded", False)
        with pytest.raises(instructkit.errors.PluginError, match="register_trainerz"):
            plugins.load_plugins()
    finally:
        pm.unregister(name="typo")
        plugins._loaded = True


@pytest.fixture(scope="module")
def installed_example_plugin(tmp_path_factory):
    """Install the example plugin package into a throwaway target: the real entry-point path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(EXAMPLE_PLUGIN),
        ],
        check=True,
    )
    return target


def run_cli(args, site, extra_env=None):
    env = dict(os.environ)
    # Put the installed plugin first; the rest of sys.path finds instructkit itself.
    env["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path])
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "instructkit", *args], capture_output=True, text=True, env=env
    )


def test_example_plugin_found_through_entry_point(installed_example_plugin):
    result = run_cli(["plugins", "--json"], installed_example_plugin)
    assert result.returncode == 0, result.stderr
    found = {p["name"]: p for p in json.loads(result.stdout)}
    assert "peft-extras" in found
    assert found["peft-extras"]["version"] == "0.1.0"
    assert "register_commands" in found["peft-extras"]["hooks"]


def test_example_plugin_command_runs(installed_example_plugin):
    result = run_cli(["peft-extras"], installed_example_plugin)
    assert result.returncode == 0, result.stderr
    assert "loaded through its entry point" in result.stdout


def test_allow_list_skips_plugins(installed_example_plugin):
    result = run_cli(
        ["plugins", "--json"], installed_example_plugin, {"INSTRUCTKIT_LOAD_PLUGINS": ""}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_trace_prints_hook_calls(installed_example_plugin):
    result = run_cli(["plugins"], installed_example_plugin, {"INSTRUCTKIT_TRACE_PLUGINS": "1"})
    assert result.returncode == 0
    assert "calling hook" in result.stderr

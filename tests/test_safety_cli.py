"""Issue 12, section 5: one-line errors for score and evaluate, and third-party plugins that
cannot take the CLI down. CLI level only (plugins are real entry points in a temp site dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instructkit.cli import cli


def one_line(result, *needles: str) -> str:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result.output


# ---------------------------------------------------------------- score


@pytest.mark.parametrize(
    "row",
    [
        {"prediction": "a", "reference": 3},
        {"prediction": "a", "references": [None]},
        {"prediction": "a", "references": ["x", 4]},
        {"prediction": 5, "reference": "a"},
    ],
)
def test_score_bad_reference_values_are_one_line(runner, tmp_path, row):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps(row) + "\n")
    one_line(runner.invoke(cli, ["score", str(predictions)]), str(predictions), "1")


def test_score_null_field_in_a_references_file_is_one_line(runner, tmp_path):
    predictions = tmp_path / "p.txt"
    predictions.write_text("a\nb\n")
    references = tmp_path / "refs.jsonl"
    references.write_text(
        json.dumps({"summary": "a"}) + "\n" + json.dumps({"summary": None}) + "\n"
    )
    args = ["score", str(predictions), "-r", str(references), "--reference-fields", "summary"]
    one_line(runner.invoke(cli, args), str(references), "summary", "2")


@pytest.mark.parametrize("which", ["predictions", "references"])
def test_score_utf8_error_names_the_file(runner, tmp_path, which):
    good = tmp_path / "good.txt"
    good.write_text("a\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\n")
    predictions, references = (bad, good) if which == "predictions" else (good, bad)
    result = runner.invoke(cli, ["score", str(predictions), "-r", str(references)])
    one_line(result, str(bad), "UTF-8")


def test_score_refuses_an_unbounded_bootstrap(tmp_path):
    predictions = tmp_path / "p.txt"
    predictions.write_text("a b\n")
    args = [sys.executable, "-m", "instructkit", "score", str(predictions), "-r",
            str(predictions), "--bootstrap", "1000000000"]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--bootstrap" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- evaluate --compare


@pytest.mark.parametrize("value", ["=X", "=", "base="])
def test_compare_without_a_name_gives_a_sensible_hint(runner, tmp_path, value):
    args = ["evaluate", "--compare", value, str(tmp_path), "--out", str(tmp_path / "e")]
    output = one_line(runner.invoke(cli, args), "--compare")
    assert "==" not in output and "base=base=" not in output


# ---------------------------------------------------------------- plugins


def make_site(root: Path, plugins: dict[str, str]) -> Path:
    """A site dir with one distribution whose 'instructkit' entry points are ``plugins``
    (entry-point name -> module source); each module is importable as ``ikp_<name>``."""
    root.mkdir(parents=True, exist_ok=True)
    dist = root / "ikp_test-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ikp-test\nVersion: 0.1\n")
    lines = ["[instructkit]"]
    for name, source in plugins.items():
        module = f"ikp_{name.replace('-', '_')}"
        (root / f"{module}.py").write_text(source)
        lines.append(f"{name} = {module}")
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def run_cli(site: Path, *args: str, env: dict[str, str] | None = None):
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path])
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "instructkit", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


GOOD = """
import click
import instructkit

@instructkit.hookimpl
def register_commands(cli):
    @cli.command(name="good-hello")
    def hello():
        click.echo("hello from good")
"""

BROKEN = "raise RuntimeError('kaboom at import')\n"

REPLACES_RENDER = """
import click
import instructkit

@instructkit.hookimpl
def register_commands(cli):
    @cli.command(name="render")
    def render():
        click.echo("not the real render")
"""

RAISES_IN_HOOK = """
import instructkit

@instructkit.hookimpl
def prepare_jinja2_environment(env):
    raise ValueError("filter setup exploded")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_site(
        tmp_path_factory.mktemp("site"),
        {"good": GOOD, "broken": BROKEN, "replacer": REPLACES_RENDER},
    )


def test_a_broken_plugin_does_not_take_help_down(site):
    result = run_cli(site, "--help")
    assert result.returncode == 0, result.stderr
    assert "render" in result.stdout
    assert "broken" in result.stderr and "ikp_broken" in result.stderr
    assert "kaboom at import" in result.stderr and "Traceback" not in result.stderr


def test_the_other_plugins_still_work_beside_a_broken_one(site):
    result = run_cli(site, "good-hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from good\n"
    listed = run_cli(site, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "good" in {p["name"] for p in json.loads(listed.stdout)}


def test_a_plugin_replacing_a_built_in_command_is_reported(site, tmp_path):
    result = run_cli(site, "render", "--help")
    assert result.returncode == 0, result.stderr
    assert "not the real render" not in result.stdout
    assert "Render a raw dataset" in result.stdout
    assert "replacer" in result.stderr and "'render'" in result.stderr


def test_a_typo_in_load_plugins_is_reported(site):
    result = run_cli(site, "plugins", env={"INSTRUCTKIT_LOAD_PLUGINS": "god"})
    assert result.returncode == 0, result.stderr
    assert "'god'" in result.stderr and "good" in result.stderr


def test_a_plugin_hook_that_raises_is_one_line(tmp_path):
    site = make_site(tmp_path / "site", {"raiser": RAISES_IN_HOOK})
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"dialogue": "A: hi", "summary": "hi"}) + "\n")
    result = run_cli(
        site, "render", str(data), "--templates", "samsum", "--out", str(tmp_path / "o"), "-q"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "raiser" in result.stderr and "filter setup exploded" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr

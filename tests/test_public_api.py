"""The public API: ``instructkit.__all__``, loaded lazily, and what plugins import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import instructkit

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = REPO_ROOT / "plugins" / "instructkit-peft-extras"


def test_every_public_name_resolves():
    for name in instructkit.__all__:
        assert getattr(instructkit, name) is not None, name
    assert sorted(set(instructkit.__all__)) == sorted(instructkit.__all__)


def test_unknown_names_raise_attribute_error():
    try:
        instructkit.no_such_name  # noqa: B018
    except AttributeError as ex:
        assert "no_such_name" in str(ex)
    else:
        raise AssertionError("instructkit.no_such_name resolved")


def test_import_instructkit_stays_light():
    code = (
        "import sys, instructkit; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'transformers', 'datasets', 'pyarrow', 'jinja2', 'click'} "
        "or m.startswith(('instructkit.render', 'instructkit.mix', 'instructkit.train', "
        "'instructkit.evaluate', 'instructkit.artifacts'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_example_plugin_imports_only_the_public_api():
    for path in EXAMPLE_PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("instructkit"):
                assert node.module == "instructkit", f"{path}: from {node.module} import ..."
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("instructkit."), f"{path}: {alias.name}"


def test_the_docs_list_the_public_api():
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [name for name in instructkit.__all__ if f"`{name}`" not in text]
    assert missing == []

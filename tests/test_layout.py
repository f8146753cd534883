"""The layout is the architecture: these rules are what the imports must obey.

- a stage package (render, mix, train, evaluate) never imports another stage;
- artifacts/ and the frame (errors, hookspecs, plugins, paths, progress, charts, rounding,
  keyvalue, profiling, memory) import no stage;
- no import cycles among instructkit modules, counting imports inside functions too
  (imports under ``if TYPE_CHECKING:`` are not run, so they do not count).

Imports are read with ``ast``, so the test costs no import of torch or datasets. Each rule is
also run on a small synthetic package that breaks it, so a rule that can no longer fail fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "instructkit"
STAGES = ("render", "mix", "train", "evaluate")
NO_STAGE = (
    "artifacts",
    "errors",
    "hookspecs",
    "plugins",
    "paths",
    "progress",
    "charts",
    "rounding",
    "keyvalue",
    "profiling",
    "memory",
)


def module_name(path: Path, package_dir: Path) -> str:
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package_dir: Path) -> dict[str, Path]:
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (its ``else`` still runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The instructkit modules ``name`` imports (``from pkg import mod`` counts as pkg.mod)."""
    root = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m.split(".")[0] == root and m in known and m != name}


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    found = modules(package_dir)
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cross_stage_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        area = _area(module)
        for target in sorted(targets):
            other = _area(target)
            if other in STAGES and other != area and (area in STAGES or area in NO_STAGE):
                problems.append(f"{module} imports {target}")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_stages_import_no_other_stage():
    assert cross_stage_imports(import_graph(PACKAGE_DIR)) == []


def test_no_import_cycles():
    assert cycles(import_graph(PACKAGE_DIR)) == []


def test_every_stage_is_a_package():
    for stage in (*STAGES, "artifacts", "commands", "default_plugins"):
        assert (PACKAGE_DIR / stage / "__init__.py").is_file(), stage


# ---------------------------------------------------------------- the rules can fail


@pytest.fixture
def broken_package(tmp_path: Path) -> Path:
    """A package that breaks every rule once."""
    root = tmp_path / "instructkit"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "render/__init__.py": "",
        "render/run.py": "from instructkit.mix import plan\n",
        "mix/__init__.py": "",
        "mix/plan.py": "from instructkit.errors import X\n",
        "artifacts/__init__.py": "",
        "artifacts/dataset.py": "def f():\n    import instructkit.train.base\n",
        "train/__init__.py": "",
        "train/base.py": "from . import run\n",
        "train/run.py": "from instructkit.train.base import Trainer\n",
        "evaluate/__init__.py": "",
        "evaluate/run.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from instructkit.render.run import x\n"
        ),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_rules_catch_a_broken_package(broken_package):
    graph = import_graph(broken_package)
    assert cross_stage_imports(graph) == [
        "instructkit.artifacts.dataset imports instructkit.train.base",
        "instructkit.render.run imports instructkit.mix.plan",
    ]
    assert cycles(graph) == [["instructkit.train.base", "instructkit.train.run"]]


def module_map(text: str) -> set[str]:
    """Paths (relative to instructkit/) named in the tree of docs/architecture.md."""
    tree = text.split("```\ninstructkit/\n", 1)[1].split("```", 1)[0]
    named, folder = set(), ""
    for line in tree.splitlines():
        entry = line.split()[0] if line.strip() else ""
        top_level = not line.startswith("    ")
        if entry.endswith("/"):
            folder = entry
            named.add(entry + "__init__.py")
        elif entry.endswith(".py"):
            named.add(entry if top_level else folder + entry)
    return named


def test_the_module_map_names_every_module():
    named = module_map((PACKAGE_DIR.parent / "docs" / "architecture.md").read_text("utf-8"))
    on_disk = {p.relative_to(PACKAGE_DIR).as_posix() for p in PACKAGE_DIR.rglob("*.py")}
    assert sorted(on_disk - named) == []
    assert sorted(named - on_disk) == []

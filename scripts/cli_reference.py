"""Regenerate docs/cli.md, the command reference, from the CLI's own --help output.

python scripts/cli_reference.py          # rewrite docs/cli.md
python scripts/cli_reference.py --check  # exit 1 if docs/cli.md is stale (tests run this)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"
START, END = "<!-- commands:start -->", "<!-- commands:end -->"
HEADER = (
    "# Command reference\n\n"
    "Generated from `--help` by `scripts/cli_reference.py`; a test keeps it current.\n\n"
    "## What `--overwrite` replaces\n\n"
    "Without `--overwrite` an existing output is never touched. With it, a command replaces "
    "`--out` only when it is an empty folder, or a folder instructkit wrote for the same "
    "command, recognised by the record written there: the dataset manifest `instructkit.json` "
    "with `kind: render`, `kind: mix` or `kind: export`, `instructkit-train.json`, "
    "`instructkit-model.json` "
    "(tiny-model, models get), `metrics.json` beside `predictions.jsonl` (evaluate), `report.json` "
    "(evaluate --compare), `demo.json`, or a `pack.yaml` starting with the "
    "'Imported by instructkit templates import' line. Anything else (your thesis, another "
    "command's output, a hand-written pack) is refused in one line that names the folder and "
    "what it holds. An output equal to, inside, or containing any input of the command (a "
    "data file or folder, a dataset, a model, a templates file) is refused before any work, "
    "with or without `--overwrite`. The new output is built in a hidden `.OUT.tmp-PID-HEX` "
    "folder beside `--out` and moved into place only when complete; an output that appears "
    "meanwhile (another run) is not replaced. Ctrl-C and SIGTERM remove the temp folder; one "
    "left by a killed run is removed by the next run to the same `--out`.\n"
)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``group``, depth first, in alphabetical order."""
    paths = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if getattr(command, "hidden", False):
            continue
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


def render_reference(cli: click.Group) -> str:
    runner = CliRunner()
    sections = [HEADER]
    for path in [(), *command_paths(cli)]:
        result = runner.invoke(cli, [*path, "--help"], prog_name="instructkit", terminal_width=100)
        title = " ".join(("instructkit", *path))
        sections.append(f"\n## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "".join(sections)


def command_table(cli: click.Group) -> str:
    """A markdown table: each command and the first line of its help."""
    lines = ["| command | what it does |", "|---|---|"]
    for path in command_paths(cli):
        command: click.Command = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        summary = command.get_short_help_str(limit=200)
        lines.append(f"| `instructkit {' '.join(path)}` | {summary} |")
    return "\n".join(lines)


def readme_with_table(readme: str, table: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str]) -> int:
    # Third-party plugins installed here must not leak into the shipped reference.
    os.environ["INSTRUCTKIT_LOAD_PLUGINS"] = ""
    from instructkit.cli import cli

    text = render_reference(cli)
    readme = readme_with_table(README.read_text(), command_table(cli))
    if "--check" in argv:
        stale = [
            name
            for name, path, fresh in (
                ("docs/cli.md", REFERENCE, text),
                ("README.md", README, readme),
            )
            if not path.is_file() or path.read_text() != fresh
        ]
        if stale:
            print(
                f"{' and '.join(stale)} stale: run python scripts/cli_reference.py", file=sys.stderr
            )
            return 1
        return 0
    REFERENCE.write_text(text)
    README.write_text(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

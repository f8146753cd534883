"""The ``instructkit`` command line: a thin layer over the library.

Commands parse options, call one library function and echo the result. Library errors
(:class:`InstructkitError`) become a one-line message and exit code 1; ``--debug`` or
``INSTRUCTKIT_DEBUG=1`` shows the traceback instead. Stage commands (render, mix, train,
evaluate, ...) are added by built-in plugins through ``register_commands``, like any plugin's.
"""

from __future__ import annotations

import json
import os
import select
import sys
from typing import Any

import click

from instructkit import __version__
from instructkit.errors import InstructkitError
from instructkit.plugins import list_plugins, load_plugins, pm

# render, mix, inspect and score work without these; train, evaluate and demo need them
TRAINING_EXTRA_MODULES = frozenset({"torch", "transformers", "peft", "accelerate", "tokenizers"})


def debug_enabled() -> bool:
    return os.environ.get("INSTRUCTKIT_DEBUG", "") not in ("", "0", "false")


class InstructkitGroup(click.Group):
    """A group that turns library errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InstructkitError as ex:
            if debug_enabled():
                raise
            raise click.ClickException(str(ex)) from ex
        except ModuleNotFoundError as ex:
            if debug_enabled() or ex.name not in TRAINING_EXTRA_MODULES:
                raise
            raise click.ClickException(
                f"This command needs the training extra ({ex.name} is not installed): "
                f"pip install 'instructkit[train]'."
            ) from ex
        except BrokenPipeError as ex:
            # `instructkit ... | head -1`: the reader has what it wanted; a closed stdout is
            # not an error. Point stdout at devnull so the exit-time flush stays quiet too.
            # Any other broken pipe (a worker process gone) is an error like any OSError.
            if not _stdout_closed():
                if debug_enabled():
                    raise
                raise click.ClickException(describe_os_error(ex)) from ex
            _silence_stdout()
            ctx.exit(0)
        except (OSError, UnicodeError) as ex:
            # A safety net: the file system's refusals and undecodable input are the user's to
            # fix, so they get one line too (the library names the path where it can).
            if debug_enabled():
                raise
            raise click.ClickException(describe_os_error(ex)) from ex
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            click.echo("Interrupted: nothing was written.", err=True)
            ctx.exit(130)


def _stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no descriptor
        return False


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. under a test runner)
        pass


def describe_os_error(ex: OSError | UnicodeError) -> str:
    """One line for an OSError or a decoding error that no library code translated."""
    if isinstance(ex, UnicodeDecodeError):
        return (
            f"Input is not valid {ex.encoding} (byte {ex.object[ex.start : ex.start + 1]!r} at "
            f"offset {ex.start}): re-encode the file as UTF-8."
        )
    if isinstance(ex, OSError) and ex.filename:
        return f"{ex.strerror or ex}: '{ex.filename}' (use --debug for details)."
    return f"{ex} (use --debug for details)."


def _enable_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ["INSTRUCTKIT_DEBUG"] = "1"


@click.group(cls=InstructkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="instructkit")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_enable_debug,
    help="Show full tracebacks instead of one-line errors (or set INSTRUCTKIT_DEBUG=1).",
)
def cli() -> None:
    """Build instruction-tuning data and hand it to fine-tuning backends.

    The pipeline: render raw datasets through Jinja templates, mix tasks with exact
    ratios, train with a pluggable backend (full, LoRA, prompt tuning), evaluate with
    ROUGE and a before/after forgetting report.

    \b
    Examples:
        instructkit render dialogsum --data-dir data/dialogsum --out build/dialogsum
        instructkit mix examples/mix.yaml --out build/mix
        instructkit train build/mix --backend lora --model google/flan-t5-small --out runs/lora
        instructkit evaluate build/mix --model runs/lora --split test --out runs/eval
        instructkit plugins --all
    """


@cli.command(name="plugins")
@click.option("--all", "include_builtin", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_list(include_builtin: bool, as_json: bool) -> None:
    """List installed plugins and the hooks they implement.

    \b
    Examples:
        instructkit plugins
        instructkit plugins --all --json
    """
    plugins = list_plugins(include_builtin=include_builtin)
    if as_json:
        click.echo(json.dumps(plugins, indent=2))
        return
    if not plugins:
        click.echo("No third-party plugins installed (use --all to include the built-ins).")
        return
    for plugin in plugins:
        version = f" {plugin['version']}" if "version" in plugin else ""
        origin = " (built-in)" if plugin["builtin"] else ""
        click.echo(f"{plugin['name']}{version}{origin}: {', '.join(plugin['hooks'])}")


def _register_plugin_commands() -> None:
    try:
        load_plugins()
    except InstructkitError as ex:
        # A broken plugin must not take `--help` down with a traceback.
        raise SystemExit(f"Error: {ex}") from ex
    pm.hook.register_commands(cli=cli)


_register_plugin_commands()

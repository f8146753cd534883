"""The ``instructkit`` command line: a thin layer over the library.

Commands parse options, call one library function and echo the result. Library errors
(:class:`InstructkitError`) become a one-line message and exit code 1; ``--debug`` or
``INSTRUCTKIT_DEBUG=1`` shows the traceback instead. Stage commands (render, mix, train,
evaluate, ...) are added by built-in plugins through ``register_commands``, like any plugin's.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

import instructkit._cli_env  # noqa: F401 - first: allocator options before pyarrow loads
from instructkit import __version__
from instructkit.errors import InstructkitError, Terminated
from instructkit.plugins import (
    list_plugins,
    load_plugins,
    one_line,
    plugin_of_module,
    pm,
    third_party_plugins,
    warn,
)

# render, mix, inspect and score work without these; train, evaluate and demo need them
TRAINING_EXTRA_MODULES = frozenset({"torch", "transformers", "peft", "accelerate", "tokenizers"})


def debug_enabled() -> bool:
    return os.environ.get("INSTRUCTKIT_DEBUG", "") not in ("", "0", "false")


_frozen = False


def _freeze_startup_objects() -> None:
    """What is alive at the first command (modules, plugins, click's objects) lives as long as
    the process: the cyclic collector need not walk it again at each collection (render: 95
    young and 9 older collections, 28 -> 19 ms). Once: a process that runs many commands (tests)
    keeps collecting what later commands leave."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


class InstructkitGroup(click.Group):
    """A group that turns library errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        _freeze_startup_objects()
        try:
            with sigterm_as_interrupt():
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
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as ex:
            if debug_enabled():
                raise
            if isinstance(ex, ValueError) and "not JSON compliant" in str(ex):
                raise click.ClickException(
                    f"A result is NaN or infinite, which JSON cannot hold, so nothing was "
                    f"written ({ex}); use --debug for details."
                ) from ex
            failure = plugin_failure(ex)
            if failure is None:
                raise  # our own bug: the traceback is what a report needs
            raise failure from ex
        except KeyboardInterrupt as ex:
            if debug_enabled():
                raise
            if isinstance(ex, Terminated):
                click.echo("Terminated: nothing was written.", err=True)
                ctx.exit(128 + signal.SIGTERM)
            click.echo("Interrupted: nothing was written.", err=True)
            ctx.exit(130)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` (a KeyboardInterrupt) in this process, so every
    cleanup that Ctrl-C gets (temp folders, worker pools, kept checkpoints) runs for it too.
    Forked workers that inherit the handler die the default way instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def plugin_failure(ex: Exception) -> click.ClickException | None:
    """One line naming the third-party plugin whose code raised (None: not a plugin's)."""
    traceback = ex.__traceback__
    culprit = None
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        culprit = plugin_of_module(module) or culprit
        traceback = traceback.tb_next
    if culprit is None:
        return None
    return click.ClickException(
        f"Plugin '{culprit}' failed: {one_line(ex)} (use --debug for the traceback; fix or "
        f"uninstall the plugin, or leave it out of INSTRUCTKIT_LOAD_PLUGINS)."
    )


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
        click.echo(json.dumps(plugins, indent=2, allow_nan=False))
        return
    if not plugins:
        click.echo("No third-party plugins installed (use --all to include the built-ins).")
        return
    for plugin in plugins:
        version = f" {plugin['version']}" if "version" in plugin else ""
        origin = " (built-in)" if plugin["builtin"] else ""
        click.echo(f"{plugin['name']}{version}{origin}: {', '.join(plugin['hooks'])}")


def _register_plugin_commands() -> None:
    """Built-in commands first, then each third-party plugin's on its own: one that raises is
    reported and skipped, and one that would replace a built-in command is reported and the
    built-in kept (a plugin cannot silently change what `instructkit render` does)."""
    try:
        load_plugins()
    except InstructkitError as ex:
        # A broken plugin must not take `--help` down with a traceback.
        raise SystemExit(f"Error: {ex}") from ex
    others = [plugin for _, plugin in third_party_plugins()]
    pm.subset_hook_caller("register_commands", remove_plugins=others)(cli=cli)
    builtin_commands = dict(cli.commands)
    for name, plugin in third_party_plugins():
        rest = [p for p in pm.get_plugins() if p is not plugin]
        try:
            pm.subset_hook_caller("register_commands", remove_plugins=rest)(cli=cli)
        except Exception as ex:  # noqa: BLE001 - the plugin's bug, reported in one line
            warn(f"plugin '{name}' failed to add its commands and was skipped: {one_line(ex)}.")
        for command_name, command in builtin_commands.items():
            if cli.commands.get(command_name) is not command:
                cli.commands[command_name] = command
                warn(
                    f"plugin '{name}' tried to replace the built-in command '{command_name}'; "
                    f"the built-in was kept (the plugin should name its command differently)."
                )


_register_plugin_commands()

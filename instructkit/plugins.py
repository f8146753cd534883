"""The plugin manager: entry-point plugins first, then the built-ins, loaded once and lazily."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from instructkit import hookspecs
from instructkit.errors import PluginError

ENTRY_POINT_GROUP = "instructkit"

# Built-ins go through the same hooks as third-party plugins; order only affects listing.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "instructkit.default_plugins.sources",
    "instructkit.default_plugins.jinja_filters",
    "instructkit.default_plugins.full",
    "instructkit.default_plugins.lora",
    "instructkit.default_plugins.prompt_tuning",
    "instructkit.default_plugins.metrics",
    "instructkit.commands.render",
    "instructkit.commands.templates",
    "instructkit.commands.mix",
    "instructkit.commands.inspect",
    "instructkit.commands.train",
    "instructkit.commands.evaluate",
    "instructkit.commands.score",
    "instructkit.commands.demo",
    "instructkit.commands.models",
    "instructkit.commands.tiny_model",
    "instructkit.commands.export",
)

pm = pluggy.PluginManager("instructkit")
pm.add_hookspecs(hookspecs)

_loaded = False
_undo_tracing: Any = None


def _allowed_plugins() -> set[str] | None:
    """Names from INSTRUCTKIT_LOAD_PLUGINS (comma separated); None means no allow-list."""
    raw = os.environ.get("INSTRUCTKIT_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _entry_points_disabled() -> bool:
    # Under pytest, installed third-party plugins must not leak into the test run.
    return bool(getattr(sys, "_instructkit_under_test", False))


def _load_entry_points(allowed: set[str] | None) -> None:
    """Register every entry-point plugin that loads; report (never raise) those that don't,
    so one broken plugin cannot take every command down."""
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.append(ep.name)
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as ex:  # noqa: BLE001 - any error in a plugin is the user's to see
            warn(
                f"plugin '{ep.name}' ({ep.value}) failed to load and was skipped: "
                f"{one_line(ex)}. Fix or uninstall it, or leave it out of "
                f"INSTRUCTKIT_LOAD_PLUGINS."
            )
            continue
        _entry_point_plugins[ep.name] = ep.value
        if ep.dist is not None:
            _plugin_versions[ep.name] = ep.dist.version
    for name in sorted((allowed or set()) - set(found)):
        installed = ", ".join(sorted(set(found))) or "none"
        warn(
            f"INSTRUCTKIT_LOAD_PLUGINS names '{name}', which no installed plugin has "
            f"(installed: {installed})."
        )


_plugin_versions: dict[str, str] = {}
_entry_point_plugins: dict[str, str] = {}  # name -> entry point ("module:attr")
problems: list[str] = []  # what was reported about plugins in this process


def warn(message: str) -> None:
    """Report a plugin problem on stderr, once, without stopping the command."""
    if message in problems:
        return
    problems.append(message)
    print(f"instructkit: warning: {message}", file=sys.stderr)


def one_line(ex: BaseException) -> str:
    text = str(ex).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(ex).__name__}: {first}" if first else type(ex).__name__


def third_party_plugins() -> list[tuple[str, Any]]:
    """(name, plugin) of every registered plugin that is not a built-in."""
    return [
        (pm.get_name(p) or repr(p), p)
        for p in pm.get_plugins()
        if not is_builtin(pm.get_name(p) or "")
    ]


def plugin_of_module(module_name: str) -> str | None:
    """The third-party plugin whose code ``module_name`` is (or is inside), if any."""
    for name, plugin in third_party_plugins():
        owner = getattr(plugin, "__name__", None) if isinstance(plugin, types.ModuleType) else None
        owner = owner or type(plugin).__module__
        root = owner.split(".")[0]
        if module_name == owner or module_name.split(".")[0] == root != "instructkit":
            return name
    return None


def _trace_hooks() -> None:
    global _undo_tracing

    def before(hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(impl.plugin_name for impl in hook_impls)
        print(f"instructkit: calling hook {hook_name} on [{names}]", file=sys.stderr)

    def after(
        outcome: Any, hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        print(f"instructkit: hook {hook_name} returned", file=sys.stderr)

    _undo_tracing = pm.add_hookcall_monitoring(before, after)


def load_plugins() -> pluggy.PluginManager:
    """Load entry-point plugins, then the built-ins, once; fail loudly on a misspelt hook."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    allowed = _allowed_plugins()
    if not _entry_points_disabled():
        _load_entry_points(allowed)
    for name in DEFAULT_PLUGINS:
        if pm.get_plugin(name) is None:
            pm.register(importlib.import_module(name), name=name)
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as ex:
            culprit = pm.get_name(ex.plugin) if ex.plugin is not None else None
            if culprit is None or culprit not in _entry_point_plugins:
                raise PluginError(
                    f"{ex}. Check the hook names against 'instructkit.hookspecs'."
                ) from ex
            pm.unregister(name=culprit)
            warn(
                f"plugin '{culprit}' ({_entry_point_plugins.pop(culprit)}) was skipped: {ex}. "
                f"Check its hook names against 'instructkit.hookspecs'."
            )
    if os.environ.get("INSTRUCTKIT_TRACE_PLUGINS"):
        _trace_hooks()
    return pm


def is_builtin(name: str) -> bool:
    return name in DEFAULT_PLUGINS


def list_plugins(include_builtin: bool = False) -> list[dict[str, Any]]:
    """Describe loaded plugins: name, hooks implemented, version (when installed as a package)."""
    load_plugins()
    plugins = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        if is_builtin(name) and not include_builtin:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        info: dict[str, Any] = {"name": name, "hooks": hooks}
        if name in _plugin_versions:
            info["version"] = _plugin_versions[name]
        info["builtin"] = is_builtin(name)
        plugins.append(info)
    return sorted(plugins, key=lambda p: (p["builtin"], p["name"]))

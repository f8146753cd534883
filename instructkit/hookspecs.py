"""Plugin hooks of instructkit.

A plugin implements any of these hooks with ``@instructkit.hookimpl``. An implementation may
accept only the arguments it needs (pluggy's opt-in arguments), so new arguments can be added to
a spec later without breaking existing plugins. Plugins are found through the ``instructkit``
entry-point group; the built-ins in ``instructkit.default_plugins`` use the same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:  # pragma: no cover - typing only, importing hookspecs must stay free
    import click
    import jinja2

hookspec = HookspecMarker("instructkit")
hookimpl = HookimplMarker("instructkit")


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``instructkit`` CLI.

    :param cli: the top-level :class:`click.Group`; call ``cli.command()``/``cli.add_command()``
        on it. Adding a command whose name is already taken replaces it, so pick unique names.

    Called once, when the CLI module is imported, for every plugin. Return nothing.
    """


@hookspec
def register_sources(register: Any) -> None:
    """Register raw-dataset sources (presets) that ``instructkit render`` can load by name.

    :param register: a callable; call ``register(source)`` once per source, where ``source`` is
        an instance of :class:`instructkit.render.sources.Source` (a unique ``name``, a one-line
        ``description`` and a ``load(...)`` method returning raw splits). Registering a name
        twice raises :class:`instructkit.errors.PluginError`.

    Called lazily, the first time a source is looked up. Return nothing.
    """


@hookspec
def prepare_jinja2_environment(env: jinja2.Environment) -> None:
    """Customise the sandboxed Jinja environment that renders every template.

    :param env: the one :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` (with
        ``StrictUndefined``) used for rendering, linting and previews. Add filters to
        ``env.filters`` and globals to ``env.globals``; do not replace the undefined type or the
        sandbox. A filter must be deterministic (same input, same output) because rendered
        shards must be byte-identical for the same seed.

    Called once per environment, before any template is compiled. Return nothing.
    """


@hookspec
def register_trainers(register: Any) -> None:
    """Register trainer backends for ``instructkit train --backend NAME``.

    :param register: a callable; call ``register(trainer_cls)`` once per backend, where
        ``trainer_cls`` subclasses :class:`instructkit.train.base.Trainer` and has a unique
        ``trainer_id``. Registering an id twice raises :class:`instructkit.errors.PluginError`.

    Called lazily, the first time trainers are listed or looked up. Return nothing.
    """


@hookspec
def register_metrics(register: Any) -> None:
    """Register metrics for ``instructkit evaluate`` and ``instructkit score``.

    :param register: a callable; call ``register(metric)`` once per metric, where ``metric`` is
        an instance of :class:`instructkit.Metric` (a unique ``name``, its ``keys``, a
        ``primary`` key and a ``score_pair(prediction, reference)`` method returning
        ``{key: value}`` on a 0-100 scale; the base class's ``score(predictions, references)``
        adds multi-reference reduction, bootstrap intervals and ``num_proc``). Registering a
        name twice raises :class:`instructkit.errors.PluginError`.

    Called lazily, the first time metrics are listed or looked up. Return nothing.
    """

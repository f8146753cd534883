"""Built-in plugin: the ROUGE and exact-match metrics, registered like any plugin's."""

from __future__ import annotations

from typing import Any

from instructkit.hookspecs import hookimpl


@hookimpl
def register_metrics(register: Any) -> None:
    """Register ``rouge`` and ``exact_match``."""
    from instructkit.evaluate.metrics import ExactMatch, Rouge

    register(Rouge())
    register(ExactMatch())

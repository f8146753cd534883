"""Built-in plugin: the ROUGE, exact-match and contains metrics, registered like any plugin's."""

from __future__ import annotations

from typing import Any

from instructkit.hookspecs import hookimpl


@hookimpl
def register_metrics(register: Any) -> None:
    """Register ``rouge``, ``exact_match`` and ``contains``."""
    from instructkit.evaluate.metrics import ContainsAnswer, ExactMatch, Rouge

    register(Rouge())
    register(ExactMatch())
    register(ContainsAnswer())

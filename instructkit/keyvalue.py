"""``KEY=VALUE`` on the command line: one parser for render's, mix's and train's options."""

from __future__ import annotations


def key_value(text: str, strip: bool = False) -> tuple[str, str] | None:
    """Split ``text`` at its first ``=``; None when there is no ``=`` or the key is empty.

    The value may be empty (callers that need one say so in their own words); ``strip``
    trims spaces around both parts.
    """
    key, sep, value = text.partition("=")
    if strip:
        key, value = key.strip(), value.strip()
    return (key, value) if sep and key else None


TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    """``true/1/yes/on`` or ``false/0/no/off`` (any case); ValueError otherwise."""
    lowered = text.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(text)

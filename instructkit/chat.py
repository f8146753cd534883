"""The two forms of prompt/completion rows, as in TRL, and how to tell them apart.

- string rows: ``prompt`` and ``completion`` are strings (what ``instructkit render`` writes);
- conversational rows: ``prompt`` is a list of messages (``{"role": "system"|"user"|...,
  "content": str}``) and ``completion`` a list holding the assistant's message.

How each form is tokenized lives in :mod:`instructkit.modeling` (train and evaluate share it).
This module only reads Arrow schemas and rows, so it never imports torch.
"""

from __future__ import annotations

from typing import Any

from instructkit.errors import DatasetDirError

STRING = "text"  # the form `instructkit render --form text` writes
CONVERSATIONAL = "conversational"


def column_form(column_type: Any) -> str | None:
    """The form of an Arrow column type: string, conversational (list of role/content), or None."""
    import pyarrow as pa

    if pa.types.is_string(column_type) or pa.types.is_large_string(column_type):
        return STRING
    if pa.types.is_list(column_type) or pa.types.is_large_list(column_type):
        item = column_type.value_type
        if pa.types.is_struct(item) and {"role", "content"} <= {f.name for f in item}:
            return CONVERSATIONAL
    if pa.types.is_null(column_type):
        return STRING  # all values missing: treated as empty strings
    return None


def table_form(table: Any, where: str = "the dataset") -> str:
    """The form of a table's prompt/completion rows; a one-line error for anything else.

    A TRL language-modeling dataset (``messages`` or ``text``) is refused with how to convert it.
    """
    names = set(table.column_names)
    if "prompt" not in names or "completion" not in names:
        raise DatasetDirError(missing_columns_message(names, where))
    forms = {name: column_form(table.schema.field(name).type) for name in ("prompt", "completion")}
    if forms["prompt"] is None or forms["completion"] is None:
        bad = "prompt" if forms["prompt"] is None else "completion"
        raise DatasetDirError(
            f"Column '{bad}' of {where} is {table.schema.field(bad).type}: prompt and completion "
            f"must both be strings, or both lists of {{role, content}} messages (TRL's "
            f"conversational form)."
        )
    if forms["prompt"] != forms["completion"]:
        raise DatasetDirError(
            f"{where.capitalize()} mixes forms (prompt is {forms['prompt']}, completion is "
            f"{forms['completion']}): give both as strings or both as lists of messages."
        )
    return forms["prompt"]


def table_is_conversational(table: Any) -> bool:
    return table_form(table) == CONVERSATIONAL


def check_form(table: Any, where: str) -> str | None:
    """``table_form`` for an input check: None when prompt/completion are simply missing (the
    caller's own message covers that), a conversion hint for TRL's other dataset forms."""
    names = set(table.column_names)
    if ("prompt" not in names or "completion" not in names) and not names & {"messages", "text"}:
        return None
    return table_form(table, where)


def missing_columns_message(names: set[str], where: str) -> str:
    """Why a dataset without prompt/completion cannot be trained, and how to convert it."""
    if "messages" in names:
        return (
            f"{where.capitalize()} is in TRL's language-modeling 'messages' form; instructkit "
            f"trains prompt/completion rows: split each conversation into prompt = messages[:-1] "
            f"and completion = messages[-1:] (the final assistant turn), e.g. with "
            f"datasets' map(), and save that."
        )
    if "text" in names:
        return (
            f"{where.capitalize()} has no 'prompt', 'completion' column: it has plain 'text' "
            f"(language modeling), and instructkit trains prompt/completion rows: render it "
            f"with a template ('instructkit render') or add prompt and completion columns."
        )
    has = ", ".join(sorted(names)) or "no columns"
    return (
        f"{where.capitalize()} has no 'prompt' and 'completion' columns (it has {has}): "
        f"render it with 'instructkit render'."
    )

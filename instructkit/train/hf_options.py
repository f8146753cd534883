"""Every ``transformers.TrainingArguments`` field, reachable by its HF name from ``-o`` and YAML.

Our own options keep their short names (``epochs``, ``batch_size``, ``precision``); their HF names
(``num_train_epochs``, ``per_device_train_batch_size``, ``bf16``) and a few typing shortcuts
(``lr``, ``bs``) are aliases of them. Every other ``TrainingArguments`` field passes through
verbatim to the HF trainer (``optim``, ``max_grad_norm``, ``report_to``, ``deepspeed``, ...), its
value converted with HF's own field type. The catalogue of HF fields is read from the installed
transformers' source with ``ast``, so ``train --list`` and option checking never import torch.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.errors import OptionsError
from instructkit.keyvalue import parse_bool

# HF name (or shortcut) -> our option. bf16/fp16 map onto `precision` by value (see below).
ALIASES: dict[str, str] = {
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "per_device_eval_batch_size": "eval_batch_size",
    "lr_scheduler_type": "lr_scheduler",
    "warmup_steps": "warmup",
    "warmup_ratio": "warmup",
    "activation_checkpointing": "gradient_checkpointing",
    "bf16": "precision",
    "fp16": "precision",
    # typing shortcuts
    "lr": "learning_rate",
    "bs": "batch_size",
    "eval_bs": "eval_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "num_epochs": "epochs",
}

# Fields instructkit sets itself: passing them would break --out, --resume or the collator.
RESERVED: dict[str, str] = {
    "output_dir": "use --out (checkpoints go to OUT.checkpoints)",
    "overwrite_output_dir": "use --overwrite",
    "resume_from_checkpoint": "use --resume",
    "disable_tqdm": "use --quiet",
    "remove_unused_columns": "instructkit's collator needs every encoded column",
    "label_names": "instructkit's labels are always 'labels'",
    "hub_token": "log in with 'hf auth login' or set HF_TOKEN (a token must not land in the run "
    "record)",
    "local_rank": "set by the launcher",
    "gradient_checkpointing_kwargs": "instructkit sets them (non-reentrant)",
    "activation_checkpointing_kwargs": "instructkit sets them (non-reentrant)",
}

# report_to names -> the import that has to exist for HF to report there.
TRACKER_PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",),
    "neptune": ("neptune",),
    "clearml": ("clearml",),
    "dvclive": ("dvclive",),
    "codecarbon": ("codecarbon",),
    "trackio": ("trackio",),
    "swanlab": ("swanlab",),
    "azure_ml": ("azureml",),
}


_CLASS = "TrainingArguments"


@dataclass(frozen=True)
class HFField:
    """One ``TrainingArguments`` field as written in transformers' source."""

    name: str
    type: str
    default: str
    help: str


def hf_fields() -> dict[str, HFField]:
    """``TrainingArguments`` fields by name, parsed (not imported) from the installed source.

    Empty when transformers is not installed (the data-only install): then no HF name is valid.
    Only a parsed source is cached, so a moment without transformers is not remembered.
    """
    source = _training_args_source()
    if source is None:
        return {}
    return _parse_fields(source)


@functools.lru_cache(maxsize=1)
def _parse_fields(source: Path) -> dict[str, HFField]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == _CLASS]
    if not classes:
        return {}
    found: dict[str, HFField] = {}
    for node in classes[0].body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        name = node.target.id
        if name.startswith("_") or ast.unparse(node.annotation).startswith("ClassVar"):
            continue
        default, help_text = _field_default_and_help(node.value)
        found[name] = HFField(name, ast.unparse(node.annotation), default, help_text)
    return found


def _training_args_source() -> Path | None:
    spec = importlib.util.find_spec("transformers")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "training_args.py"
        if path.is_file():
            return path
    return None


def _field_default_and_help(value: ast.expr | None) -> tuple[str, str]:
    if value is None:
        return "", ""
    if not (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field"):
        return ast.unparse(value), ""
    keywords = {k.arg: k.value for k in value.keywords if k.arg}
    default = keywords.get("default")
    if default is None and "default_factory" in keywords:
        default_text = f"{ast.unparse(keywords['default_factory'])}()"
    else:
        default_text = ast.unparse(default) if default is not None else ""
    help_text = ""
    metadata = keywords.get("metadata")
    if isinstance(metadata, ast.Dict):
        for key, item in zip(metadata.keys, metadata.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "help":
                with_text = _literal_text(item)
                help_text = " ".join(with_text.split())
    return default_text, help_text


def _literal_text(node: ast.expr) -> str:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def is_deprecated(hf_field: HFField) -> bool:
    lowered = hf_field.help.lower()
    return lowered.startswith("deprecated") or "deprecated alias" in lowered


def passthrough_names() -> list[str]:
    """HF fields that go to ``TrainingArguments`` verbatim (not aliases, not reserved)."""
    return sorted(
        name
        for name, spec in hf_fields().items()
        if name not in ALIASES and name not in RESERVED and not is_deprecated(spec)
    )


def target_of(key: str) -> str:
    """The option a key sets: its alias target, or itself."""
    return ALIASES.get(key, key)


def aliases_of(own_names: Iterable[str]) -> dict[str, list[str]]:
    """Our option -> the other names that reach it (its HF names and typing shortcuts)."""
    by_target: dict[str, list[str]] = {}
    own = set(own_names)
    for alias, target in ALIASES.items():
        if target in own and alias not in own:
            by_target.setdefault(target, []).append(alias)
    return by_target


# ---------------------------------------------------------------- sorting values


def split_options(
    values: Mapping[str, Any], own_names: Iterable[str], passthrough: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our options, TrainingArguments pass-through) from user keys; aliases resolved.

    Raises OptionsError for unknown or reserved keys (with the closest real name) and when an
    alias and its target (or two aliases of one option) are both given.
    """
    own = set(own_names)
    fields = hf_fields() if passthrough else {}
    ours: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for key, value in values.items():
        if key in own:
            target, converted = key, value
        elif key in ALIASES and ALIASES[key] in own:
            target, converted = ALIASES[key], _alias_value(key, value)
        elif key in RESERVED and key in fields:
            raise OptionsError(f"Option '{key}' is set by instructkit: {RESERVED[key]}.")
        elif key in fields and not is_deprecated(fields[key]):
            extra[key] = value
            continue
        elif key in fields:
            raise OptionsError(
                f"Option '{key}' is deprecated in transformers: {fields[key].help.rstrip('.')}."
            )
        else:
            raise OptionsError(unknown_key_message(key, known_names(own, passthrough)))
        if target in given_as:
            raise OptionsError(
                f"Options '{given_as[target]}' and '{key}' both set '{target}': give only one."
            )
        given_as[target] = key
        ours[target] = converted
    return ours, extra


def _alias_value(alias: str, value: Any) -> Any:
    """HF's bf16=true / fp16=true become precision=bf16 / fp16 (false: fp32)."""
    if alias not in ("bf16", "fp16"):
        return value
    if isinstance(value, str):
        try:
            value = parse_bool(value)
        except ValueError:
            raise OptionsError(f"Option '{alias}' must be true or false, got {value!r}.") from None
    if not isinstance(value, bool):
        raise OptionsError(f"Option '{alias}' must be true or false, got {value!r}.")
    return alias if value else "fp32"


def known_names(own: Iterable[str], passthrough: bool) -> list[str]:
    """Every key accepted: our options, their aliases and (HF backends) the HF fields."""
    names = set(own) | {a for a, t in ALIASES.items() if t in set(own)}
    if passthrough:
        names |= set(passthrough_names())
    return sorted(names)


def unknown_key_message(key: str, names: list[str]) -> str:
    """'Unknown option' with the closest real name: a near-miss of the same length class.

    difflib alone offers ``r`` for ``lr``; a one- or two-letter key only gets a suggestion that
    differs by one edit, and longer keys need a 0.75 similarity.
    """
    hint = ""
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.75 if len(key) > 3 else 0.6)
    close = [c for c in close if len(key) > 2 or _one_edit(key, c)]
    if close:
        hint = f" Did you mean '{close[0]}'?"
    return (
        f"Unknown option '{key}'.{hint} See 'instructkit train --list' for the "
        f"{len(names)} valid options."
        if len(names) > 60
        else f"Unknown option '{key}'.{hint} Valid options: {', '.join(names)}."
    )


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


# ---------------------------------------------------------------- converting values


def coerce_passthrough(values: Mapping[str, Any]) -> dict[str, Any]:
    """Convert ``-o`` strings to each field's type as ``TrainingArguments`` declares it.

    Imports transformers (only when there are pass-through keys: a run is about to start).
    ``report_to`` names a tracker that must be installed (one line naming the package).
    """
    if not values:
        return {}
    import dataclasses

    from transformers import TrainingArguments

    hints = _type_hints(TrainingArguments)
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    converted = {}
    for key, value in values.items():
        if key not in names:
            raise OptionsError(f"Option '{key}' is not a TrainingArguments field here.")
        converted[key] = _convert(key, value, hints.get(key, Any))
    if "report_to" in converted:
        check_trackers(converted["report_to"])
    return converted


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation this Python cannot evaluate: fall back to strings
        return {}


def _convert(key: str, value: Any, hint: Any) -> Any:
    if not isinstance(value, str):
        return value
    allowed = _union_members(hint)
    lowered = value.strip().lower()
    # "none" is a real value of some string fields (report_to=none); "null" always means None
    takes_text = any(k is str for k in allowed)
    if type(None) in allowed and lowered in (("null", "") if takes_text else ("none", "null", "")):
        return None
    for kind in allowed:
        if kind is bool:
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
        elif kind is int:
            try:
                return int(value)
            except ValueError:
                pass
        elif kind is float:
            try:
                return float(value)
            except ValueError:
                pass
        elif kind in (dict, list) or typing.get_origin(kind) in (dict, list):
            if value.strip().startswith(("{", "[")):
                try:
                    return json.loads(value)
                except json.JSONDecodeError as ex:
                    raise OptionsError(f"Option '{key}' is not valid JSON: {ex.msg}.") from None
    takes_list = any(typing.get_origin(k) is list or k is list for k in allowed)
    if takes_list and "," in value:  # report_to=tensorboard,wandb
        return [part.strip() for part in value.split(",") if part.strip()]
    if any(k is str or isinstance(k, type) and issubclass(k, str) for k in allowed):
        return value
    if takes_list:
        return [part.strip() for part in value.split(",") if part.strip()]
    if allowed == [Any] or not allowed:
        return value
    names = " or ".join(_describe(k) for k in allowed if k is not type(None))
    raise OptionsError(f"Option '{key}' must be {names}, got {value!r}.")


def _union_members(hint: Any) -> list[Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = list(typing.get_args(hint))
    else:
        members = [hint]
    # bool before int (a bool field must not read "1" as an integer), str last
    order = {bool: 0, int: 1, float: 2}
    return sorted(members, key=lambda k: order.get(k, 3 if k is not str else 4))


def _describe(kind: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if kind in names:
        return names[kind]
    origin = typing.get_origin(kind) or kind
    if origin is dict:
        return "a JSON object"
    if origin is list:
        return "a comma-separated list"
    return getattr(kind, "__name__", str(kind))


def check_trackers(report_to: Any) -> None:
    """One line naming the missing package for every tracker asked for by name."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    for name in names:
        packages = TRACKER_PACKAGES.get(name)
        if packages and not any(importlib.util.find_spec(p) for p in packages):
            raise OptionsError(
                f"report_to={name} needs the '{packages[0]}' package, which is not installed: "
                f"pip install {packages[0]} (or leave report_to unset)."
            )


def describe_passthrough() -> list[dict[str, Any]]:
    """HF pass-through fields for ``--list``: name, type, default and the first help sentence."""
    rows = []
    fields = hf_fields()
    for name in passthrough_names():
        spec = fields[name]
        first = spec.help.split(". ")[0].rstrip(".")
        rows.append({"name": name, "type": spec.type, "default": spec.default, "help": first})
    return rows

"""The mixture spec: which rendered datasets to blend, how much of each, and the hygiene to apply.

A spec is a YAML mapping (or the same keys from the command line). Every number says its unit
in its key: ``weight`` is a relative share, ``count`` is rows, ``epochs`` is multiples of the
task's size, ``total`` and ``cap`` are rows (tokens with ``unit: tokens``). A value in the wrong
unit (``count: 0.5``) is an error, never a silent reinterpretation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from instructkit.errors import MixError
from instructkit.keyvalue import key_value

STRATEGIES = ("weights", "proportional", "temperature")
UNITS = ("examples", "tokens")
DECONTAMINATE_MODES = ("off", "report", "drop")
# Beyond any real mixture; a larger count or total is a typo (and would exhaust memory).
MAX_ROWS = 10**10
MAX_TOKENS = 10**13

TASK_KEYS = ("path", "name", "weight", "count", "epochs", "cap")
SPEC_KEYS = (
    "tasks",
    "strategy",
    "total",
    "seed",
    "temperature",
    "cap",
    "unit",
    "tokenizer",
    "eval_cap",
    "dedup",
    "decontaminate",
    "ngram",
    "eval_sets",
    "boilerplate_fraction",
)


@dataclass(frozen=True)
class TaskSpec:
    """One input of the mixture and the rule that sets its number of train rows."""

    path: str
    name: str | None = None
    weight: float | None = None
    count: int | None = None
    epochs: float | None = None
    cap: float | None = None

    @property
    def rule(self) -> str:
        """Which key fixes this task's quota: count, epochs or (shared) weight/strategy."""
        if self.count is not None:
            return "count"
        if self.epochs is not None:
            return "epochs"
        return "share"


@dataclass(frozen=True)
class MixSpec:
    """A validated mixture spec (see docs/mix.md for every key and its unit)."""

    tasks: tuple[TaskSpec, ...]
    strategy: str = "weights"
    total: int | None = None
    seed: int = 0
    temperature: float | None = None
    cap: float | None = None
    unit: str = "examples"
    tokenizer: str | None = None
    eval_cap: int | None = None
    dedup: bool = True
    decontaminate: str = "report"
    ngram: int = 13
    eval_sets: tuple[str, ...] = field(default_factory=tuple)
    boilerplate_fraction: float = 0.01

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON data (for the manifest)."""
        data = asdict(self)
        data["tasks"] = [{k: v for k, v in t.items() if v is not None} for t in data["tasks"]]
        data["eval_sets"] = list(self.eval_sets)
        return data


# ---------------------------------------------------------------- loading


def load_mix_spec(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> MixSpec:
    """Read and validate a spec from a YAML file or a mapping; ``overrides`` win over it."""
    raw = dict(_read_spec_file(Path(source)) if not isinstance(source, Mapping) else source)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    return validate_spec(raw)


def _read_spec_file(path: Path) -> Mapping[str, Any]:
    import yaml

    if not path.is_file():
        raise MixError(f"Spec file '{path}' not found: check the path (see docs/mix.md).")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as ex:
        where = getattr(ex, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise MixError(f"Spec file '{path}' is not valid YAML{line}: fix its syntax.") from ex
    if not isinstance(data, Mapping):
        raise MixError(f"Spec file '{path}' must be a YAML mapping with a 'tasks' list.")
    return data


def validate_spec(raw: Mapping[str, Any]) -> MixSpec:
    """Check every key of a raw spec and return the MixSpec, or raise a one-line MixError."""
    _reject_unknown(raw, SPEC_KEYS, "the spec")
    strategy = _choice(raw, "strategy", STRATEGIES, "weights")
    unit = _choice(raw, "unit", UNITS, "examples")
    tasks = tuple(_task(item, i, strategy) for i, item in enumerate(_task_list(raw)))
    spec = MixSpec(
        tasks=tasks,
        strategy=strategy,
        total=_whole(raw, "total", "the spec", unit_name=_unit_rows(unit)),
        seed=_seed(raw),
        temperature=_positive(raw, "temperature", "the spec"),
        cap=_cap(raw, "the spec", unit),
        unit=unit,
        tokenizer=_optional_str(raw, "tokenizer"),
        eval_cap=_whole(raw, "eval_cap", "the spec", unit_name="rows"),
        dedup=_bool(raw, "dedup", True),
        decontaminate=_choice(raw, "decontaminate", DECONTAMINATE_MODES, "report"),
        ngram=_whole(raw, "ngram", "the spec", unit_name="words") or 13,
        eval_sets=tuple(str(p) for p in _str_list(raw, "eval_sets")),
        boilerplate_fraction=_fraction(raw, "boilerplate_fraction", 0.01),
    )
    _check_combinations(spec)
    return spec


def _check_combinations(spec: MixSpec) -> None:
    if spec.strategy == "temperature" and spec.temperature is None:
        raise MixError(
            "strategy 'temperature' needs 'temperature: T' (T5 used 2; 1 = proportional)."
        )
    if spec.strategy != "temperature" and spec.temperature is not None:
        raise MixError("'temperature' only applies to 'strategy: temperature': remove one of them.")
    capped = spec.cap is not None or any(t.cap is not None for t in spec.tasks)
    if spec.strategy == "weights" and capped:
        raise MixError("'cap' only applies to strategies 'proportional' and 'temperature'.")
    if spec.unit == "tokens" and not spec.tokenizer:
        raise MixError("'unit: tokens' needs a tokenizer: add 'tokenizer: NAME' or --tokenizer.")
    names = [t.name for t in spec.tasks if t.name]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MixError(f"Two tasks are named '{repeated[0]}': give each a unique 'name'.")


def _task_list(raw: Mapping[str, Any]) -> list[Any]:
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise MixError("The spec needs a non-empty 'tasks' list (each item: path + weight/count).")
    return tasks


def _task(item: Any, index: int, strategy: str) -> TaskSpec:
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, Mapping):
        raise MixError(f"Task #{index + 1} must be a mapping with a 'path', got {item!r}.")
    where = f"task #{index + 1}"
    _reject_unknown(item, TASK_KEYS, where)
    path = item.get("path")
    if path is not None and not isinstance(path, str):
        raise MixError(
            f"'path' in {where} must be a string (a directory made by 'instructkit render'), "
            f"got {path!r}."
        )
    if not path:
        raise MixError(
            f"{where} has no 'path': set it to a directory made by 'instructkit render'."
        )
    where = f"task '{item.get('name') or path}'"
    task = TaskSpec(
        path=path,
        name=_optional_str(item, "name"),
        weight=_positive(item, "weight", where),
        count=_whole(item, "count", where, unit_name="rows"),
        epochs=_positive(item, "epochs", where),
        cap=_positive(item, "cap", where),
    )
    _check_task_rule(task, where, strategy)
    return task


def _check_task_rule(task: TaskSpec, where: str, strategy: str) -> None:
    given = [k for k in ("weight", "count", "epochs") if getattr(task, k) is not None]
    if len(given) > 1:
        raise MixError(f"{where} has both '{given[0]}' and '{given[1]}': keep only one.")
    if task.weight is not None and strategy != "weights":
        raise MixError(
            f"{where} has a 'weight' but the strategy is '{strategy}': "
            f"remove it, or use 'strategy: weights'."
        )
    if task.cap is not None and task.rule != "share":
        raise MixError(f"{where}: 'cap' only applies to tasks without 'count' or 'epochs'.")


# ---------------------------------------------------------------- values


def _reject_unknown(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [str(k) for k in raw if k not in allowed]
    if unknown:
        raise MixError(
            f"Unknown key '{unknown[0]}' in {where}: allowed keys are {', '.join(allowed)}."
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(value: Any) -> Any:
    """A number written as a string becomes that number: YAML 1.1 reads ``1e-3`` as a string.

    "1" stays an int and "1.0" a float, so ``count: "1.0"`` is refused like ``count: 1.0``.
    """
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value.strip())
        except ValueError:
            pass
    return value


def _positive(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = _numeric(raw.get(key))
    if value is None:
        return None
    if not _is_number(value):
        raise MixError(f"'{key}' in {where} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise MixError(f"'{key}' in {where} must be a finite number, got {value!r}.")
    if value <= 0:
        raise MixError(f"'{key}' in {where} must be greater than 0, got {value!r}.")
    return float(value)


def _whole(raw: Mapping[str, Any], key: str, where: str, unit_name: str) -> int | None:
    value = _numeric(raw.get(key))
    if value is None:
        return None
    # A float is refused even when whole: "1.0" reads as "100%" in some peers' configs.
    if not isinstance(value, int) or isinstance(value, bool):
        hint = " (for a share use 'weight', for a multiple of the task use 'epochs')"
        raise MixError(
            f"'{key}' in {where} is a number of {unit_name} and must be a whole number, "
            f"got {value!r}{hint if key == 'count' else ''}."
        )
    if value <= 0:
        raise MixError(f"'{key}' in {where} must be at least 1 {unit_name[:-1]}, got {value!r}.")
    bound = MAX_TOKENS if unit_name == "tokens" else MAX_ROWS
    if value > bound:
        raise MixError(
            f"'{key}' in {where} is {value:,} {unit_name}, over the limit of {bound:,}: "
            f"check it for a typo."
        )
    return int(value)


def _cap(raw: Mapping[str, Any], where: str, unit: str) -> float | None:
    if unit == "tokens":
        return _positive(raw, "cap", where)
    value = _whole(raw, "cap", where, unit_name="rows")
    return None if value is None else float(value)


def _unit_rows(unit: str) -> str:
    return "tokens" if unit == "tokens" else "rows"


def _seed(raw: Mapping[str, Any]) -> int:
    value = _numeric(raw.get("seed", 0))
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MixError(f"'seed' must be a whole number >= 0, got {value!r}.")
    return value


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value is False and key == "decontaminate":
        value = "off"  # YAML reads a bare `off` as false
    if value not in allowed:
        raise MixError(f"'{key}' must be one of {', '.join(allowed)}, got {value!r}.")
    return str(value)


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise MixError(f"'{key}' must be true or false, got {value!r}.")
    return value


def _fraction(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = _numeric(raw.get(key, default))
    if not _is_number(value) or not 0 < value <= 1:
        raise MixError(f"'{key}' is a fraction of rows in (0, 1], got {value!r}.")
    return float(value)


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise MixError(f"'{key}' must be a string, got {value!r}.")
    return value or None


def _str_list(raw: Mapping[str, Any], key: str) -> list[str]:
    value = raw.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MixError(f"'{key}' must be a list of dataset directories, got {value!r}.")
    return value


# ---------------------------------------------------------------- command line


def parse_task_option(text: str) -> dict[str, Any]:
    """Parse ``PATH[:KEY=VALUE,...]`` from ``--task`` into a task mapping."""
    path, _, options = text.rpartition(":") if _has_task_options(text) else (text, "", "")
    task: dict[str, Any] = {"path": path}
    for item in filter(None, options.split(",")):
        pair = key_value(item)
        if pair is None or pair[0] not in TASK_KEYS[1:]:
            raise MixError(
                f"Bad task option '{item}' in '{text}': use KEY=VALUE with KEY one of "
                f"{', '.join(TASK_KEYS[1:])}."
            )
        key, value = pair
        task[key] = value if key == "name" else _cli_number(value, key, text)
    return task


def _has_task_options(text: str) -> bool:
    """Whether ``text`` ends in ``:KEY=VALUE,...``, or in a malformed try at it (``:weight``,
    or anything after ``DIR:`` when DIR exists and the whole text does not)."""
    head, sep, tail = text.rpartition(":")
    if not sep:
        return False
    keys = [item.partition("=")[0].strip() for item in tail.split(",")]
    if "=" in tail or any(key in TASK_KEYS[1:] for key in keys):
        return True
    return Path(head).exists() and not Path(text).exists()


def _cli_number(value: str, key: str, text: str) -> int | float:
    # Keep "1" and "1.0" distinct so that count=1.0 is rejected like it is in a YAML file.
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise MixError(f"'{key}' in '{text}' must be a number, got {value!r}.") from None

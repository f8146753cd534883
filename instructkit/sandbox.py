"""The Jinja sandbox templates render in, with bounds on the work one row may cost.

Jinja's own sandbox stops templates from touching Python internals, but not from looping
``range(100000)`` inside ``range(100000)`` or building a gigabyte string. Here every row gets a
budget: loop iterations over ``range()`` (all loops together), characters of output per block,
and the size of a ``*`` or ``**`` result. Printing a list or a dict is refused too: it would
reach the prompt as Python text (``['A: hi', 'B: yo']``). Exceeding a bound raises
:class:`TemplateLimit`, which the caller reports with the template and the row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

MAX_LOOP_ITERATIONS = 1_000_000  # range() iterations per row, all loops together
MAX_OUTPUT_CHARS = 10_000_000  # characters per rendered block (and per * or ** result)
MAX_EXPONENT = 10_000


class TemplateLimit(Exception):
    """A template exceeded the work allowed for one row (the message says which bound)."""


class _Budget:
    steps = 0
    row: Mapping[str, Any] | None = None


_budget = _Budget()


@contextlib.contextmanager
def row_scope(row: Mapping[str, Any]) -> Iterator[None]:
    """A fresh budget for rendering one row (also remembered to name a printed list's field)."""
    previous = (_budget.steps, _budget.row)
    _budget.steps, _budget.row = 0, row
    try:
        yield
    finally:
        _budget.steps, _budget.row = previous


class _CountedRange:
    """``range()`` whose iterations count against the row's budget."""

    def __init__(self, numbers: range) -> None:
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def __getitem__(self, index: Any) -> Any:
        return self._numbers[index]

    def __iter__(self) -> Iterator[int]:
        for number in self._numbers:
            _budget.steps += 1
            if _budget.steps > MAX_LOOP_ITERATIONS:
                raise TemplateLimit(
                    f"its loops ran more than {MAX_LOOP_ITERATIONS:,} range() iterations for "
                    f"one row (nested loops?)"
                )
            yield number

    def __repr__(self) -> str:
        return repr(self._numbers)


def bounded_range(*args: int) -> _CountedRange:
    return _CountedRange(safe_range(*args))


def refuse_containers(value: Any) -> Any:
    """``finalize`` of the environment: a list/dict printed as-is is Python text, not data."""
    if isinstance(value, (list, tuple, dict, set)):
        kind = type(value).__name__
        fields = [k for k, v in (_budget.row or {}).items() if v is value]
        name = f"field '{fields[0]}'" if fields else f"a {kind}"
        example = fields[0] if fields else "value"
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TemplateLimit(
            f"it prints {name}, a {kind} ({shown}), which would reach the text as Python "
            f"syntax: join it first, e.g. {{{{ {example} | join('\\n') }}}}"
        )
    return value


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus per-row bounds (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**"})  # also stops constant folding of "x" * 10**12

    def __init__(self, **options: Any) -> None:
        options.setdefault("finalize", refuse_containers)
        super().__init__(**options)
        self.globals["range"] = bounded_range

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple))
                if sized and isinstance(times, int) and len(seq) * times > MAX_OUTPUT_CHARS:
                    raise TemplateLimit(
                        f"'*' would build {len(seq) * times:,} items or characters, more than "
                        f"the {MAX_OUTPUT_CHARS:,} allowed"
                    )
        if op == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            if isinstance(left, int) and abs(left) > 1:
                raise TemplateLimit(f"'**' with exponent {right} is too large")
        return super().call_binop(context, op, left, right)


def bounded_join(pieces: Iterable[str], block: str = "output") -> str:
    """Join rendered pieces, stopping once the block passes ``MAX_OUTPUT_CHARS``."""
    parts, size = [], 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimit(
                f"its {block} grew past {MAX_OUTPUT_CHARS:,} characters for one row"
            )
        parts.append(piece)
    return "".join(parts)

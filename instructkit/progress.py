"""Progress for long work: a bar on a terminal, a plain line now and then otherwise.

On a terminal (stderr is a tty) bars redraw in place and :func:`working` says at once what is
starting. When stderr is a pipe or a log file, bars would be noise and a silent minute looks
like a hang, so both print a plain line every ``INSTRUCTKIT_PROGRESS_EVERY`` seconds (default
30) while the work lasts; work that ends sooner prints nothing. ``quiet`` silences both.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

DEFAULT_EVERY = 30.0


def progress_every() -> float:
    """Seconds between plain progress lines when stderr is not a terminal."""
    try:
        return max(0.0, float(os.environ.get("INSTRUCTKIT_PROGRESS_EVERY", DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int | None, desc: str, quiet: bool = False, unit: str = "rows") -> Any:
    """A tqdm bar on a terminal; periodic plain lines otherwise; nothing when quiet."""
    if not quiet and not _on_terminal():
        return PlainProgress(total, desc, unit, progress_every())
    bar = _bar_class()
    return bar(total=total, desc=desc, unit=unit, disable=quiet, file=sys.stderr, leave=False)


def _bar_class() -> Any:
    # In a notebook, tqdm's widget; elsewhere the plain bar: tqdm.auto also imports asyncio
    # (25 ms of every command's start-up).
    if "ipykernel" in sys.modules:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


class PlainProgress:
    """The part of tqdm's interface we use, printing ``desc: n/total unit`` every few seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, every: float) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.postfix = ""
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def _print(self, now: float) -> None:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        line = f"{self.desc}: {done} {self.unit}{share}, {now - self.started:.0f} s{extra}"
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def working(message: str, quiet: bool = False) -> Iterator[None]:
    """Say what a long, barless step is doing (loading a model, training a tokenizer).

    On a terminal the message shows at once, until the block ends; otherwise "message ... N s"
    every few seconds from a background thread, so a log shows that the process is alive.
    """
    if quiet:
        yield
        return
    if _on_terminal():
        # transient, like a bar with leave=False: the line is cleared when the step ends
        sys.stderr.write(f"{message} ...")
        sys.stderr.flush()
        try:
            yield
        finally:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
        return
    stop = threading.Event()
    started = time.monotonic()
    every = progress_every()

    def beat() -> None:
        while not stop.wait(every or 0.01):
            print(f"{message} ... {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

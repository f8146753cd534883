"""PNG charts for results people would rather look at than read (matplotlib, no display)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

# Set before pyplot is imported anywhere: there is no display on servers and CI.
os.environ.setdefault("MPLBACKEND", "Agg")

_NO_METADATA = {"Software": None}  # keeps the PNG bytes identical across runs


# (low, high) of a value's confidence interval; None where none was computed
Interval = tuple[float | None, float | None]


def grouped_bar_chart(
    path: str | os.PathLike[str],
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
    intervals: Mapping[str, Sequence[Interval]] | None = None,
) -> None:
    """Bars grouped by category, one colour per series (e.g. target vs realized, before/after).

    ``intervals`` (per series, per category) draws each bar's confidence interval as an error
    bar.
    """
    import matplotlib.pyplot as plt

    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(categories) * max(1, len(series)) / 2), 4))
    for offset, (label, values) in enumerate(series.items()):
        xs = [i + (offset - (len(series) - 1) / 2) * width for i in range(len(categories))]
        yerr = _error_bars(values, (intervals or {}).get(label))
        bars = ax.bar(xs, values, width=width, label=label, yerr=yerr, capsize=3 if yerr else 0)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(
        range(len(categories)), list(categories), rotation=15 if len(categories) > 4 else 0
    )
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_NO_METADATA)
    plt.close(fig)


def line_chart(
    path: str | os.PathLike[str],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
) -> None:
    """One line per series of (xs, ys), e.g. train and validation loss per step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o" if len(xs) < 30 else None, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_NO_METADATA)
    plt.close(fig)


def _error_bars(
    values: Sequence[float], intervals: Sequence[Interval] | None
) -> list[list[float]] | None:
    """matplotlib's asymmetric ``yerr`` ([below], [above]); None without intervals."""
    if not intervals or all(low is None or high is None for low, high in intervals):
        return None
    below = [
        v - low if low is not None else 0.0 for v, (low, _) in zip(values, intervals, strict=True)
    ]
    above = [
        high - v if high is not None else 0.0
        for v, (_, high) in zip(values, intervals, strict=True)
    ]
    return [below, above]


# xs, ys and the (low, high) interval of each point
Band = tuple[Sequence[float], Sequence[float], Sequence[Interval]]


def band_line_chart(
    path: str | os.PathLike[str],
    panels: dict[str, dict[str, Band]],
    title: str,
    xlabel: str,
    ylabel: str,
) -> None:
    """One panel per key of ``panels`` (e.g. per training run), one line per series in it (e.g.
    per task) with its confidence interval drawn as a shaded band; panels share the y axis.

    A series keeps its colour in every panel; a trailing marker (``"task *"``) does not count.
    """
    import matplotlib.pyplot as plt

    count = max(1, len(panels))
    fig, axes = plt.subplots(1, count, figsize=(5.5 * count, 4), sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def key(label: str) -> str:
        return label.removesuffix(" *")

    labels = list(dict.fromkeys(key(label) for lines in panels.values() for label in lines))
    for ax, (panel, lines) in zip(axes[0], panels.items(), strict=False):
        for label, (xs, ys, intervals) in lines.items():
            colour = colours[labels.index(key(label)) % len(colours)]
            ax.plot(list(xs), list(ys), marker="o", color=colour, label=label)
            known = [(x, lo, hi) for x, (lo, hi) in zip(xs, intervals, strict=True)
                     if lo is not None and hi is not None]  # fmt: skip
            if known:
                ax.fill_between(
                    [k[0] for k in known], [k[1] for k in known], [k[2] for k in known],
                    color=colour, alpha=0.2, linewidth=0,
                )  # fmt: skip
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_NO_METADATA)
    plt.close(fig)

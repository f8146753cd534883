"""What the forgetting report says beyond raw scores: paired Δ intervals, verdicts, the probe.

- **Δ with an interval**: the rows are the same for every model, so the change on a task is the
  mean of per-row differences (model minus baseline), and its 95% interval is a seeded
  bootstrap of those differences (paired: much tighter than comparing two separate intervals).
  A Δ whose interval includes 0 is marked ``~0``: no clear change.
- **Verdict**: one line per model, e.g. ``full-B: forgot dialogsum_topic: -73.8 ± 3.1; learned
  dialogsum: +42.4 ± 2.0``; for adapters, the score with the adapter removed.
- **Loss probe table**: mean completion loss per probe and model, and its Δ (lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from instructkit.evaluate.metrics import Score

if TYPE_CHECKING:
    from instructkit.evaluate.forgetting import ForgettingReport, TaskRow

CROSSES_ZERO_MARK = "~0"


def paired_delta(
    rows: Sequence[float], baseline: Sequence[float], bootstrap: int, confidence: float, seed: int
) -> Score:
    """Mean of per-row differences with a bootstrap interval (None bounds without bootstrap)."""
    from instructkit.evaluate.metrics import _mean_with_interval

    differences = [a - b for a, b in zip(rows, baseline, strict=True)]
    return _mean_with_interval(differences, bootstrap, confidence, seed)


def crosses_zero(delta: Score) -> bool:
    """True when the interval includes 0 (no interval: only an exact 0 counts)."""
    if delta.low is None or delta.high is None:
        return delta.value == 0
    return delta.low <= 0 <= delta.high


def half_width(delta: Score) -> float | None:
    if delta.low is None or delta.high is None:
        return None
    return (delta.high - delta.low) / 2


def format_delta(delta: Score, digits: int = 2) -> str:
    """``-73.79 ± 3.10``, with ``~0`` appended when the interval includes zero."""
    text = f"{delta.value:+.{digits}f}"
    width = half_width(delta)
    if width is not None:
        text += f" ± {width:.{digits}f}"
    return f"{text} {CROSSES_ZERO_MARK}" if crosses_zero(delta) else text


def verdicts(report: ForgettingReport) -> list[str]:
    """One line per compared model: what it forgot, learned and kept, read off the intervals."""
    lines = []
    for model in report.models[1:]:
        parts = [_task_verdict(report, row, model.name) for row in report.tasks]
        probe = _probe_verdict(report, model.name)
        if probe:
            parts.append(probe)
        lines.append(f"{model.name}: " + "; ".join(parts))
    return lines


def _task_verdict(report: ForgettingReport, row: TaskRow, name: str) -> str:
    delta = report.delta_score(row, name)
    width = half_width(delta)
    amount = f"{delta.value:+.1f}" + (f" ± {width:.1f}" if width is not None else "")
    tuned = name in report.tuned_on(row.task)
    if crosses_zero(delta):
        text = f"kept {row.task} ({amount})"
    elif delta.value < 0:
        text = f"{'got worse on' if tuned else 'forgot'} {row.task}: {amount}"
    else:
        text = f"{'learned' if tuned else 'improved on'} {row.task}: {amount}"
    removed = row.adapter_removed.get(name)
    if removed is not None:
        text += f" (adapter removed: {removed.value:.1f})"
    return text


def _probe_verdict(report: ForgettingReport, name: str) -> str:
    from instructkit.evaluate.probes import PLAIN_TEXT_PROBE

    base = report.probes.get(report.baseline, {})
    mine = report.probes.get(name, {})
    text = [p for p in mine if p.startswith(PLAIN_TEXT_PROBE) and p in base]
    if not text:
        return ""
    probe = text[0]
    change = mine[probe].loss - base[probe].loss
    ratio = mine[probe].perplexity / base[probe].perplexity
    return f"{probe} loss {change:+.3f} (perplexity x{ratio:.2f})"


def probe_markdown(report: ForgettingReport) -> list[str]:
    """The loss probe as a markdown table (empty when no probe ran)."""
    if not report.probes:
        return []
    names = [m.name for m in report.models if m.name in report.probes]
    probes = list(dict.fromkeys(p for n in names for p in report.probes[n]))
    baseline = report.baseline
    header = ["probe", "rows", "tokens"]
    for name in names:
        header += [name] if name == baseline else [name, f"Δ {name}"]
    lines = [
        "",
        "Loss probe: mean loss per target token (nats; lower is better), perplexity in "
        f"parentheses, Δ against '{baseline}'.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|",
    ]
    for probe in probes:
        first = next(report.probes[n][probe] for n in names if probe in report.probes[n])
        cells = [probe, str(first.rows), str(first.tokens)]
        base = report.probes.get(baseline, {}).get(probe)
        for name in names:
            result = report.probes[name].get(probe)
            cells.append("" if result is None else f"{result.loss:.3f} ({result.perplexity:.1f})")
            if name != baseline:
                change = None if result is None or base is None else result.loss - base.loss
                cells.append("" if change is None else f"{change:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def probes_json(report: ForgettingReport) -> dict[str, Any]:
    return {
        model: {probe: result.to_json() for probe, result in probes.items()}
        for model, probes in report.probes.items()
    }

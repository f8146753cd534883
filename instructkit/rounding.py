"""Shares to whole rows: one largest-remainder rule for render's splits and mix's quotas."""

from __future__ import annotations

import math
from collections.abc import Sequence


def largest_remainder(amounts: Sequence[float], total: int) -> list[int]:
    """Round non-negative ``amounts`` to integers that sum exactly to ``total``.

    Each gets its floor; the rows left over go to the largest fractional parts, ties to the
    earlier one, so the result never depends on anything but the inputs.
    """
    floors = [math.floor(a) for a in amounts]
    left = total - sum(floors)
    if left < 0 or left > len(amounts):
        raise ValueError(f"cannot round {list(amounts)} to a total of {total}")
    order = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors

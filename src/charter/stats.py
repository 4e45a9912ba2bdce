"""Rates with their uncertainty: k/n and a Wilson 95% interval.

Every rate Charter reports comes with k/n and a Wilson 95% interval (small n makes point
estimates misleading: 5/10 is anywhere from 24% to 76%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """k out of n; `value` is the rate (NaN when n is 0), `interval` its Wilson 95% interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def __str__(self) -> str:
        if not self.n:
            return "0/0"
        low, high = self.interval
        return f"{self.k}/{self.n} = {self.value:.1%} [{low:.1%}, {high:.1%}]"

    def to_dict(self) -> dict[str, float | int | list[float]]:
        low, high = self.interval
        return {
            "k": self.k,
            "n": self.n,
            "rate": round(self.value, 4),
            "ci95": [round(low, 4), round(high, 4)],
        }


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank on sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]

"""Figures with their uncertainty: a mean over queries with its standard error, and the paired
difference of two methods on the same queries.

On small benchmarks (the demo's 48 queries, Paris-278's 11) a mAP moves by several points from
query to query; a figure means little without its standard error, and two methods are compared
by the per-query differences (the same queries, so the queries' own difficulty cancels), not by
two independent means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """`mean` ± `se` (standard error of the mean) over `n` queries."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.se:.4f} (n={self.n})"


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and standard error over the values that count (NaN: a query left out of the mean,
    as the revisited protocols leave out queries without positives)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), 0)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    return Estimate(float(x.mean()), se, int(x.size))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """b - a per query, over the queries both count, as an estimate."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same queries: {x.shape} vs {y.shape}")
    both = ~(np.isnan(x) | np.isnan(y))
    return estimate((y - x)[both])

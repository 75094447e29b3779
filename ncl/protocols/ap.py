"""Average precision and precision@k exactly as the official benchmark code computes them.

Oxford's `compute_ap.cpp`, Holidays' `holidays_map.py` and revisitop's `compute_map` share one
trapezoid rule that is not textbook AP: for the j-th positive (0-based) at rank r (0-based,
counted after junk is removed from the list),

    ap += (p0 + p1) / (2 * npos),   p0 = j / r (1 when r = 0),   p1 = (j + 1) / (r + 1),

so one positive ranked second scores 0.25, not 0.5. `npos` counts every positive, also those the
(possibly truncated) list never reaches. Generic retrieval metrics (sklearn, torchmetrics) give
other numbers, up to 4 mAP points on Holidays, hence this module.

Ranked lists are 1-d integer arrays of ids, best first; negative ids pad short lists and are
ignored. An id listed both as positive and as junk counts as junk, as in `compute_ap.cpp`
(revisitop's ground truth never has such overlaps). Everything is vectorised per list: 70
queries over 100k images score in a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

_POSITIVE, _JUNK = 1, 2


def _ids(values: ArrayLike) -> np.ndarray:
    """A 1-d int64 array; an empty input (list or tuple) would otherwise come out as float."""
    return np.asarray(values, dtype=np.int64).reshape(-1)


def positive_ranks(ranked: ArrayLike, positives: ArrayLike, junk: ArrayLike = ()) -> np.ndarray:
    """0-based ranks of the positives in `ranked` once padding and junk are taken out.

    This is the one pass over the list that both `average_precision` and `precision_at_k`
    need. Ids are database indices (non-negative, bounded by the database size): a lookup table
    over them labels the whole list in one gather, several times faster than `np.isin`.
    """
    ranked, positives, junk = _ids(ranked), _ids(positives), _ids(junk)
    ranked = ranked[ranked >= 0]
    size = 1 + max(ranked.max(initial=-1), positives.max(initial=-1), junk.max(initial=-1))
    label = np.zeros(size, dtype=np.int8)
    label[positives] = _POSITIVE
    label[junk] = _JUNK
    codes = label[ranked]
    return np.flatnonzero(codes[codes != _JUNK] == _POSITIVE)


def ap_from_ranks(ranks: np.ndarray, npos: int) -> float:
    """Trapezoid AP of positives found at the 0-based, junk-free, increasing `ranks`.

    NaN when `npos` is 0: such a query has no defined AP and protocols leave it out of the mean.
    """
    if npos == 0:
        return float("nan")
    r = np.asarray(ranks, dtype=np.float64)
    j = np.arange(r.size, dtype=np.float64)
    p0 = np.divide(j, r, out=np.ones_like(r), where=r > 0)
    p1 = (j + 1.0) / (r + 1.0)
    return float((p0 + p1).sum() / (2.0 * npos))


def precision_from_ranks(ranks: np.ndarray, kappas: Sequence[int]) -> np.ndarray:
    """revisitop's mP@k terms for positives at the 0-based, junk-free `ranks`.

    revisitop caps k at the 1-based rank of the last positive retrieved,
    kq = min(max(pos), k), and returns (pos <= kq).sum() / kq: a query whose only positive is
    ranked first scores P@10 = 1, not 0.1. With a full ranking every positive is somewhere in
    the list; revisitop fails on a list holding none (max of an empty array), which only a
    truncated list can produce. Here such a list scores 0 for every k: it retrieved nothing
    relevant.
    """
    if np.size(ranks) == 0:
        return np.zeros(len(kappas))
    pos = np.asarray(ranks, dtype=np.int64) + 1
    last = int(pos.max())
    out = np.empty(len(kappas))
    for i, k in enumerate(kappas):
        kq = min(last, int(k))
        out[i] = np.count_nonzero(pos <= kq) / kq
    return out


def average_precision(ranked: ArrayLike, positives: ArrayLike, junk: ArrayLike = ()) -> float:
    """Official trapezoid AP of one ranked list (see the module docstring)."""
    npos = int(np.unique(_ids(positives)).size)
    return ap_from_ranks(positive_ranks(ranked, positives, junk), npos)


def precision_at_k(
    ranked: ArrayLike,
    positives: ArrayLike,
    junk: ArrayLike = (),
    kappas: Sequence[int] = (1, 5, 10),
) -> np.ndarray:
    """revisitop's precision at each k of `kappas`, with its cap (see `precision_from_ranks`)."""
    return precision_from_ranks(positive_ranks(ranked, positives, junk), kappas)

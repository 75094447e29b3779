"""The reference the AP tests and `benchmarks/scoring.py` measure against: Oxford's
`compute_ap.cpp` ported line by line (one copy: the benchmarks import it from here)."""

from __future__ import annotations

from collections.abc import Sequence


def compute_ap_cpp(pos: set, amb: set, ranked_list: Sequence) -> float:
    """Literal port of compute_ap.cpp's `compute_ap` (Oxford buildings), in double precision.
    `pos` and `amb` (junk) are sets, `ranked_list` a list of the same kind of ids."""
    old_recall = 0.0
    old_precision = 1.0
    ap = 0.0

    intersect_size = 0
    i = 0
    j = 0
    while i < len(ranked_list):
        if ranked_list[i] in amb:
            i += 1
            continue
        if ranked_list[i] in pos:
            intersect_size += 1

        recall = intersect_size / float(len(pos))
        precision = intersect_size / (j + 1.0)

        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)

        old_recall = recall
        old_precision = precision
        j += 1
        i += 1
    return ap

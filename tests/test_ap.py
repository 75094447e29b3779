"""The trapezoid AP and revisitop's mP@k: hand-computed values and a cross-check against a
line-by-line port of Oxford's compute_ap.cpp (`helpers.compute_ap`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.compute_ap import compute_ap_cpp

from ncl.protocols.ap import (
    ap_from_ranks,
    average_precision,
    positive_ranks,
    precision_at_k,
    precision_from_ranks,
)


def test_one_positive_ranked_second_scores_a_quarter():
    assert average_precision([5, 3], [3]) == pytest.approx(0.25)
    assert average_precision([3, 5], [3]) == pytest.approx(1.0)


def test_two_positives_hand_computed():
    # positives at ranks 1 and 3: (0 + 1/2) + (1/3 + 2/4), over 2 * npos = 4
    assert average_precision([0, 1, 2, 3], [1, 3]) == pytest.approx((0.5 + 1 / 3 + 0.5) / 4)


def test_junk_ranked_first_is_skipped():
    assert average_precision([9, 3], [3], junk=[9]) == pytest.approx(1.0)
    assert average_precision([1, 9, 2], [1, 2], junk=[9]) == pytest.approx(1.0)
    # junk only shifts what follows it: the positive ranked third becomes second
    assert average_precision([7, 9, 3], [3], junk=[9]) == pytest.approx(0.25)


def test_positives_missing_from_a_truncated_list_count_in_npos():
    # one of three positives retrieved, first: (1 + 1) / (2 * 3)
    assert average_precision([1, 7], [1, 2, 3]) == pytest.approx(1 / 3)
    assert average_precision([7, 8], [1, 2]) == 0.0
    assert average_precision([], [1]) == 0.0


def test_padding_is_ignored():
    assert average_precision([5, 3, -1, -1], [3]) == pytest.approx(0.25)
    assert average_precision(np.array([-1, -1]), [3]) == 0.0


def test_no_positives_is_nan():
    assert math.isnan(average_precision([1, 2], []))
    assert math.isnan(ap_from_ranks(np.array([], dtype=np.int64), 0))


def test_positive_and_junk_at_once_counts_as_junk_as_compute_ap_cpp_does():
    ranked, positives, junk = [4, 2, 3], [2, 3], [2]
    expected = compute_ap_cpp({2, 3}, {2}, ranked)
    assert average_precision(ranked, positives, junk) == pytest.approx(expected, abs=1e-12)


def test_positive_ranks_are_counted_after_junk_removal():
    assert positive_ranks([9, 1, 8, 2, 3], [2, 3], junk=[8]).tolist() == [2, 3]


@pytest.mark.parametrize("seed", range(20))
def test_matches_compute_ap_cpp_on_random_rankings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    ranked = rng.permutation(n)
    if seed % 2:
        ranked = ranked[: int(rng.integers(1, n + 1))]  # truncated list
    ids = rng.permutation(n)
    n_pos = int(rng.integers(1, max(2, n // 4)))
    positives = ids[:n_pos]
    junk = ids[n_pos : n_pos + int(rng.integers(0, max(1, n // 5)))]
    expected = compute_ap_cpp(set(positives.tolist()), set(junk.tolist()), ranked.tolist())
    assert average_precision(ranked, positives, junk) == pytest.approx(expected, abs=1e-12)


def test_precision_at_k_has_revisitops_cap():
    # positives at 1-based ranks 1 and 3: k is capped at 3, the rank of the last positive
    p = precision_at_k([10, 11, 12, 13], [10, 12], kappas=(1, 2, 5, 10))
    assert p.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 2 / 3])


def test_precision_at_k_after_junk():
    assert precision_at_k([9, 10], [10], junk=[9], kappas=(1, 5)).tolist() == [1.0, 1.0]


def test_precision_at_k_without_any_retrieved_positive_is_zero():
    assert precision_at_k([7, 8], [1], kappas=(1, 5, 10)).tolist() == [0.0, 0.0, 0.0]
    assert precision_from_ranks(np.array([], dtype=np.int64), (1, 5)).tolist() == [0.0, 0.0]

"""Protocols: hand-computed scores and cross-checks against line-by-line ports of revisitop's
compute_map and Holidays' holidays_map.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncl.protocols.official import APProtocol, RevisitedProtocol, UKBProtocol

# --- literal ports of the official code ---------------------------------------------------------


def revisitop_compute_ap(ranks, nres):
    """revisitop/evaluate.py compute_ap."""
    nimgranks = len(ranks)
    ap = 0
    recall_step = 1.0 / nres
    for j in np.arange(nimgranks):
        rank = ranks[j]
        if rank == 0:  # noqa: SIM108 (kept as in the original)
            precision_0 = 1.0
        else:
            precision_0 = float(j) / rank
        precision_1 = float(j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap


def revisitop_compute_map(ranks, gnd, kappas=()):
    """revisitop/evaluate.py compute_map; `ranks` is (database, queries) as revisitop has it."""
    map = 0.0
    nq = len(gnd)
    aps = np.zeros(nq)
    pr = np.zeros(len(kappas))
    prs = np.zeros((nq, len(kappas)))
    nempty = 0

    for i in np.arange(nq):
        qgnd = np.array(gnd[i]["ok"])

        if qgnd.shape[0] == 0:
            aps[i] = float("nan")
            prs[i, :] = float("nan")
            nempty += 1
            continue

        try:
            qgndj = np.array(gnd[i]["junk"])
        except KeyError:
            qgndj = np.empty(0)

        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]

        k = 0
        ij = 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1

        ap = revisitop_compute_ap(pos, len(qgnd))
        map = map + ap
        aps[i] = ap

        pos += 1
        for j in np.arange(len(kappas)):
            kq = min(max(pos), kappas[j])
            prs[i, j] = (pos <= kq).sum() / kq
        pr = pr + prs[i, :]

    map = map / (nq - nempty)
    pr = pr / (nq - nempty)

    return map, aps, pr, prs


def revisitop_setups(gnd):
    """revisitop/example_evaluate.py: the easy, medium and hard ground truths."""
    out = {}
    for setup, ok, junk in (
        ("easy", ("easy",), ("junk", "hard")),
        ("medium", ("easy", "hard"), ("junk",)),
        ("hard", ("hard",), ("junk", "easy")),
    ):
        out[setup] = [
            {
                "ok": np.concatenate([np.asarray(g[k], dtype=np.int64) for k in ok]),
                "junk": np.concatenate([np.asarray(g[k], dtype=np.int64) for k in junk]),
            }
            for g in gnd
        ]
    return out


def holidays_score_ap_from_ranks_1(ranks, nres):
    """holidays_map.py score_ap_from_ranks_1."""
    ap = 0.0
    recall_step = 1.0 / nres
    for ntp, rank in enumerate(ranks):
        if rank == 0:  # noqa: SIM108 (kept as in the original)
            precision_0 = 1.0
        else:
            precision_0 = ntp / float(rank)
        precision_1 = (ntp + 1) / float(rank + 1)
        ap += (precision_1 + precision_0) * recall_step / 2.0
    return ap


def holidays_query_ap(query_name, results, gt_results):
    """holidays_map.py's loop body for one query; `results` are (rank, name) pairs."""
    tp_ranks = []
    rank_shift = 0
    for rank, returned_name in sorted(results):
        if returned_name == query_name:
            rank_shift = -1
        elif returned_name in gt_results:
            tp_ranks.append(rank + rank_shift)
    return holidays_score_ap_from_ranks_1(tp_ranks, len(gt_results))


# --- APProtocol ---------------------------------------------------------------------------------


def test_ap_protocol_hand_computed():
    protocol = APProtocol(positives=[[1], [0, 2]], junk=[[], [3]])
    ranks = np.array([[2, 1, 0, 3], [3, 0, 2, -1]])
    scores = protocol.score(ranks)
    assert protocol.depth is None
    assert scores.per_query["AP"] == pytest.approx([0.25, 1.0])
    assert scores.metrics["mAP"] == pytest.approx(0.625)


def test_ap_protocol_leaves_queries_without_positives_out_of_the_mean():
    scores = APProtocol(positives=[[0], []], junk=[[], []]).score(np.array([[0, 1], [0, 1]]))
    assert math.isnan(scores.per_query["AP"][1])
    assert scores.metrics["mAP"] == pytest.approx(1.0)


def test_holidays_query_removal_hand_computed():
    # query 0 of group {0, 1, 2} ranked first: removed, the positives move up to ranks 1 and 2
    protocol = APProtocol(positives=[[1, 2]], junk=[[0]])
    ap = protocol.score(np.array([[0, 5, 1, 2]])).per_query["AP"][0]
    assert ap == pytest.approx((0 + 1 / 2 + 1 / 2 + 2 / 3) / 4)
    assert ap == pytest.approx(5 / 12)
    assert ap == pytest.approx(
        holidays_query_ap("q", [(0, "q"), (1, "x"), (2, "a"), (3, "b")], {"a", "b"})
    )


@pytest.mark.parametrize("seed", range(10))
def test_holidays_matches_holidays_map_on_random_rankings(seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(30), rng.integers(2, 6, 30))
    queries = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    n = len(groups)
    positives = [np.flatnonzero((groups == groups[q]) & (np.arange(n) != q)) for q in queries]
    protocol = APProtocol(positives, [[q] for q in queries])
    ranks = np.stack([rng.permutation(n) for _ in queries])[:, : n if seed % 2 else n // 2]
    got = protocol.score(ranks).per_query["AP"]
    names = [f"{i:06d}" for i in range(n)]
    for q, row, pos, ap in zip(queries, ranks, positives, got, strict=True):
        results = [(r, names[i]) for r, i in enumerate(row)]
        expected = holidays_query_ap(names[q], results, {names[i] for i in pos})
        assert ap == pytest.approx(expected, abs=1e-12)


def test_ranks_shape_is_checked():
    protocol = APProtocol(positives=[[0]], junk=[[]])
    with pytest.raises(ValueError, match="shape"):
        protocol.score(np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        protocol.score(np.array([[0.0, 1.0]]))


# --- RevisitedProtocol --------------------------------------------------------------------------


def test_revisited_setups_hand_computed():
    protocol = RevisitedProtocol(
        easy=[[0], []],
        hard=[[1], [2]],
        junk=[[3], []],
        kappas=(1, 2),
    )
    ranks = np.array([[3, 1, 0, 2], [0, 1, 2, 3]])
    s = protocol.score(ranks)
    # query 0, easy: hard image 1 and junk 3 skipped, the easy positive is first
    assert s.per_query["easy/AP"][0] == pytest.approx(1.0)
    # query 1 has no easy positive: NaN, out of the easy means
    assert math.isnan(s.per_query["easy/AP"][1])
    assert math.isnan(s.per_query["easy/P@1"][1])
    assert s.metrics["easy/mAP"] == pytest.approx(1.0)
    assert s.metrics["easy/mP@1"] == pytest.approx(1.0)
    # medium, query 0: list [1, 0, 2] after junk, positives at ranks 0 and 1 -> 1.0
    # medium, query 1: positive 2 at rank 2 -> (2/3 ... ) = (0 + 1/3) / 2
    assert s.per_query["medium/AP"] == pytest.approx([1.0, 1 / 6])
    assert s.metrics["medium/mAP"] == pytest.approx((1.0 + 1 / 6) / 2)
    # P@2 with the cap: query 1's only positive is third, k stays 2 -> 0/2
    assert s.per_query["medium/P@2"] == pytest.approx([1.0, 0.0])
    # hard, query 0: easy 0 and junk 3 skipped: [1, 2] -> 1.0; query 1: [0, 1, 2, 3] -> 1/6
    assert s.per_query["hard/AP"] == pytest.approx([1.0, 1 / 6])
    assert set(s.metrics) == {
        f"{x}/{m}" for x in ("easy", "medium", "hard") for m in ("mAP", "mP@1", "mP@2")
    }


def test_revisited_precision_quirk():
    # a single positive ranked first: P@10 is 1, not 0.1, because k is capped at its rank
    s = RevisitedProtocol(easy=[[5]], hard=[[]], junk=[[]]).score(np.arange(20)[::-1][None, 14:])
    assert s.metrics["easy/mP@10"] == pytest.approx(1.0)
    assert math.isnan(s.metrics["hard/mAP"])


@pytest.mark.parametrize("seed", range(10))
def test_revisited_matches_compute_map_on_random_rankings(seed):
    rng = np.random.default_rng(seed)
    n, nq = 120, 8
    gnd = []
    for q in range(nq):
        ids = rng.permutation(n)
        ne, nh, nj = (int(v) for v in rng.integers(0, 8, 3))
        if q == 0:
            ne = 0  # a query without easy positives
        gnd.append(
            {"easy": ids[:ne], "hard": ids[ne : ne + nh], "junk": ids[ne + nh : ne + nh + nj]}
        )
    ranks = np.stack([rng.permutation(n) for _ in range(nq)])
    kappas = (1, 5, 10)
    s = RevisitedProtocol(
        [g["easy"] for g in gnd], [g["hard"] for g in gnd], [g["junk"] for g in gnd], kappas
    ).score(ranks)
    for setup, sgnd in revisitop_setups(gnd).items():
        if all(len(g["ok"]) == 0 for g in sgnd):
            continue
        mean_ap, aps, mpr, prs = revisitop_compute_map(ranks.T.copy(), sgnd, kappas)
        np.testing.assert_allclose(s.per_query[f"{setup}/AP"], aps, atol=1e-12)
        assert s.metrics[f"{setup}/mAP"] == pytest.approx(mean_ap, abs=1e-12)
        for c, k in enumerate(kappas):
            np.testing.assert_allclose(s.per_query[f"{setup}/P@{k}"], prs[:, c], atol=1e-12)
            assert s.metrics[f"{setup}/mP@{k}"] == pytest.approx(mpr[c], abs=1e-12)


# --- UKBProtocol --------------------------------------------------------------------------------

GROUPS = np.repeat(np.arange(3), 4)


def test_ukb_perfect_is_four():
    ranks = np.array(
        [np.r_[i, np.flatnonzero((GROUPS[i] == GROUPS) & (np.arange(12) != i))] for i in range(12)]
    )
    scores = UKBProtocol(GROUPS).score(ranks)
    assert UKBProtocol(GROUPS).depth == 4
    assert scores.metrics["N-S"] == pytest.approx(4.0)


def test_ukb_imperfect_hand_computed():
    ranks = np.tile(np.arange(12), (12, 1))  # everyone ranks 0, 1, 2, 3, 4, ... first
    ranks[4] = [4, 5, 0, -1, 6, 7, 8, 9, 10, 11, 1, 2]  # 2 hits then a wrong one and padding
    scores = UKBProtocol(GROUPS).score(ranks)
    # group 0 queries: 4 hits each; queries 5-11 rank group 0 first: 0 hits; query 4: 2 hits
    assert scores.per_query["N-S"] == [4.0] * 4 + [2.0] + [0.0] * 7
    assert scores.metrics["N-S"] == pytest.approx(18 / 12)


def test_ukb_indices_past_the_database_are_misses():
    scores = UKBProtocol(GROUPS[:4]).score(np.array([[0, 1, 2, 9]] * 4))
    assert scores.metrics["N-S"] == pytest.approx(3.0)

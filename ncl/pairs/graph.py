"""The matching graph of one class and the pairs taken from it (Babenko et al., section 5).

Nodes are a class's photos; an edge joins two photos whose verified pair has at least
`min_inliers` RANSAC inliers, weighted by that count. The training pairs are *candidates*:
photos that share at least one neighbour but are not neighbours themselves. Neighbours are
near-duplicates or easy views the network already maps close together; two photos linked only
through a third show the same landmark under a larger change, which is what the projection
should learn to bring together.

Evidence of a candidate (a, b): the best two-hop path's bottleneck,
    max over common neighbours c of min(inliers(a, c), inliers(c, b)),
i.e. the largest k such that a and b are linked through one photo by two matches of at least k
inliers each. A path is as trustworthy as its weakest match, and the best path is the one to
trust; this is the count written to the pairs file.

Selection is greedy: candidates in order of decreasing evidence (ties by the names of the two
photos, so the result does not depend on file order or workers), a candidate kept when neither
photo is in a kept pair yet. Every photo then occurs at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# (index of a, index of b, count) with a < b.
Weighted = tuple[int, int, int]


def adjacency(n: int, inliers: Iterable[Weighted], min_inliers: int) -> np.ndarray:
    """Symmetric n x n int64 matrix: the inlier count of each edge, 0 where there is none."""
    adj = np.zeros((n, n), dtype=np.int64)
    for a, b, count in inliers:
        if count >= min_inliers and a != b:
            adj[a, b] = adj[b, a] = count
    return adj


def two_hop_evidence(adj: np.ndarray) -> np.ndarray:
    """E[a, b] = max over c of min(adj[a, c], adj[c, b]) (0 where a and b share no neighbour;
    the diagonal is 0). O(n³) in numpy, one n x n step per photo with two or more neighbours."""
    n = len(adj)
    evidence = np.zeros_like(adj)
    for c in np.flatnonzero((adj > 0).sum(axis=1) >= 2):
        np.maximum(evidence, np.minimum.outer(adj[:, c], adj[c, :]), out=evidence)
    evidence[np.arange(n), np.arange(n)] = 0
    return evidence


def candidates(adj: np.ndarray) -> list[Weighted]:
    """Pairs (a < b) that share a neighbour but are not neighbours, with their evidence."""
    evidence = two_hop_evidence(adj)
    evidence[adj > 0] = 0
    a, b = np.nonzero(np.triu(evidence, k=1))
    return [(int(i), int(j), int(evidence[i, j])) for i, j in zip(a, b, strict=True)]


def select_greedy(pairs: Iterable[Weighted], names: Sequence[str]) -> list[Weighted]:
    """Strongest evidence first, ties by the pair's names; keep a pair when neither photo is
    used yet. Returns the kept pairs in the order they were kept."""

    def key(p: Weighted) -> tuple[int, str, str]:
        x, y = sorted((names[p[0]], names[p[1]]))
        return -p[2], x, y

    used: set[int] = set()
    kept = []
    for a, b, count in sorted(pairs, key=key):
        if a not in used and b not in used:
            used.update((a, b))
            kept.append((a, b, count))
    return kept


def degree_stats(adj: np.ndarray) -> dict[str, Any]:
    """Edges and degree statistics of a graph, for the summary."""
    degree = (adj > 0).sum(axis=1)
    if len(degree) == 0:
        degree = np.zeros(1, dtype=np.int64)  # an empty class reads as one isolated photo's zeros
    return {
        "edges": int(degree.sum() // 2),
        "degree_min": int(degree.min()),
        "degree_median": float(np.median(degree)),
        "degree_mean": round(float(degree.mean()), 3),
        "degree_max": int(degree.max()),
        "isolated": int((degree == 0).sum()),
    }

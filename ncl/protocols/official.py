"""Scoring ranked lists exactly as the official evaluation code does (see DESIGN.md)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ncl.protocols.ap import ap_from_ranks, positive_ranks, precision_from_ranks


@dataclass(frozen=True)
class Scores:
    """Metrics of one evaluation: `metrics` by name (e.g. `mAP`, `N-S`, `medium/mP@5`) and the
    per-query values behind them (NaN where a query is left out of a mean)."""

    metrics: dict[str, float]
    per_query: dict[str, list[float]]


class Protocol(ABC):
    """Turns ranked lists into metrics.

    `ranks` is an (n_queries, depth) integer array of database indices, best first; -1 pads a
    list that is shorter than `depth`. `depth` says how deep the lists must be: None for the
    whole database.
    """

    depth: int | None = None

    @abstractmethod
    def score(self, ranks: np.ndarray) -> Scores: ...

    @abstractmethod
    def relevance(self, query: int, indices: Sequence[int]) -> list[str]:
        """What each database index is to query `query`: "positive", "junk" or "negative" (the
        frame a ranking gallery draws around it)."""


def _label(index: int, positives: np.ndarray, junk: np.ndarray) -> str:
    if index in positives:
        return "positive"
    return "junk" if index in junk else "negative"


def _check_ranks(ranks: np.ndarray, n_queries: int) -> np.ndarray:
    """The ranks as a 2-d integer array with one row per query, or a ValueError saying why not."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[0] != n_queries:
        raise ValueError(f"ranks must have shape ({n_queries}, depth), got {ranks.shape}")
    if ranks.size and ranks.dtype.kind not in "iu":
        raise ValueError(f"ranks must hold integer database indices, got dtype {ranks.dtype}")
    return ranks.astype(np.int64, copy=False)


def _mean(values: np.ndarray) -> float:
    """Mean over the queries that count (not NaN); NaN, without a warning, when none does."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def _index_arrays(lists: Sequence[ArrayLike]) -> list[np.ndarray]:
    return [np.unique(np.asarray(x, dtype=np.int64).reshape(-1)) for x in lists]


class APProtocol(Protocol):
    """Oxford5k/Paris6k (`compute_ap.cpp`) and Holidays (`holidays_map.py`) mAP.

    `positives[i]` and `junk[i]` are database indices for query i. Junk is skipped while walking
    the list. Holidays passes the query's own database index as its only junk, which is exactly
    holidays_map.py's rule "the query is removed and later ranks move up one". A query without
    positives has no AP (NaN) and is left out of the mean.
    """

    def __init__(self, positives: Sequence[ArrayLike], junk: Sequence[ArrayLike]) -> None:
        if len(positives) != len(junk):
            raise ValueError(f"{len(positives)} positive lists for {len(junk)} junk lists")
        self.positives = _index_arrays(positives)
        self.junk = _index_arrays(junk)

    def score(self, ranks: np.ndarray) -> Scores:
        ranks = _check_ranks(ranks, len(self.positives))
        aps = np.array(
            [
                ap_from_ranks(positive_ranks(row, pos, junk), pos.size)
                for row, pos, junk in zip(ranks, self.positives, self.junk, strict=True)
            ]
        )
        return Scores(metrics={"mAP": _mean(aps)}, per_query={"AP": aps.tolist()})

    def relevance(self, query: int, indices: Sequence[int]) -> list[str]:
        return [_label(i, self.positives[query], self.junk[query]) for i in indices]


class RevisitedProtocol(Protocol):
    """Revisited Oxford/Paris (Radenović et al. 2018), as revisitop's `compute_map`.

    Three setups per query, from its easy, hard and junk indices:
    easy (positives easy, junk junk+hard), medium (positives easy+hard, junk junk) and hard
    (positives hard, junk junk+easy). Each reports mAP and mP@k for k in `kappas`; a query with
    no positives in a setup is NaN there and left out of that setup's means, as revisitop does.
    Metric keys are `<setup>/mAP` and `<setup>/mP@<k>`; per-query keys `<setup>/AP` and
    `<setup>/P@<k>`.
    """

    SETUPS = ("easy", "medium", "hard")

    def __init__(
        self,
        easy: Sequence[ArrayLike],
        hard: Sequence[ArrayLike],
        junk: Sequence[ArrayLike],
        kappas: Sequence[int] = (1, 5, 10),
    ) -> None:
        if not len(easy) == len(hard) == len(junk):
            raise ValueError(
                f"easy/hard/junk lists differ in length: {len(easy)}/{len(hard)}/{len(junk)}"
            )
        if not kappas or min(kappas) < 1:
            raise ValueError(f"kappas must be positive integers, got {tuple(kappas)}")
        self.kappas = tuple(int(k) for k in kappas)
        easy_, hard_, junk_ = _index_arrays(easy), _index_arrays(hard), _index_arrays(junk)
        both = [np.union1d(e, h) for e, h in zip(easy_, hard_, strict=True)]
        self.setups: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
            "easy": (easy_, [np.union1d(j, h) for j, h in zip(junk_, hard_, strict=True)]),
            "medium": (both, junk_),
            "hard": (hard_, [np.union1d(j, e) for j, e in zip(junk_, easy_, strict=True)]),
        }

    def score(self, ranks: np.ndarray) -> Scores:
        ranks = _check_ranks(ranks, len(self.setups["easy"][0]))
        metrics: dict[str, float] = {}
        per_query: dict[str, list[float]] = {}
        for setup in self.SETUPS:
            positives, junk = self.setups[setup]
            aps = np.full(len(ranks), np.nan)
            prs = np.full((len(ranks), len(self.kappas)), np.nan)
            for i, (row, pos, jnk) in enumerate(zip(ranks, positives, junk, strict=True)):
                if pos.size == 0:
                    continue
                found = positive_ranks(row, pos, jnk)
                aps[i] = ap_from_ranks(found, pos.size)
                prs[i] = precision_from_ranks(found, self.kappas)
            metrics[f"{setup}/mAP"] = _mean(aps)
            per_query[f"{setup}/AP"] = aps.tolist()
            for c, k in enumerate(self.kappas):
                metrics[f"{setup}/mP@{k}"] = _mean(prs[:, c])
                per_query[f"{setup}/P@{k}"] = prs[:, c].tolist()
        return Scores(metrics=metrics, per_query=per_query)

    def relevance(self, query: int, indices: Sequence[int]) -> list[str]:
        """As the medium setup sees them (easy and hard positives, junk junk)."""
        positives, junk = self.setups["medium"]
        return [_label(i, positives[query], junk[query]) for i in indices]


class UKBProtocol(Protocol):
    """UKB's N-S score: how many of the query's group (itself included) are in its top 4.

    `groups[i]` is the object id of database image i; query i is database image i. A perfect
    system scores 4.0. Lists shorter than 4 (padded with -1) count only what they hold; indices
    past the database (images outside the benchmark) are misses, as any non-relevant image.
    """

    depth = 4

    def __init__(self, groups: ArrayLike) -> None:
        self.groups = np.asarray(groups, dtype=np.int64).reshape(-1)

    def score(self, ranks: np.ndarray) -> Scores:
        top = _check_ranks(ranks, self.groups.size)[:, : self.depth]
        valid = (top >= 0) & (top < self.groups.size)
        same = valid & (self.groups[np.where(valid, top, 0)] == self.groups[:, None])
        hits = same.sum(axis=1).astype(np.float64)
        return Scores(metrics={"N-S": _mean(hits)}, per_query={"N-S": hits.tolist()})

    def relevance(self, query: int, indices: Sequence[int]) -> list[str]:
        group = self.groups[query]
        return [
            "positive" if 0 <= i < self.groups.size and self.groups[i] == group else "negative"
            for i in indices
        ]

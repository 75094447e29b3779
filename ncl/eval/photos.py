"""Searching a user's own photos: any image set as the database, query images against it, no
ground truth. The same code source, compression, search and re-ranking as an evaluation, so a
configuration that scores well on a benchmark is the one a user searches with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ncl.codes.source import CodeSource
from ncl.codes.store import CodeSet
from ncl.data.images import ImageSet
from ncl.eval.compression import Compression
from ncl.eval.run import index_training_codes, training_codes
from ncl.rerank import DatabaseKey, Reranking
from ncl.search.index import Flat
from ncl.search.rows import CodeRows
from ncl.search.search import Search


@dataclass(frozen=True)
class Hit:
    """One result: the database image (its index in the database image set), and the squared L2
    distance between the query's and its (compressed, L2-normalised) codes."""

    index: int
    name: str
    path: Path
    distance: float


@dataclass(frozen=True)
class QueryHits:
    name: str
    path: Path
    hits: list[Hit]


@dataclass(frozen=True)
class PhotoSearch:
    """The ranked lists of a search; `unreadable` names the query images that had no codes."""

    database: ImageSet
    tap: str
    method: str
    dim: int
    results: list[QueryHits]
    unreadable: list[str]
    index: dict[str, Any]  # the faiss index searched: kind, parameters, bytes


def fit_codes(
    compression: Compression, db: CodeSet, source: CodeSource, tap: str
) -> CodeSet | None:
    """The codes a compressor is fitted on: none, the searched folder itself (`fit_on=self`,
    recorded), or a separate image set."""
    if not compression.fits:
        return None
    if compression.fit_on_benchmark:
        return db
    if not isinstance(compression.fit_on, ImageSet):
        raise ValueError(
            "compression needs an image set to fit on: compression.fit_on={name: ..., root: ...} "
            "or compression.fit_on=self to fit on the searched folder"
        )
    return source.codes(compression.fit_on)[tap]


class PhotoIndex:
    """A folder of photos ready for queries: its codes (made where missing or stale), the
    compressor fitted and the database compressed once, so that each query costs only its own
    coding and the search. `search.py` answers one set of queries with it, or a stream of them
    (`query=-`) without preparing the folder again; a folder changed meanwhile is seen by the
    next `PhotoIndex`, not by this one.
    """

    def __init__(
        self,
        database: ImageSet,
        source: CodeSource,
        compression: Compression,
        search: Search,
        rerank: Reranking | None = None,
    ) -> None:
        if len(compression.dims) != 1:
            raise ValueError(f"search takes one compression.dim, got {list(compression.dims)}")
        self.database, self.source, self.searcher = database, source, search
        self.rerank = rerank or Reranking()
        self.tap, dim = source.taps[0], compression.dims[0]
        self.db = source.codes(database)[self.tap]
        fit = fit_codes(compression, self.db, source, self.tap)
        self.compressor = compression.compressor(fit, dim, self.db.dim)
        self.method = "none" if dim is None else compression.method
        rows = CodeRows([self.db.codes], self.compressor, self.compressor.dim)
        # the exact index holds every code in memory anyway: compressed once, not per query
        self.rows = np.asarray(rows) if isinstance(search.index, Flat) else rows
        self.learn, self.learned_from = training_codes(
            search, index_training_codes(search, source), self.tap, self.compressor, rows
        )
        self.key = DatabaseKey(
            self.db.path,
            {"codes": [self.db.identity], "compressor": compression.identity(fit, dim)},
        )
        self.position = {name: i for i, name in enumerate(database.names)}

    def search(self, queries: ImageSet, k: int = 10) -> PhotoSearch:
        """The `k` nearest database images of every query, by the source's first tap."""
        found = self.source.codes(queries)[self.tap]
        q = self.compressor(np.asarray(found.codes))
        owner = np.arange(len(self.db), dtype=np.int64)
        depth = min(k, len(self.db))
        ranking = self.rerank.rank(
            self.searcher, self.rows, owner, q, depth, self.key, self.learn, self.learned_from
        )
        results = []
        for row, (name, ranks) in enumerate(zip(found.ids, ranking.ranks, strict=True)):
            ranks = ranks[ranks >= 0]
            codes = self.compressor(np.asarray(self.db.codes[ranks]))
            distances = ((codes - q[row]) ** 2).sum(axis=1)
            hits = []
            for r, d in zip(ranks, distances, strict=True):
                i = self.position[self.db.ids[r]]
                hits.append(Hit(i, self.db.ids[r], self.database.files[i], float(d)))
            results.append(QueryHits(name, queries.files[queries.names.index(name)], hits))
        known = set(found.ids)
        return PhotoSearch(
            database=self.database,
            tap=self.tap,
            method=self.method,
            dim=self.compressor.dim,
            results=results,
            unreadable=[n for n in queries.names if n not in known],
            index=ranking.index,
        )


def merged(searches: Sequence[PhotoSearch]) -> PhotoSearch:
    """The searches of one `PhotoIndex` (a stream of queries) as one, for one results.json."""
    first = searches[0]
    return replace(
        first,
        results=[r for s in searches for r in s.results],
        unreadable=[n for s in searches for n in s.unreadable],
    )


def as_run(found: PhotoSearch, model: str, rerank: dict[str, Any]) -> dict[str, Any]:
    """The search as an evaluation's results.json (rankings, no ground truth), so that
    `ncl.report.gallery` shows it the same way."""
    return {
        "benchmark": found.database.name,
        "model": model,
        "queries": len(found.results),
        "query_names": [r.name for r in found.results],
        "query_images": [
            {"name": r.name, "path": str(r.path), "bbox": None} for r in found.results
        ],
        "gallery_images": {str(h.index): str(h.path) for r in found.results for h in r.hits},
        "rows": [
            {
                "tap": found.tap,
                "method": found.method,
                "dim": found.dim,
                "rerank": rerank,
                "index": found.index,
                "top": [[h.index for h in r.hits] for r in found.results],
                "top_relevance": [["result"] * len(r.hits) for r in found.results],
                "top_distance": [[h.distance for h in r.hits] for r in found.results],
            }
        ],
        "unreadable_queries": found.unreadable,
    }

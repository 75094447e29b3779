"""Searching a user's own photos: any image set as the database, query images against it, no
ground truth. The same code source, compression, search and re-ranking as an evaluation, so a
configuration that scores well on a benchmark is the one a user searches with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ncl.codes.source import CodeSource
from ncl.codes.store import CodeSet
from ncl.data.images import ImageSet
from ncl.eval.compression import Compression
from ncl.eval.run import index_training_codes, training_codes
from ncl.rerank import DatabaseKey, Reranking
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


def search_photos(
    database: ImageSet,
    queries: ImageSet,
    source: CodeSource,
    compression: Compression,
    search: Search,
    rerank: Reranking | None = None,
    *,
    k: int = 10,
) -> PhotoSearch:
    """The `k` nearest database images of every query, by the source's first tap. Codes come
    from the code store: a folder coded before is coded again only where it changed."""
    rerank = rerank or Reranking()
    if len(compression.dims) != 1:
        raise ValueError(f"search takes one compression.dim, got {list(compression.dims)}")
    tap, dim = source.taps[0], compression.dims[0]
    db = source.codes(database)[tap]
    found = source.codes(queries)[tap]
    fit = fit_codes(compression, db, source, tap)
    compressor = compression.compressor(fit, dim, db.dim)
    x = CodeRows([db.codes], compressor, compressor.dim)
    q = compressor(np.asarray(found.codes))
    learn, learned_from = training_codes(
        search, index_training_codes(search, source), tap, compressor, x
    )
    key = DatabaseKey(
        db.path, {"codes": [db.identity], "compressor": compression.identity(fit, dim)}
    )
    owner = np.arange(len(db), dtype=np.int64)
    depth = min(k, len(db))
    ranking = rerank.rank(search, x, owner, q, depth, key, learn, learned_from)
    position = {name: i for i, name in enumerate(database.names)}
    results = []
    for row, (name, ranks) in enumerate(zip(found.ids, ranking.ranks, strict=True)):
        ranks = ranks[ranks >= 0]
        distances = ((compressor(np.asarray(db.codes[ranks])) - q[row]) ** 2).sum(axis=1)
        hits = [
            Hit(position[db.ids[r]], db.ids[r], database.files[position[db.ids[r]]], float(d))
            for r, d in zip(ranks, distances, strict=True)
        ]
        results.append(QueryHits(name, queries.files[queries.names.index(name)], hits))
    known = set(found.ids)
    return PhotoSearch(
        database=database,
        tap=tap,
        method="none" if dim is None else compression.method,
        dim=compressor.dim,
        results=results,
        unreadable=[n for n in queries.names if n not in known],
        index=ranking.index,
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

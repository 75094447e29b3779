"""The evaluation job: codes -> compression -> search -> protocol -> results.

Codes come from a code source (a network's taps or a local-feature baseline, `ncl.codes.source`)
through the code store, computed on demand (once; later runs and every job of a sweep reuse
them); PCA bases are fitted once per (fit set, tap) and cached beside the fit codes. One call
evaluates the product of the source's taps and the dimensions and returns one result row each.
Distractors (`ncl.codes.distractors`) are code sets appended to the database: their rows rank
as images past the benchmark's, which no protocol counts as positive. The database is handed to
the search as `CodeRows` (memory-mapped, compressed a chunk at a time); a trained index learns
on the codes of its own `train_on` image set, compressed as the row's database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ncl.codes.distractors import Distractors
from ncl.codes.source import CodeSource
from ncl.codes.store import CodeSet
from ncl.compress.base import Compressor
from ncl.data.benchmarks.base import Benchmark
from ncl.data.images import ImageSet, database_image_set, query_image_set
from ncl.eval.compression import Compression
from ncl.rerank import DatabaseKey, Reranking
from ncl.search.index import IVFFlat
from ncl.search.rows import CodeRows, sample_rows
from ncl.search.search import Search

# codes an index trained on the database itself learns from (k-means samples 256 per list)
DATABASE_TRAIN_SAMPLE = 1 << 18

log = logging.getLogger(__name__)


@dataclass
class ResultRow:
    tap: str
    method: str
    dim: int
    metrics: dict[str, float]
    per_query: dict[str, list[float]]
    depth: int
    search_device: str
    seconds: dict[str, float] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=lambda: {"name": "flat"})  # kind, params, bytes
    compressor: dict[str, Any] = field(default_factory=dict)  # a learned one's provenance
    rerank: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    unreadable_queries: list[str] = field(default_factory=list)  # ranked nothing, scored 0
    extraction: dict[str, str] = field(default_factory=dict)  # engine, compute dtype, decode
    top: list[list[int]] = field(default_factory=list)  # each query's first database indices
    top_relevance: list[list[str]] = field(default_factory=list)  # positive | junk | negative


@dataclass(frozen=True)
class QueryCodes:
    """Query codes per tap for the queries that have codes (`present`, a mask in the benchmark's
    query order); `unreadable` names the others: they are ranked nothing and score 0, as a
    query that finds nothing does, so the protocol's mean still runs over every query."""

    codes: dict[str, np.ndarray]
    present: np.ndarray
    unreadable: list[str]
    sets: dict[str, CodeSet]


def query_codes(
    benchmark: Benchmark, db: dict[str, CodeSet], source: CodeSource, crop: bool
) -> QueryCodes:
    if benchmark.queries_in_database:
        sets, names = db, [q.image for q in benchmark.queries]
    else:
        sets = source.codes(query_image_set(benchmark, crop))
        names = [q.name for q in benchmark.queries]
    first = sets[source.taps[0]]
    known = set(first.ids)
    present = np.array([n in known for n in names], dtype=bool)
    kept = [n for n, ok in zip(names, present, strict=True) if ok]
    unreadable = [q.name for q, ok in zip(benchmark.queries, present, strict=True) if not ok]
    if unreadable:
        log.warning(
            "%d quer%s without codes (unreadable image%s, see %s): scored 0: %s",
            len(unreadable),
            "y" if len(unreadable) == 1 else "ies",
            "" if len(unreadable) == 1 else "s",
            first.path / "meta.json",
            unreadable[:10],
        )
    codes = {t: np.asarray(sets[t].codes)[sets[t].rows(kept)] for t in source.taps}
    return QueryCodes(codes, present, unreadable, {t: sets[t] for t in source.taps})


def extraction_record(sets: Sequence[CodeSet]) -> dict[str, str]:
    """How the codes of `sets` were extracted (`ncl.codes.extraction` records it in each set's
    meta.json): engine, compute dtype and decode, each value once (`onnxruntime+torch` where
    the sets differ); empty for codes that no network made (the baselines)."""
    values: dict[str, set[str]] = {}
    for codes in sets:
        meta = codes.meta
        record = {**meta.get("extraction", {}), "decode": meta.get("transform", {}).get("decode")}
        for key, value in record.items():
            if value is not None and "extraction" in meta:
                values.setdefault(key, set()).add(str(value))
    return {key: "+".join(sorted(v)) for key, v in values.items()}


def index_training_codes(search: Search, source: CodeSource) -> dict[str, CodeSet]:
    """The codes a trained index learns on: its `train_on` image set's (none for an index that
    trains on nothing or on the database). Training on the database is refused unless asked."""
    kind = search.index
    if not isinstance(kind, IVFFlat) or kind.trains_on_database:
        return {}
    if not isinstance(kind.train_on, ImageSet):
        raise ValueError(
            f"search.index ({kind.name}) needs a separate image set to train on "
            "(search.index.train_on, default the benchmark's fit_on), or "
            "search.index.train_on=database to train on the database itself (recorded)"
        )
    return source.codes(kind.train_on)


def training_codes(
    search: Search, train: dict[str, CodeSet], tap: str, compressor: Compressor, x: CodeRows
) -> tuple[np.ndarray | None, Any]:
    """The compressed codes a trained index of this row learns on, and what stands for them in
    the index's cache key."""
    kind = search.index
    if not isinstance(kind, IVFFlat):
        return None, None
    if kind.trains_on_database:
        return sample_rows(x, DATABASE_TRAIN_SAMPLE), "database"
    return compressor(np.asarray(train[tap].codes)), train[tap].identity


def owners(benchmark: Benchmark, sets: Sequence[CodeSet], extra: CodeSet | None) -> np.ndarray:
    """Each code row's image: its place in the benchmark's database (an image without codes is
    never ranked), distractor rows after the whole database, one image each."""
    position = {name: i for i, name in enumerate(benchmark.database)}
    owner = [position[n] for s in sets for n in s.ids]
    if extra is not None:
        clash = position.keys() & set(extra.ids)
        if clash:
            raise ValueError(
                f"{extra.path}: distractor names already used by the benchmark's database, "
                f"e.g. {sorted(clash)[:3]}"
            )
        owner += range(len(benchmark.database), len(benchmark.database) + len(extra))
    return np.asarray(owner, dtype=np.int64)


def evaluate(
    benchmark: Benchmark,
    source: CodeSource,
    compression: Compression,
    search: Search,
    rerank: Reranking | None = None,
    *,
    crop_queries: bool = True,
    top_k: int = 20,
    distractors: Distractors | None = None,
) -> list[ResultRow]:
    """One row per tap and dimension; `rerank` (default none) runs around the search;
    `distractors` join the database. Each row keeps every query's first `top_k` results with
    their relevance, for ranking galleries."""
    rerank = rerank or Reranking()
    taps = source.taps
    t0 = time.perf_counter()
    database_images = database_image_set(benchmark)
    db = source.codes(database_images)
    turned = [source.codes(database_images.turned(r)) for r in search.database_rotations]
    queries = query_codes(benchmark, db, source, crop_queries)
    fit: dict[str, CodeSet] = {}
    if compression.fits:
        if compression.fit_on_benchmark:
            fit = db
        elif not isinstance(compression.fit_on, ImageSet):
            raise ValueError(
                "compression needs a separate image set to fit on (compression.fit_on), "
                "or compression.fit_on=self to fit on the benchmark itself"
            )
        else:
            fit = source.codes(compression.fit_on)
    extra = distractors.codes(source) if distractors is not None else {}
    train = index_training_codes(search, source)
    codes_seconds = time.perf_counter() - t0
    missing = len(benchmark.database) - len(db[taps[0]])
    if missing:
        log.warning(
            "%d database image(s) have no codes (unreadable); they count as never retrieved",
            missing,
        )
    rows = []
    for tap in taps:
        database = db[tap]
        sets = [database, *(t[tap] for t in turned)]
        owner = owners(benchmark, sets, extra.get(tap))
        if tap in extra:
            sets.append(extra[tap])
        for dim in compression.dims:
            if dim is not None and dim > database.dim:
                # e.g. PCA to 128 of a 64-word BoVW or sparse code: nothing to compress
                log.warning(
                    "%s codes have %d dims: no %s to %d, row skipped",
                    tap,
                    database.dim,
                    compression.method,
                    dim,
                )
                continue
            t1 = time.perf_counter()
            compressor = compression.compressor(fit.get(tap), dim, database.dim)
            x = CodeRows([s.codes for s in sets], compressor, compressor.dim)
            q = compressor(queries.codes[tap])
            learn, learned_from = training_codes(search, train, tap, compressor, x)
            t2 = time.perf_counter()
            key = DatabaseKey(
                database.path,
                {
                    "codes": [s.identity for s in sets],
                    "compressor": compression.identity(fit.get(tap), dim),
                },
            )
            ranking = rerank.rank(
                search, x, owner, q, benchmark.protocol.depth, key, learn, learned_from
            )
            ranks = np.full((len(queries.present), ranking.depth), -1, dtype=np.int64)
            ranks[queries.present] = ranking.ranks
            t3 = time.perf_counter()
            scores = benchmark.protocol.score(ranks)
            t4 = time.perf_counter()
            index_seconds = ranking.index.get("build_seconds") or 0.0
            if ranking.index.get("reused"):
                index_seconds = ranking.index.get("load_seconds", 0.0)
            rows.append(
                ResultRow(
                    tap=tap,
                    method="none" if dim is None else compression.method,
                    dim=compressor.dim,
                    metrics=scores.metrics,
                    per_query=scores.per_query,
                    depth=ranking.depth,
                    search_device=ranking.device,
                    seconds={
                        "compress": t2 - t1,
                        "index": index_seconds,
                        "search": t3 - t2 - index_seconds,
                        "score": t4 - t3,
                    },
                    index=ranking.index,
                    compressor=dict(getattr(compressor, "info", {})),
                    rerank=rerank.record(),
                    unreadable_queries=queries.unreadable,
                    extraction=extraction_record([*sets, queries.sets[tap]]),
                    top=[[int(i) for i in row[:top_k] if i >= 0] for row in ranks],
                    top_relevance=[
                        benchmark.protocol.relevance(q, [i for i in row[:top_k] if i >= 0])
                        for q, row in enumerate(ranks)
                    ],
                )
            )
    if not rows:
        raise ValueError(
            f"nothing evaluated: every dimension asked ({list(compression.dims)}) exceeds the "
            f"codes' ({', '.join(f'{t}: {db[t].dim}' for t in taps)})"
        )
    log.info("codes ready in %.1fs", codes_seconds)
    return rows


def rows_as_dicts(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]

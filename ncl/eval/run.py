"""The evaluation job: codes -> compression -> search -> protocol -> results.

Codes come from the code store and are extracted on demand (once; later runs and every job of a
sweep reuse them); PCA bases are fitted once per (fit set, tap) and cached beside the fit codes.
One call evaluates the product of its taps and dimensions and returns one result row for each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ncl.codes.extract import ExtractionSettings, extract_codes
from ncl.codes.store import CodeSet, CodeStore
from ncl.compress.base import Compressor, NoCompression
from ncl.compress.pca import PCA, cached_pca_basis
from ncl.data.benchmarks.base import Benchmark
from ncl.data.images import ImageSet, database_image_set, query_image_set
from ncl.search.flat import rank

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressionSpec:
    """`method` none | pca; `dims` one result row each (None: the uncompressed codes)."""

    method: str = "none"
    dims: Sequence[int | None] = (None,)
    whiten: bool = False
    max_components: int = 1024
    fit_on: ImageSet | None = None
    fit_on_benchmark: bool = False


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


def query_codes(
    benchmark: Benchmark,
    db: dict[str, CodeSet],
    model: str,
    taps: Sequence[str],
    store: CodeStore,
    settings: ExtractionSettings,
    crop: bool,
    pretrained: bool,
) -> dict[str, np.ndarray]:
    """Query codes per tap, in the benchmark's query order."""
    if benchmark.queries_in_database:
        names = [q.image for q in benchmark.queries]
        return {t: np.asarray(db[t].codes)[db[t].rows(names)] for t in taps}
    queries = extract_codes(
        query_image_set(benchmark, crop), model, taps, store, settings, pretrained=pretrained
    )
    names = [q.name for q in benchmark.queries]
    return {t: np.asarray(queries[t].codes)[queries[t].rows(names)] for t in taps}


def make_compressor(
    spec: CompressionSpec, dim: int | None, full_dim: int, fit: CodeSet | None
) -> Compressor:
    if dim is None or spec.method == "none":
        return NoCompression(full_dim)
    if spec.method == "pca":
        assert fit is not None
        return PCA(cached_pca_basis(fit, spec.max_components), dim, whiten=spec.whiten)
    raise ValueError(f"unknown compression method {spec.method!r} (none, pca)")


def evaluate(
    benchmark: Benchmark,
    model: str,
    taps: Sequence[str],
    compression: CompressionSpec,
    store: CodeStore,
    settings: ExtractionSettings | None = None,
    *,
    crop_queries: bool = True,
    pretrained: bool = True,
    depth: int | None = None,
    use_gpu: bool | None = None,
) -> list[ResultRow]:
    settings = settings or ExtractionSettings()
    t0 = time.perf_counter()
    db = extract_codes(
        database_image_set(benchmark), model, taps, store, settings, pretrained=pretrained
    )
    queries = query_codes(benchmark, db, model, taps, store, settings, crop_queries, pretrained)
    fit: dict[str, CodeSet] = {}
    if compression.method != "none" and any(d is not None for d in compression.dims):
        if compression.fit_on_benchmark:
            fit = db
        elif compression.fit_on is None:
            raise ValueError(
                "compression needs a separate image set to fit on (compression.fit_on), "
                "or compression.fit_on=self to fit on the benchmark itself"
            )
        else:
            fit = extract_codes(
                compression.fit_on, model, taps, store, settings, pretrained=pretrained
            )
    codes_seconds = time.perf_counter() - t0
    depth = depth if depth is not None else benchmark.protocol.depth
    missing = len(benchmark.database) - len(db[taps[0]])
    if missing:
        log.warning(
            "%d database image(s) have no codes (unreadable); they count as never retrieved",
            missing,
        )
    rows = []
    for tap in taps:
        database = db[tap]
        # ranks index the benchmark's database; an image without codes is simply never ranked
        to_benchmark = (
            np.asarray([benchmark.database.index(n) for n in database.ids]) if missing else None
        )
        for dim in compression.dims:
            t1 = time.perf_counter()
            compressor = make_compressor(compression, dim, database.dim, fit.get(tap))
            x, q = compressor(np.asarray(database.codes)), compressor(queries[tap])
            t2 = time.perf_counter()
            ranking = rank(x, q, depth, use_gpu=use_gpu)
            ranks = ranking.ranks if to_benchmark is None else to_benchmark[ranking.ranks]
            t3 = time.perf_counter()
            scores = benchmark.protocol.score(ranks)
            t4 = time.perf_counter()
            rows.append(
                ResultRow(
                    tap=tap,
                    method="none" if dim is None else compression.method,
                    dim=compressor.dim,
                    metrics=scores.metrics,
                    per_query=scores.per_query,
                    depth=ranking.depth,
                    search_device=ranking.device,
                    seconds={"compress": t2 - t1, "search": t3 - t2, "score": t4 - t3},
                )
            )
    log.info("codes ready in %.1fs", codes_seconds)
    return rows


def rows_as_dicts(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]

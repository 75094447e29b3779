"""Exact nearest-neighbour ranking with faiss, and what every search shares.

Codes are L2-normalised, so ranking by L2 distance equals ranking by inner product; the index is
an exact flat L2 index, on the GPU only when faiss was built with GPU support *and* sees a GPU
(faiss-gpu on a machine without one silently returns an empty index otherwise); with several
GPUs the database is sharded over all of them (`on_gpus`). The compressed indexes of
`ncl.search.index` search through the same batches (`search_batches`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from ncl.search.rows import CodeRows, row_chunks

# faiss's GPU k-selection is limited; deeper lists are ranked on the CPU.
GPU_MAX_K = 2048


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@dataclass(frozen=True)
class Ranking:
    """`ranks`: (n_queries, depth) database indices, best first (-1: none found); `device` the
    index it ran on; `index` what the index was (name, parameters, bytes, seconds to make it)."""

    ranks: np.ndarray
    depth: int
    device: str
    index: dict[str, Any] = field(default_factory=dict)


def on_gpus(index: faiss.Index) -> faiss.Index:
    """`index` copied to the GPU; with several GPUs sharded over all of them (each holds a
    part of the database, the results are merged), so a database larger than one GPU's memory
    is searched at once."""
    if faiss.get_num_gpus() > 1:
        options = faiss.GpuMultipleClonerOptions()
        options.shard = True
        return faiss.index_cpu_to_all_gpus(index, options)
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)


def wants_gpu(use_gpu: bool | None) -> bool:
    """Whether to search on the GPU: `use_gpu` None means when faiss sees one; True without
    one is an error rather than an empty GPU index."""
    want = gpu_available() if use_gpu is None else use_gpu
    if want and not gpu_available():
        raise RuntimeError(
            "search on the GPU asked for, but faiss sees no GPU (is faiss-gpu installed?)"
        )
    return want


def search_batches(
    index: faiss.Index, queries: np.ndarray, k: int, max_results: int = 1 << 24
) -> np.ndarray:
    """`index`'s top `k` ids for each query (-1 where it finds fewer), in batches of at most
    `max_results` results (ids and distances: 16M results are about 200 MB), never a full
    queries x database matrix; batches are as large as that allows because faiss is several
    times faster per query on large batches."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    ranks = np.empty((queries.shape[0], k), dtype=np.int64)
    step = max(1, max_results // max(k, 1))
    for start in range(0, queries.shape[0], step):
        _, ranks[start : start + step] = index.search(queries[start : start + step], k)
    return ranks


def rank(
    database: np.ndarray | CodeRows,
    queries: np.ndarray,
    depth: int | None = None,
    *,
    use_gpu: bool | None = None,
    max_results: int = 1 << 24,
) -> Ranking:
    """Rank the database for each query, exactly, `depth` deep (None: the whole database).

    The index is filled a chunk at a time: it is the only float32 copy of the codes (a float16
    or memory-mapped set, or `CodeRows`, is never first copied whole to float32)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if database.shape[1] != queries.shape[1]:
        raise ValueError(f"database codes are {database.shape[1]}-d, queries {queries.shape[1]}-d")
    n = database.shape[0]
    k = n if depth is None else min(depth, n)
    on_gpu = wants_gpu(use_gpu) and k <= GPU_MAX_K
    index: faiss.Index = faiss.IndexFlatL2(database.shape[1])
    if on_gpu:
        index = on_gpus(index)
    for chunk in row_chunks(database):
        index.add(chunk)
    ranks = search_batches(index, queries, k, max_results)
    return Ranking(ranks=ranks, depth=k, device="gpu" if on_gpu else "cpu")


def best_per_image(ranks: np.ndarray, depth: int | None) -> np.ndarray:
    """Ranks over several codes per image (e.g. its rotated copies), given as image indices, as
    ranks over images: each image at the place of its best code, `depth` deep (None: all), -1
    (none found, from an approximate index) left out and padding the shorter rows.

    `ranks` must reach deep enough for `depth` distinct images: `depth` x codes per image."""
    rows = []
    for row in ranks:
        row = row[row >= 0]
        _, first = np.unique(row, return_index=True)
        rows.append(row[np.sort(first)][:depth])
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out

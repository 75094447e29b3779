"""Exact nearest-neighbour ranking with faiss.

Codes are L2-normalised, so ranking by L2 distance equals ranking by inner product; the index is
an exact flat L2 index, on the GPU only when faiss was built with GPU support *and* sees a GPU
(faiss-gpu on a machine without one silently returns an empty index otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

# faiss's GPU k-selection is limited; deeper lists are ranked on the CPU.
GPU_MAX_K = 2048


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@dataclass(frozen=True)
class Ranking:
    """`ranks`: (n_queries, depth) database indices, best first; `device` the index it ran on."""

    ranks: np.ndarray
    depth: int
    device: str


def rank(
    database: np.ndarray,
    queries: np.ndarray,
    depth: int | None = None,
    *,
    use_gpu: bool | None = None,
    max_results: int = 1 << 24,
) -> Ranking:
    """Rank the database for each query, `depth` deep (None: the whole database).

    Queries go through in batches of at most `max_results` results (ids and distances: 16M
    results are about 200 MB), never a full queries x database matrix; batches are as large as
    that allows because faiss is several times faster per query on large batches.
    """
    database = np.ascontiguousarray(database, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if database.shape[1] != queries.shape[1]:
        raise ValueError(f"database codes are {database.shape[1]}-d, queries {queries.shape[1]}-d")
    n = database.shape[0]
    k = n if depth is None else min(depth, n)
    want_gpu = gpu_available() if use_gpu is None else use_gpu
    if want_gpu and not gpu_available():
        raise RuntimeError(
            "search on the GPU asked for, but faiss sees no GPU (is faiss-gpu installed?)"
        )
    on_gpu = want_gpu and k <= GPU_MAX_K
    index: faiss.Index = faiss.IndexFlatL2(database.shape[1])
    if on_gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(database)
    ranks = np.empty((queries.shape[0], k), dtype=np.int64)
    step = max(1, max_results // max(k, 1))
    for start in range(0, queries.shape[0], step):
        _, ranks[start : start + step] = index.search(queries[start : start + step], k)
    return Ranking(ranks=ranks, depth=k, device="gpu" if on_gpu else "cpu")


def best_per_image(ranks: np.ndarray, depth: int | None) -> np.ndarray:
    """Ranks over several codes per image (e.g. its rotated copies), given as image indices, as
    ranks over images: each image at the place of its best code, `depth` deep (None: all).

    `ranks` must reach deep enough for `depth` distinct images: `depth` x codes per image."""
    rows = []
    for row in ranks:
        _, first = np.unique(row, return_index=True)
        rows.append(row[np.sort(first)][:depth])
    return np.stack(rows) if rows else ranks[:, :0]


@dataclass(frozen=True)
class FlatSearch:
    """Exact search (`conf/search/flat.yaml`), the paper's and today's default.

    `depth`: how deep each ranked list goes (None: as deep as the protocol needs); `gpu`: None
    uses a GPU when faiss sees one; `database_rotations` (e.g. (90, 270)): every database image
    is also coded turned by these degrees and ranked by its best code, so that photos stored
    sideways (Holidays) match their upright queries.
    """

    depth: int | None = None
    gpu: bool | None = None
    database_rotations: Sequence[int] = ()

    def __post_init__(self) -> None:
        if self.depth is not None and (not isinstance(self.depth, int) or self.depth < 1):
            raise ValueError(f"search.depth must be a positive integer or null, got {self.depth!r}")
        if self.gpu is not None and not isinstance(self.gpu, bool):
            raise ValueError(f"search.gpu must be true, false or null, got {self.gpu!r}")
        rotations = tuple(int(r) for r in self.database_rotations)
        if any(r % 90 for r in rotations):
            raise ValueError(
                f"search.database_rotations must be multiples of 90 degrees, got {list(rotations)}"
            )
        object.__setattr__(self, "database_rotations", rotations)

    def rank(
        self, database: np.ndarray, owner: np.ndarray, queries: np.ndarray, depth: int | None
    ) -> Ranking:
        """Rank images for each query: `database` holds one or more codes per image, `owner` the
        image of each code row; an image comes at the place of its best code."""
        depth = self.depth if self.depth is not None else depth
        copies = 1 + len(self.database_rotations)
        ranking = rank(
            database, queries, None if depth is None else depth * copies, use_gpu=self.gpu
        )
        ranks = owner[ranking.ranks]
        if copies > 1:
            ranks = best_per_image(ranks, depth)
        return Ranking(ranks=ranks, depth=ranks.shape[1], device=ranking.device)

"""The search of an evaluation (`conf/search/*.yaml`): one class for every index kind.

`Search(depth, gpu, database_rotations, index)` ranks images for each query. With the exact
`Flat` index (`search=flat`, the default) it ranks as it always has (`ncl.search.flat.rank`);
with a compressed index (`search=ivf_flat|ivf_pq|hnsw`) the index is trained on separate codes,
built once from the database a chunk at a time and cached beside the codes
(`ncl.search.build`), then searched with its search-time settings.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncl.search.build import DatabaseKey, built_index
from ncl.search.flat import (
    GPU_MAX_K,
    Ranking,
    best_per_image,
    on_gpus,
    rank,
    search_batches,
    wants_gpu,
)
from ncl.search.index import Flat, IndexKind, IVFFlat
from ncl.search.refine import compressed_codes, refined
from ncl.search.rows import CodeRows

log = logging.getLogger(__name__)

# how deep an approximate index ranks when neither search.depth nor the protocol says (a
# protocol that scores the whole list, Oxford's, then misses positives ranked deeper)
APPROXIMATE_DEPTH = 1000


@functools.cache
def say_cpu_only(label: str) -> None:
    """Once a process per index (a stream of queries searches again and again)."""
    log.warning("search.gpu=true: faiss has no GPU %s index, searching on the CPU", label)


@dataclass(frozen=True)
class Search:
    """How each query's ranked list is made.

    `depth`: how deep each ranked list goes (None: as deep as the protocol needs; with an
    approximate index at most APPROXIMATE_DEPTH); `gpu`: None uses a GPU when faiss sees one
    (sharded over several); `database_rotations` (e.g. (90, 270)): every database image is also
    coded turned by these degrees and ranked by its best code, so that photos stored sideways
    (Holidays) match their upright queries; `index`: the faiss index kind (`Flat`: exact).
    """

    depth: int | None = None
    gpu: bool | None = None
    database_rotations: Sequence[int] = ()
    index: IndexKind = field(default_factory=Flat)

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
        if not isinstance(self.index, IndexKind):
            raise ValueError(f"search.index must be an index kind, got {self.index!r}")

    def record(self) -> dict[str, Any]:
        """The index for the results: name, parameters and what it is trained on."""
        found: dict[str, Any] = {
            "name": self.index.name,
            "label": self.index.label(),
            **self.index.params(),
        }
        if isinstance(self.index, IVFFlat):
            found["train_on"] = (
                "database (the benchmark itself)"
                if self.index.trains_on_database
                else getattr(self.index.train_on, "name", None)
            )
        return found

    def rank(
        self,
        database: np.ndarray | CodeRows,
        owner: np.ndarray,
        queries: np.ndarray,
        depth: int | None,
        key: DatabaseKey | None = None,
        train: np.ndarray | None = None,
        train_identity: Any = None,
    ) -> Ranking:
        """Rank images for each query: `database` holds one or more codes per image (an array,
        or `CodeRows` read a chunk at a time), `owner` the image of each code row; an image
        comes at the place of its best code. A trained index learns on `train`; `key` (with
        `train_identity`) keeps the built index beside the codes."""
        depth = self.depth if self.depth is not None else depth
        copies = 1 + len(self.database_rotations)
        k = None if depth is None else depth * copies
        if isinstance(self.index, Flat):
            ranking = rank(database, queries, k, use_gpu=self.gpu)
            info = {"bytes": len(database) * database.shape[1] * 4}
        else:
            ranking, info = self.approximate(database, queries, k, key, train, train_identity)
        found = ranking.ranks >= 0
        ranks = np.where(found, owner[np.where(found, ranking.ranks, 0)], -1)
        if copies > 1:
            ranks = best_per_image(ranks, depth)
        return Ranking(
            ranks=ranks,
            depth=ranks.shape[1],
            device=ranking.device,
            index={**self.record(), **info},
        )

    def approximate(
        self,
        database: np.ndarray | CodeRows,
        queries: np.ndarray,
        k: int | None,
        key: DatabaseKey | None,
        train: np.ndarray | None,
        train_identity: Any,
    ) -> tuple[Ranking, dict[str, Any]]:
        """The ranked code rows from the compressed index (built or loaded) and its record."""
        if database.shape[1] != queries.shape[1]:
            raise ValueError(
                f"database codes are {database.shape[1]}-d, queries {queries.shape[1]}-d"
            )
        k = min(APPROXIMATE_DEPTH if k is None else k, len(database))
        index, info = built_index(self.index, database, train, key, train_identity)
        on_gpu = wants_gpu(self.gpu) and k <= GPU_MAX_K and self.index.gpu
        if self.gpu and not self.index.gpu:
            say_cpu_only(self.index.label())
        if on_gpu:
            index = on_gpus(index)
        self.index.tune(index)
        info["table_bytes"] = self.index.table_bytes(index)
        exact = database  # what a refining index re-ranks its shortlist by
        if self.index.refine is not None and key is not None and isinstance(database, CodeRows):
            exact = compressed_codes(database, key)
        started = time.perf_counter()
        if self.index.refine is None:
            ranks = search_batches(index, queries, k)
        else:
            shortlist = search_batches(index, queries, min(k * self.index.refine, len(database)))
            ranks = refined(exact, queries, shortlist, k)
        info["search_seconds"] = time.perf_counter() - started
        return Ranking(ranks=ranks, depth=k, device="gpu" if on_gpu else "cpu"), info

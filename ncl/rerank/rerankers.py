"""Re-rankers (DESIGN.md, "Beyond the paper"), on the codes evaluation searches: compressed and
L2-normalised, network codes and baselines alike.

- **AQE** (Chum et al. 2007), `AverageQueryExpansion(k)`: the new query is the mean of the query
  and the codes of its top-k database images, L2; then search again.
- **alpha-QE** (Radenović et al. 2018), `AlphaQueryExpansion(k, alpha)`: the same sum weighted, the
  query by 1 and each of the top-k by max(sim, 0)^alpha (sim: its inner product with the query;
  negative similarities weigh 0, as in cirtorch). alpha = 0 is AQE.
- **DBA / alpha-DBA** (Arandjelović & Zisserman 2012; Gordo et al. 2017),
  `DatabaseAugmentation(k, alpha)`: every database code is replaced, once, before search, by
  itself (weight 1) plus its top-k *other* database images weighted max(sim, 0)^alpha, L2
  (alpha = 0: the plain mean). The augmented codes are an artifact of `ncl.cache`, kept beside
  the database's code set and reused while the codes, the compressor, k, alpha and the
  neighbour settings are unchanged. The database's own neighbours are exact by default (a
  database x database product: 50-160 s for 100k x 256 codes on the 2 shared cores here); with
  `nlist` they come from an inverted file of `nlist` k-means lists, each code searching its
  `nprobe` nearest (`DatabaseAugmentation(k, alpha, nlist=1024, nprobe=8)`: 7-9 s there, 99.9%
  of the exact neighbours; nprobe = nlist is exact again).

`Reranking(dba, qe)` combines them: DBA on the database side, then query expansion against the
augmented database (`dba` + `alpha_qe`, the common recipe); either may be None. Neighbours are
*images*: with several codes per image (`search.database_rotations`), an image is a neighbour at
its best code, that code is the one averaged in, and a database code's own image (its turned
copies included) is not its neighbour; the final ranking is then image-level as without
re-ranking, so the combination is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncl.cache import Artifact, digest
from ncl.rerank.neighbours import (
    codes_per_image,
    ivf_self_rank,
    pick_images,
    top_images,
    weighted_mean,
)
from ncl.search.build import DatabaseKey
from ncl.search.flat import Ranking
from ncl.search.rows import CodeRows
from ncl.search.search import Search


def check_k(k: Any, option: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{option}.k must be an integer >= 1, got {k!r}")


def check_count(value: Any, option: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{option} must be an integer >= 1 or null, got {value!r}")


def check_alpha(alpha: Any, option: str) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha >= 0:
        raise ValueError(f"{option}.alpha must be a number >= 0, got {alpha!r}")


@dataclass(frozen=True)
class Neighbours:
    """k neighbour images, each weighted max(sim, 0)^alpha; `option` names the config node in
    errors."""

    k: int = 2
    alpha: float = 3.0
    option = "rerank"

    def __post_init__(self) -> None:
        check_k(self.k, self.option)
        check_alpha(self.alpha, self.option)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "alpha": self.alpha}


@dataclass(frozen=True)
class QueryExpansion(Neighbours):
    """alpha-QE: the query (weight 1) plus its top-k database images weighted max(sim, 0)^alpha, L2."""

    name = "alpha_qe"
    option = "rerank.qe"

    def expand(
        self,
        database: np.ndarray,
        owner: np.ndarray,
        queries: np.ndarray,
        use_gpu: bool | None = None,
    ) -> np.ndarray:
        """The expanded queries, to be searched again."""
        near = top_images(database, owner, queries, self.k, use_gpu=use_gpu)
        return weighted_mean(queries, database, near, self.alpha)


@dataclass(frozen=True)
class AlphaQueryExpansion(QueryExpansion):
    """alpha-QE (Radenović et al. 2018), `rerank=alpha_qe`."""


@dataclass(frozen=True)
class AverageQueryExpansion(QueryExpansion):
    """AQE (Chum et al. 2007), `rerank=aqe`: the plain mean of the query and its top-k."""

    alpha: float = field(default=0.0, init=False)
    name = "aqe"

    def params(self) -> dict[str, Any]:
        return {"k": self.k}


# nprobe when only nlist is given (capped at nlist)
DEFAULT_NPROBE = 8


@dataclass(frozen=True)
class DatabaseAugmentation(Neighbours):
    """DBA (alpha = 0) or alpha-DBA: each database code plus its top-k other images, once.

    `nlist`: None (the default) finds each code's neighbours exactly; an integer, through an
    inverted file of that many k-means lists (`ncl.rerank.neighbours.ivf_self_rank`, seeded),
    each code searching its `nprobe` nearest lists (None: DEFAULT_NPROBE, at most nlist). The
    IVF runs on the CPU; neighbours stay images, each at its best code found."""

    k: int = 10
    nlist: int | None = None
    nprobe: int | None = None
    name = "dba"
    option = "rerank.dba"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count(self.nlist, f"{self.option}.nlist")
        check_count(self.nprobe, f"{self.option}.nprobe")
        if self.nlist is None and self.nprobe is not None:
            raise ValueError(
                f"{self.option}.nprobe={self.nprobe} is for IVF neighbours: set "
                f"{self.option}.nlist too (null: exact neighbours, nothing to probe)"
            )
        if self.nlist is not None and self.nprobe is not None and self.nprobe > self.nlist:
            raise ValueError(
                f"{self.option}.nprobe must be <= {self.option}.nlist ({self.nlist}), "
                f"got {self.nprobe}"
            )

    @property
    def probes(self) -> int | None:
        """The lists each code searches (None: exact neighbours)."""
        if self.nlist is None:
            return None
        return self.nprobe if self.nprobe is not None else min(DEFAULT_NPROBE, self.nlist)

    def params(self) -> dict[str, Any]:
        """k and alpha; with IVF neighbours nlist and nprobe too (exact: as before, so that
        earlier rows and cached codes keep their keys)."""
        if self.nlist is None:
            return super().params()
        return {**super().params(), "nlist": self.nlist, "nprobe": self.probes}

    def neighbours(
        self, database: np.ndarray, owner: np.ndarray, use_gpu: bool | None = None
    ) -> np.ndarray:
        """Each database code's k nearest other images (their code rows, -1: none)."""
        if self.nlist is None:
            return top_images(database, owner, database, self.k, exclude=owner, use_gpu=use_gpu)
        if self.nlist > len(database):
            raise ValueError(
                f"{self.option}.nlist={self.nlist} is more than the database's "
                f"{len(database)} codes: use a smaller nlist, or null for exact neighbours"
            )
        depth = min((self.k + 1) * codes_per_image(owner), len(database))
        rows = ivf_self_rank(database, depth, self.nlist, self.probes)
        return pick_images(rows, owner, self.k, exclude=owner)

    def compute(
        self, database: np.ndarray, owner: np.ndarray, use_gpu: bool | None = None
    ) -> np.ndarray:
        database = np.ascontiguousarray(database, dtype=np.float32)
        near = self.neighbours(database, owner, use_gpu)
        return weighted_mean(database, database, near, self.alpha)

    def augment(
        self,
        database: np.ndarray,
        owner: np.ndarray,
        key: DatabaseKey | None = None,
        use_gpu: bool | None = None,
    ) -> np.ndarray:
        """The augmented database codes; with a `key`, made once and cached beside the code set
        as `dba-<digest>/codes.npy` (a sweep over the query side reuses them)."""
        if key is None:
            return self.compute(database, owner, use_gpu)
        inputs = {**key.inputs, "shape": list(database.shape), **self.params()}
        artifact = Artifact(key.directory / f"dba-{digest(inputs)}", inputs)

        def make(tmp: Path) -> None:
            np.save(tmp / "codes.npy", self.compute(database, owner, use_gpu))

        def read(path: Path) -> np.ndarray:
            codes = np.load(path / "codes.npy", allow_pickle=False)
            if codes.shape != database.shape:
                raise ValueError(f"{path / 'codes.npy'}: shape {codes.shape}, not {database.shape}")
            return codes

        return artifact.load(make, read, "DBA codes")


@dataclass(frozen=True)
class Reranking:
    """What runs around the search (`conf/rerank/*.yaml`): DBA on the database, then query
    expansion; `Reranking()` (`rerank=none`) is the search alone."""

    dba: DatabaseAugmentation | None = None
    qe: QueryExpansion | None = None

    def __post_init__(self) -> None:
        if self.dba is not None and not isinstance(self.dba, DatabaseAugmentation):
            raise ValueError(f"rerank.dba must be a DatabaseAugmentation or null, got {self.dba!r}")
        if self.qe is not None and not isinstance(self.qe, QueryExpansion):
            raise ValueError(
                f"rerank.qe must be an AverageQueryExpansion, AlphaQueryExpansion or null, "
                f"got {self.qe!r}"
            )

    @property
    def name(self) -> str:
        return "+".join(p.name for p in (self.dba, self.qe) if p is not None) or "none"

    def record(self) -> dict[str, Any]:
        """For the results: `{"name": "dba+alpha_qe", "dba": {k, alpha}, "qe": {k, alpha}}`."""
        parts = {n: p.params() for n, p in (("dba", self.dba), ("qe", self.qe)) if p is not None}
        return {"name": self.name, **parts}

    def rank(
        self,
        search: Search,
        database: np.ndarray | CodeRows,
        owner: np.ndarray,
        queries: np.ndarray,
        depth: int | None,
        key: DatabaseKey | None = None,
        train: np.ndarray | None = None,
        train_identity: Any = None,
    ) -> Ranking:
        """`search.rank` with the re-rankers around it; `key` caches DBA's codes and the built
        index (of the augmented codes, with DBA), `train` is what an index learns on. The
        re-rankers' own neighbours are exact, whatever the index."""
        if self.dba is not None:
            database = self.dba.augment(np.asarray(database), owner, key, search.gpu)
            key = None if key is None else key.with_inputs(dba=self.dba.params())
        if self.qe is not None:
            database = np.asarray(database)
            queries = self.qe.expand(database, owner, queries, search.gpu)
        return search.rank(database, owner, queries, depth, key, train, train_identity)

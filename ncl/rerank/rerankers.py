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
- **Diffusion** (Iscen et al. 2017), `Diffusion(k, alpha, gamma=, seeds=, truncate=)`: the
  search's shortlist re-ranked by spreading the query's top images over the database's mutual
  k-nearest-neighbour graph (`ncl.rerank.diffusion`); the graph, like DBA's codes, is made once
  per database (the same exact or IVF neighbours) and cached beside the code set.

`Reranking(dba, qe, diffusion)` combines them: DBA on the database side, then query expansion
against the augmented database (`dba` + `alpha_qe`, the common recipe), then diffusion of the
search's shortlist; any may be None. Neighbours are
*images*: with several codes per image (`search.database_rotations`), an image is a neighbour at
its best code, that code is the one averaged in, and a database code's own image (its turned
copies included) is not its neighbour; the final ranking is then image-level as without
re-ranking, so the combination is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from ncl.cache import Artifact, digest
from ncl.rerank.diffusion import diffuse, mutual_graph
from ncl.rerank.neighbours import (
    codes_of_images,
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


def check_positive(k: Any, option: str) -> None:
    """`option` is an integer >= 1 (its full name, e.g. rerank.dba.k)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{option} must be an integer >= 1, got {k!r}")


def check_count(value: Any, option: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{option} must be an integer >= 1 or null, got {value!r}")


def check_nonnegative(alpha: Any, option: str) -> None:
    """`option` is a number >= 0 (its full name, e.g. rerank.qe.alpha)."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha >= 0:
        raise ValueError(f"{option} must be a number >= 0, got {alpha!r}")


@dataclass(frozen=True)
class Neighbours:
    """k neighbour images, each weighted max(sim, 0)^alpha; `option` names the config node in
    errors."""

    k: int = 2
    alpha: float = 3.0
    option = "rerank"

    def __post_init__(self) -> None:
        check_positive(self.k, f"{self.option}.k")
        check_nonnegative(self.alpha, f"{self.option}.alpha")

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
class DatabaseNeighbours(Neighbours):
    """Each database code's k nearest *other* images, the work DBA and diffusion share.

    `nlist`: None (the default) finds them exactly; an integer, through an inverted file of that
    many k-means lists (`ncl.rerank.neighbours.ivf_self_rank`, seeded), each code searching its
    `nprobe` nearest lists (None: DEFAULT_NPROBE, at most nlist). The IVF runs on the CPU;
    neighbours stay images, each at its best code found."""

    k: int = 10
    nlist: int | None = None
    nprobe: int | None = None

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


@dataclass(frozen=True)
class DatabaseAugmentation(DatabaseNeighbours):
    """DBA (alpha = 0) or alpha-DBA: each database code plus its top-k other images, once; its
    neighbours exact or from an inverted file (`DatabaseNeighbours`)."""

    name = "dba"
    option = "rerank.dba"

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
class Diffusion(DatabaseNeighbours):
    """Diffusion (Iscen et al. 2017), `rerank=diffusion`: the search's top `truncate` images of
    each query re-ranked by f, the solution of (I - alpha S) f = y on the mutual k-nearest-
    neighbour graph of the database restricted to them (`ncl.rerank.diffusion`); y: the query's
    top `seeds` images weighted max(s, 0)^gamma; at most `iterations` conjugate-gradient steps.
    Images past the shortlist keep the search's order, so do shortlisted images of equal f (those
    the seeds do not reach: f = 0). The defaults (k 10, alpha 0.9, 5 seeds, gamma 3, 1,000
    shortlisted, 20 steps) were chosen on the demo's training split, which no table scores: the
    paper's k = 50 and alpha = 0.99, made for landmarks with hundreds of views, spread a query
    far past its few true matches there (docs/results.md). The graph is made once per
    database (exact or IVF neighbours, `DatabaseNeighbours`) and cached beside the code set.
    alpha = 0 gives f = y: the search's ranking again (an exact search ranks by the same s)."""

    k: int = 10
    alpha: float = 0.9
    gamma: float = 3.0
    seeds: int = 5
    truncate: int = 1000
    iterations: int = 20
    name = "diffusion"
    option = "rerank.diffusion"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha < 1:
            raise ValueError(f"{self.option}.alpha must be below 1, got {self.alpha!r}")
        check_nonnegative(self.gamma, f"{self.option}.gamma")
        for option in ("seeds", "truncate", "iterations"):
            check_positive(getattr(self, option), f"{self.option}.{option}")
        if self.seeds > self.truncate:
            raise ValueError(
                f"{self.option}.seeds ({self.seeds}) must be <= {self.option}.truncate "
                f"({self.truncate}): seeds come from the shortlist"
            )

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "gamma": self.gamma,
            "seeds": self.seeds,
            "truncate": self.truncate,
            "iterations": self.iterations,
        }

    def graph_params(self) -> dict[str, Any]:
        """What the database side depends on (the query-side settings reuse one graph)."""
        found = {"k": self.k, "gamma": self.gamma}
        if self.nlist is not None:
            found.update(nlist=self.nlist, nprobe=self.probes)
        return found

    def compute(
        self, database: np.ndarray, owner: np.ndarray, use_gpu: bool | None = None
    ) -> sparse.csr_array:
        """The images x images affinity of mutual neighbours (`mutual_graph`)."""
        database = np.ascontiguousarray(database, dtype=np.float32)
        near = self.neighbours(database, owner, use_gpu)
        sims = np.einsum("nd,nkd->nk", database, database[np.where(near >= 0, near, 0)])
        return mutual_graph(owner, near, sims, self.gamma, int(owner.max(initial=-1)) + 1)

    def graph(
        self,
        database: np.ndarray,
        owner: np.ndarray,
        key: DatabaseKey | None = None,
        use_gpu: bool | None = None,
    ) -> sparse.csr_array:
        """The graph; with a `key`, made once and cached beside the code set as
        `diffusion-<digest>/graph.npz` (keyed by the codes, the compressor, k, gamma and the
        neighbour settings)."""
        if key is None:
            return self.compute(database, owner, use_gpu)
        inputs = {**key.inputs, "shape": list(database.shape), **self.graph_params()}
        artifact = Artifact(key.directory / f"diffusion-{digest(inputs)}", inputs)
        images = int(owner.max(initial=-1)) + 1

        def make(tmp: Path) -> None:
            sparse.save_npz(tmp / "graph.npz", self.compute(database, owner, use_gpu))

        def read(path: Path) -> sparse.csr_array:
            graph = sparse.csr_array(sparse.load_npz(path / "graph.npz"))
            if graph.shape != (images, images):
                raise ValueError(f"{path / 'graph.npz'}: shape {graph.shape}, not {images}^2")
            return graph

        return artifact.load(make, read, "diffusion graph")

    def rerank(
        self,
        graph: sparse.csr_array,
        database: np.ndarray,
        owner: np.ndarray,
        queries: np.ndarray,
        ranks: np.ndarray,
    ) -> np.ndarray:
        """`ranks` (queries x depth image ids, best first, -1: none) with each row's first
        `truncate` images in the order of f."""
        shortlist = ranks[:, : self.truncate]
        top = shortlist[:, : self.seeds]
        rows = codes_of_images(owner, graph.shape[0])[np.where(top >= 0, top, 0)]
        found = (rows >= 0) & (top >= 0)[..., None]  # queries x seeds x codes per image
        sims = np.einsum("qd,qscd->qsc", queries, database[np.where(found, rows, 0)])
        best = np.where(found, sims, -np.inf).max(axis=2)  # an image at its best code
        y = np.zeros(shortlist.shape, dtype=np.float64)
        y[:, : top.shape[1]] = np.maximum(best, 0) ** self.gamma
        f = diffuse(graph, shortlist, y, self.alpha, self.iterations)
        order = np.argsort(-f, axis=1, kind="stable")
        out = ranks.copy()
        out[:, : shortlist.shape[1]] = np.take_along_axis(shortlist, order, axis=1)
        return out


@dataclass(frozen=True)
class Reranking:
    """What runs around the search (`conf/rerank/*.yaml`): DBA on the database, then query
    expansion, then diffusion of the search's shortlist; `Reranking()` (`rerank=none`) is the
    search alone."""

    dba: DatabaseAugmentation | None = None
    qe: QueryExpansion | None = None
    diffusion: Diffusion | None = None

    def __post_init__(self) -> None:
        if self.dba is not None and not isinstance(self.dba, DatabaseAugmentation):
            raise ValueError(f"rerank.dba must be a DatabaseAugmentation or null, got {self.dba!r}")
        if self.qe is not None and not isinstance(self.qe, QueryExpansion):
            raise ValueError(
                f"rerank.qe must be an AverageQueryExpansion, AlphaQueryExpansion or null, "
                f"got {self.qe!r}"
            )
        if self.diffusion is not None and not isinstance(self.diffusion, Diffusion):
            raise ValueError(
                f"rerank.diffusion must be a Diffusion or null, got {self.diffusion!r}"
            )

    def parts(self) -> dict[str, Neighbours]:
        found = {"dba": self.dba, "qe": self.qe, "diffusion": self.diffusion}
        return {name: part for name, part in found.items() if part is not None}

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.parts().values()) or "none"

    def record(self) -> dict[str, Any]:
        """For the results: `{"name": "dba+alpha_qe", "dba": {k, alpha}, "qe": {k, alpha}}`."""
        return {"name": self.name, **{n: p.params() for n, p in self.parts().items()}}

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
        """`search.rank` with the re-rankers around it; `key` caches DBA's codes, the diffusion
        graph and the built index (of the augmented codes, with DBA), `train` is what an index
        learns on. The re-rankers' own neighbours are exact, whatever the index; diffusion
        re-ranks the search's own shortlist (searched `truncate` deep at least)."""
        if self.dba is not None:
            database = self.dba.augment(np.asarray(database), owner, key, search.gpu)
            key = None if key is None else key.with_inputs(dba=self.dba.params())
        if self.qe is not None:
            database = np.asarray(database)
            queries = self.qe.expand(database, owner, queries, search.gpu)
        if self.diffusion is None:
            return search.rank(database, owner, queries, depth, key, train, train_identity)
        database = np.asarray(database)
        deeper = None if depth is None else max(depth, self.diffusion.truncate)
        ranking = search.rank(database, owner, queries, deeper, key, train, train_identity)
        graph = self.diffusion.graph(database, owner, key, search.gpu)
        ranks = self.diffusion.rerank(graph, database, owner, queries, ranking.ranks)
        wanted = search.depth if search.depth is not None else depth
        ranks = ranks[:, :wanted] if wanted is not None else ranks
        return replace(ranking, ranks=ranks, depth=ranks.shape[1])

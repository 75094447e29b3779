"""The faiss indexes a search can use, chosen by name (`search=flat|ivf_flat|ivf_pq|hnsw`).

`Flat` is exact (the paper's search and the default). The others trade exactness for speed and
memory at a million images and beyond:
- `IVFFlat(nlist, nprobe)`: k-means cuts the space into `nlist` lists; a query scans the codes
  of its `nprobe` nearest lists (nprobe = nlist: every list, exact).
- `IVFPQ(nlist, m, nbits, nprobe, opq, fast_scan, refine)`: the same lists holding
  product-quantised codes of `m` sub-vectors of `nbits` bits each (m bytes per code at 8 bits,
  against 4 x dim for float32); `opq` rotates the codes first (OPQ) so the sub-vectors quantise
  better; `fast_scan` (4 bits) lays the codes out for faiss's SIMD scan; `refine` re-ranks a
  shortlist by exact distances read from the code set on disk.
- `HNSW(m, ef_construction, ef_search)`: a navigable small-world graph of `m` links per code,
  searched `ef_search` wide; nothing to train.

A trained index (IVF) learns on `train_on`, the benchmark's separate fit set (the one PCA is
fitted on), never on the database unless `train_on=database` says so (the results then record
it). Search-time settings (`nprobe`, `ef_search`, `refine`) are not part of what is built: a
sweep over them builds the index once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import faiss

if TYPE_CHECKING:
    from ncl.data.images import ImageSet

DATABASE = "database"  # train_on=database: train on the database itself (recorded)


def check_positive(option: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"search.index.{option} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class IndexKind:
    """What every index kind says: its faiss factory string, what it is built from (its cache
    key) and what is set at search time. Flat, the exact one, is the plain case."""

    name = "flat"
    exact = True
    # whether the codes must go into the index in one call rather than a chunk at a time
    adds_at_once = False

    @property
    def refine(self) -> int | None:
        """Re-rank the index's top refine x depth by exact distances (`ncl.search.refine`);
        None: the index's own order. Only IVF-PQ, whose distances are approximate, has it as a
        setting (a field, which takes the place of this property; a ClassVar here put it first
        among IVF-PQ's fields)."""
        return None

    @property
    def gpu(self) -> bool:
        """Whether faiss's GPU indexes have this kind (HNSW and fast-scan codes are CPU only)."""
        return True

    @property
    def trains(self) -> bool:
        return False

    def training_need(self) -> tuple[int, str]:
        """The fewest codes its training takes (k-means wants one a centroid at least), and
        which settings ask for them."""
        return 0, ""

    def factory(self, dim: int) -> str:
        """The faiss index-factory string of this index for `dim`-d codes."""
        return "Flat"

    def build_params(self) -> dict[str, Any]:
        """What the built index depends on (an input of its cache key)."""
        return {}

    def search_params(self) -> dict[str, Any]:
        """Settings applied at search time (not part of the built index)."""
        return {}

    def params(self) -> dict[str, Any]:
        return {**self.build_params(), **self.search_params()}

    def label(self) -> str:
        """The kind and the settings it was given, for result tables, e.g. "ivf_pq nlist=16
        m=64 nbits=8 nprobe=16 refine=2" (unset and false options left out): the rows of a
        sweep over any setting stay apart."""
        settings = [
            f"{k}={v}" for k, v in self.params().items() if v is not None and v is not False
        ]
        return " ".join([self.name, *settings])

    def prepare(self, index: faiss.Index) -> None:
        """Settings of a new index that take effect while codes are added."""

    def tune(self, index: faiss.Index) -> None:
        """Apply the search-time settings to a built (or loaded) index."""
        if self.search_params():
            space = faiss.GpuParameterSpace() if is_gpu(index) else faiss.ParameterSpace()
            for name, value in self.search_params().items():
                space.set_index_parameter(index, name, value)

    def table_bytes(self, index: faiss.Index) -> int:
        """Memory a tuned CPU index holds beside its codes to search faster (IVF-PQ's
        precomputed distance tables): a search's memory is the index's bytes plus these."""
        return 0


def is_gpu(index: faiss.Index) -> bool:
    return "Gpu" in type(index).__name__ or isinstance(index, faiss.IndexShards)


@dataclass(frozen=True)
class Flat(IndexKind):
    """Exact search over every code (faiss `IndexFlatL2`), the default."""


@dataclass(frozen=True)
class HNSW(IndexKind):
    """A graph of `m` links per code (`ef_construction` wide while building), searched
    `ef_search` wide: larger is slower and nearer exact."""

    m: int = 32
    # at 1M codes 10-recall@100 0.992 at ef_search 256; faiss's default 40 stays at 0.979 even
    # searched 512 wide (docs/benchmarks.md)
    ef_construction: int = 80
    ef_search: int = 256
    name = "hnsw"
    exact = False
    # faiss's graph built over several add calls is far worse than over one: 10-recall@100 fell
    # from 0.99 to 0.90 (100k clustered codes, 16k-row adds) and to 0.50 (1M, 64k-row adds); the
    # graph holds every code as float32 anyway, so the set goes in whole
    adds_at_once = True

    @property
    def gpu(self) -> bool:
        return False

    def __post_init__(self) -> None:
        for f in fields(self):
            check_positive(f.name, getattr(self, f.name))

    def factory(self, dim: int) -> str:
        return f"HNSW{self.m}"

    def build_params(self) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction}

    def search_params(self) -> dict[str, Any]:
        return {"efSearch": self.ef_search}

    def prepare(self, index: faiss.Index) -> None:
        faiss.downcast_index(index).hnsw.efConstruction = self.ef_construction


@dataclass(frozen=True)
class IVFFlat(IndexKind):
    """`nlist` k-means lists of full codes; a query scans its `nprobe` nearest lists. Trained
    on `train_on`: an image set (`${benchmark.fit_on}`), or "database" (recorded)."""

    nlist: int = 1024
    nprobe: int = 32
    train_on: ImageSet | str | None = None
    name = "ivf_flat"
    exact = False

    def __post_init__(self) -> None:
        check_positive("nlist", self.nlist)
        check_positive("nprobe", self.nprobe)
        if self.nprobe > self.nlist:
            raise ValueError(
                f"search.index.nprobe must be <= search.index.nlist ({self.nlist}), "
                f"got {self.nprobe}"
            )
        if isinstance(self.train_on, str) and self.train_on != DATABASE:
            raise ValueError(
                f"search.index.train_on must be an image set or '{DATABASE}', got {self.train_on!r}"
            )

    @property
    def trains(self) -> bool:
        return True

    @property
    def trains_on_database(self) -> bool:
        return self.train_on == DATABASE

    def training_need(self) -> tuple[int, str]:
        return self.nlist, f"nlist={self.nlist} lists"

    def factory(self, dim: int) -> str:
        return f"IVF{self.nlist},Flat"

    def build_params(self) -> dict[str, Any]:
        return {"nlist": self.nlist}

    def search_params(self) -> dict[str, Any]:
        return {"nprobe": self.nprobe}


@dataclass(frozen=True)
class IVFPQ(IVFFlat):
    """IVF lists of product-quantised codes: `m` sub-vectors of `nbits` bits (`m` must divide
    the codes' dim); `opq` learns a rotation first (OPQ). `fast_scan` (nbits 4 only): the
    codes packed in blocks of 32 for faiss's SIMD scan (`PQ{m}x4fsr`, residuals as with 8 bits),
    which looks up 16-entry tables in registers instead of 256-entry ones in memory: at 1M codes
    m=128 (the same 64 bytes a code as m=64 at 8 bits) probing 32 lists recalled 0.970 at
    14-15x flat's speed, 8-bit m=64 probing 24 0.964 at 12.6x (docs/benchmarks.md); CPU only. `refine` (search time): the index's top `refine` x depth rows
    are re-ranked by their exact distances, the codes read from the memory-mapped code set
    (`ncl.search.refine`; faiss's IndexRefine k_factor); None keeps the product-quantised
    order."""

    m: int = 32
    nbits: int = 8
    opq: bool = False
    fast_scan: bool = False
    refine: int | None = None
    name = "ivf_pq"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("m", self.m)
        check_positive("nbits", self.nbits)
        for option in ("opq", "fast_scan"):
            if not isinstance(getattr(self, option), bool):
                raise ValueError(
                    f"search.index.{option} must be true or false, got {getattr(self, option)!r}"
                )
        if self.fast_scan and self.nbits != 4:
            raise ValueError(
                f"search.index.fast_scan needs search.index.nbits=4 (faiss's fast scan is 4-bit), "
                f"got nbits={self.nbits}"
            )
        if self.refine is not None:
            check_positive("refine", self.refine)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "refine": self.refine}

    def factory(self, dim: int) -> str:
        if dim % self.m:
            raise ValueError(
                f"search.index.m={self.m} must divide the codes' dimension ({dim}): "
                "choose m among its divisors"
            )
        rotation = f"OPQ{self.m}," if self.opq else ""
        layout = "fsr" if self.fast_scan else ""
        return f"{rotation}IVF{self.nlist},PQ{self.m}x{self.nbits}{layout}"

    @property
    def gpu(self) -> bool:
        return not self.fast_scan

    def training_need(self) -> tuple[int, str]:
        centroids = 2**self.nbits
        return max(self.nlist, centroids), (
            f"nlist={self.nlist} lists and 2^nbits={centroids} centroids a sub-vector"
        )

    def build_params(self) -> dict[str, Any]:
        return {
            "nlist": self.nlist,
            "m": self.m,
            "nbits": self.nbits,
            "opq": self.opq,
            "fast_scan": self.fast_scan,
        }

    # faiss precomputes a table of nlist x m x 2^nbits floats that speeds up the search (64 MB at
    # nlist 1024, m 64) when it trains; it is a search structure (`faiss.read_index` makes it
    # again for a cached index), so a build leaves it out and the first search makes it
    def prepare(self, index: faiss.Index) -> None:
        faiss.downcast_index(faiss.extract_index_ivf(index)).use_precomputed_table = -1

    def tune(self, index: faiss.Index) -> None:
        super().tune(index)
        if is_gpu(index):  # faiss's GPU index keeps its own tables
            return
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if ivf.use_precomputed_table == -1:
            ivf.use_precomputed_table = 0
            ivf.precompute_table()

    # nlist x m x 2^nbits floats: 268 MB at nlist 4096, m 64, 8 bits, for a 73 MB index of 1M
    # codes; 16 MB for 4-bit fast-scan codes (faiss makes none above 2 GiB)
    def table_bytes(self, index: faiss.Index) -> int:
        if is_gpu(index):
            return 0
        return int(faiss.downcast_index(faiss.extract_index_ivf(index)).precomputed_table.nbytes())

"""Re-ranking a compressed index's shortlist by exact distances, the codes read from disk.

A product-quantised code ranks its neighbours by approximate distances: the true top few are
almost always in its top few hundred, but not in their exact order, and a positive can drop
below a distractor. faiss's `IndexRefineFlat` re-ranks with a second, flat index holding every
code as float32, which is the memory a compressed index exists to save; here only the
shortlisted rows are read, from codes on disk, so a search holds the compressed index plus the
pages of the shortlisted codes. faiss computes each distance straight from the listed row
(`fvec_L2sqr_by_idx`): about 4x the speed of copying the shortlists out and comparing them in
numpy (`benchmarks.search --refine-speed`).

The rows read are compressed codes: an evaluation's database is its stored codes with the
compressor applied as they are read (`CodeRows`), and applying it to every shortlisted row of
every query costs more than the distances. `compressed_codes` writes the compressed database once,
a chunk at a time, beside the code set (an artifact of `ncl.cache`, like the built index), and
the shortlists are read from that memory map.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ncl.cache import Artifact, digest
from ncl.search.build import DatabaseKey
from ncl.search.rows import CodeRows

CODES_FILE = "codes.npy"

# shortlisted code values held at once (64 MiB as float32), whatever the dimension
BATCH_VALUES = 1 << 24


def compressed_codes(database: CodeRows, key: DatabaseKey) -> np.ndarray:
    """The compressed database as one memory-mapped float32 array, made once a chunk at a time
    and kept beside the code set as `compressed-<digest>/codes.npy` (remade when the codes or
    the compressor change)."""
    inputs = {**key.inputs, "shape": list(database.shape)}
    artifact = Artifact(key.directory / f"compressed-{digest(inputs)}", inputs)

    def make(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp / CODES_FILE, "w+", np.float32, database.shape)
        start = 0
        for chunk in database.chunks():
            out[start : start + len(chunk)] = chunk
            start += len(chunk)
        out.flush()

    def read(path: Path) -> np.ndarray:
        codes = np.load(path / CODES_FILE, mmap_mode="r", allow_pickle=False)
        if codes.shape != database.shape:
            raise ValueError(f"{path / CODES_FILE}: shape {codes.shape}, not {database.shape}")
        return codes

    return artifact.load(make, read, "compressed codes")


def rows_to_read(database: np.ndarray | CodeRows, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 C-contiguous codes and, for each of `ids`, its row in them (-1 kept): the
    database itself when it already is such an array (a memory map is read in place), else
    only the rows listed, read once each."""
    if (
        isinstance(database, np.ndarray)
        and database.dtype == np.float32
        and database.flags.c_contiguous
    ):
        return database, ids
    found = ids >= 0
    rows = np.unique(ids[found])
    if isinstance(database, CodeRows):
        codes = database.take(rows)
    else:
        codes = np.asarray(database[rows], dtype=np.float32)
    return np.ascontiguousarray(codes, dtype=np.float32), np.where(
        found, np.searchsorted(rows, ids), -1
    )


def refined(
    database: np.ndarray | CodeRows,
    queries: np.ndarray,
    shortlist: np.ndarray,
    k: int,
    batch_values: int = BATCH_VALUES,
) -> np.ndarray:
    """Each query's `k` nearest rows among its `shortlist` (rows, -1 for none) by exact L2
    distance, best first (-1 where the shortlist had fewer). faiss computes the distances
    straight from the rows listed (`fvec_L2sqr_by_idx`), so no shortlist is copied out first."""
    n_queries, width = shortlist.shape
    dim = database.shape[1]
    if shortlist.size and shortlist.max() >= len(database):  # faiss would read past the codes
        raise ValueError(
            f"shortlist names row {shortlist.max()} of a database of {len(database)} codes"
        )
    out = np.full((n_queries, min(k, width)), -1, dtype=np.int64)
    step = max(1, batch_values // max(width * dim, 1))
    for start in range(0, n_queries, step):
        ids = np.ascontiguousarray(shortlist[start : start + step], dtype=np.int64)
        if not (ids >= 0).any():
            continue
        query = np.ascontiguousarray(queries[start : start + step], dtype=np.float32)
        codes, positions = rows_to_read(database, ids)
        distances = np.empty(ids.shape, dtype=np.float32)  # inf where the shortlist has -1
        faiss.fvec_L2sqr_by_idx(
            faiss.swig_ptr(distances),
            faiss.swig_ptr(query),
            faiss.swig_ptr(codes),
            faiss.swig_ptr(np.ascontiguousarray(positions, dtype=np.int64)),
            dim,
            len(ids),
            width,
        )
        order = np.argsort(distances, axis=1, kind="stable")[:, : out.shape[1]]
        best = np.take_along_axis(ids, order, axis=1)
        kept = np.isfinite(np.take_along_axis(distances, order, axis=1))
        out[start : start + step] = np.where(kept, best, -1)
    return out

"""Re-ranking a compressed index's shortlist by exact distances, the codes read from disk.

A product-quantised code ranks its neighbours by approximate distances: the true top few are
almost always in its top few hundred, but not in their exact order, and a positive can drop
below a distractor. faiss's `IndexRefineFlat` re-ranks with a second, flat index holding every
code as float32, which is the memory a compressed index exists to save; here only the
shortlisted rows are read, from codes on disk, so a search holds the compressed index plus one
batch of shortlisted codes.

The rows read are compressed codes: an evaluation's database is its stored codes with the
compressor applied as they are read (`CodeRows`), and applying it to every shortlisted row of
every query costs more than the distances. `compressed_codes` writes the compressed database once,
a chunk at a time, beside the code set (an artifact of `ncl.cache`, like the built index), and
the shortlists are read from that memory map.
"""

from __future__ import annotations

from pathlib import Path

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


def gather(database: np.ndarray | CodeRows, rows: np.ndarray) -> np.ndarray:
    """The codes of `rows` (sorted, unique) as float32, read from an array or `CodeRows`."""
    if isinstance(database, CodeRows):
        return database.take(rows)
    return np.asarray(database[rows], dtype=np.float32)


def refined(
    database: np.ndarray | CodeRows,
    queries: np.ndarray,
    shortlist: np.ndarray,
    k: int,
    batch_values: int = BATCH_VALUES,
) -> np.ndarray:
    """Each query's `k` nearest rows among its `shortlist` (rows, -1 for none) by exact L2
    distance, best first (-1 where the shortlist had fewer)."""
    n_queries, width = shortlist.shape
    dim = database.shape[1]
    out = np.full((n_queries, min(k, width)), -1, dtype=np.int64)
    step = max(1, batch_values // max(width * dim, 1))
    for start in range(0, n_queries, step):
        ids = shortlist[start : start + step]
        found = ids >= 0
        rows = np.unique(ids[found])
        if rows.size == 0:
            continue
        codes = gather(database, rows)[np.searchsorted(rows, np.where(found, ids, rows[0]))]
        codes -= np.asarray(queries[start : start + step], dtype=np.float32)[:, None, :]
        distances = np.einsum("qrd,qrd->qr", codes, codes)
        distances[~found] = np.inf
        order = np.argsort(distances, axis=1, kind="stable")[:, : out.shape[1]]
        best = np.take_along_axis(ids, order, axis=1)
        out[start : start + step] = np.where(np.take_along_axis(found, order, axis=1), best, -1)
    return out

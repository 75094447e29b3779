"""The two operations every re-ranker is made of, vectorised: the top-k database *images* of
each code (faiss, each image at its best code), and the weighted mean of a code and those
neighbours' codes."""

from __future__ import annotations

import numpy as np

from ncl.compress.base import l2_normalize
from ncl.search.flat import rank

# rows whose neighbours' codes are gathered at once: chunk x k x dim floats (4096 x 10 x 256: 40 MB)
CHUNK = 4096


def first_per_image(images: np.ndarray) -> np.ndarray:
    """A mask over ranked image ids (n x m): True where an image comes for the first time in its
    row (its best code), without a Python loop over the rows."""
    order = np.argsort(images, axis=1, kind="stable")
    ranked = np.take_along_axis(images, order, axis=1)
    first = np.ones_like(ranked, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    keep = np.empty_like(first)
    np.put_along_axis(keep, order, first, axis=1)
    return keep


def top_images(
    database: np.ndarray,
    owner: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    use_gpu: bool | None = None,
) -> np.ndarray:
    """For each query, the database code rows of its `k` nearest images, best first (n x k; -1
    where the database has fewer images). `owner` maps code rows to images: an image with
    several codes (turned copies) comes once, at its best code. `exclude`: an image per query
    left out (DBA: a code's own image, itself and its turned copies)."""
    copies = int(np.bincount(owner).max()) if len(owner) else 1
    need = (k + (exclude is not None)) * copies
    rows = rank(database, queries, need, use_gpu=use_gpu).ranks
    images = owner[rows]
    keep = first_per_image(images) if copies > 1 else np.ones(rows.shape, dtype=bool)
    if exclude is not None:
        keep &= images != exclude[:, None]
    take = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the first k kept, in rank order
    chosen = np.take_along_axis(rows, take, axis=1)
    found = np.take_along_axis(keep, take, axis=1)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    out[:, : chosen.shape[1]] = np.where(found, chosen, -1)
    return out


def weighted_mean(
    codes: np.ndarray, database: np.ndarray, neighbours: np.ndarray, alpha: float | None
) -> np.ndarray:
    """Each code plus its neighbours' database codes (rows of `neighbours`, -1: none), L2: the
    code's weight is 1, a neighbour's is max(sim, 0)^alpha (sim: the inner product with the code;
    alpha None or 0: weight 1, the plain mean)."""
    codes = np.asarray(codes, dtype=np.float32)
    out = np.empty_like(codes)
    for start in range(0, len(codes), CHUNK):
        end = start + CHUNK
        rows = neighbours[start:end]
        found = rows >= 0
        near = database[np.where(found, rows, 0)]  # chunk x k x dim
        if alpha:
            sims = np.einsum("cd,ckd->ck", codes[start:end], near)
            weights = np.maximum(sims, 0) ** np.float32(alpha) * found
        else:
            weights = found.astype(np.float32)
        out[start:end] = codes[start:end] + np.einsum("ck,ckd->cd", weights, near)
    return l2_normalize(out)

"""The two operations every re-ranker is made of, vectorised: the top-k database *images* of
each code (faiss, each image at its best code), and the weighted mean of a code and those
neighbours' codes. For DBA on a large database the database's own nearest codes can come from
an IVF (`ivf_self_rank`) instead of an exact search."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np

from ncl.compress.base import l2_normalize
from ncl.search.flat import rank

# rows whose neighbours' codes are gathered at once: chunk x k x dim floats (4096 x 10 x 256: 40 MB)
CHUNK = 4096
# IVF k-means trains on at most this many codes per list (faiss's own default is 256)
IVF_SAMPLE = 16


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


def codes_per_image(owner: np.ndarray) -> int:
    return int(np.bincount(owner).max()) if len(owner) else 1


def codes_of_images(owner: np.ndarray, images: int) -> np.ndarray:
    """Each image's code rows (images x codes per image, -1 padding): `owner` inverted."""
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=images)
    starts = np.cumsum(counts) - counts
    out = np.full((images, codes_per_image(owner)), -1, dtype=np.int64)
    out[owner[order], np.arange(len(owner)) - starts[owner[order]]] = order
    return out


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
    need = (k + (exclude is not None)) * codes_per_image(owner)
    rows = rank(database, queries, need, use_gpu=use_gpu).ranks
    return pick_images(rows, owner, k, exclude)


def pick_images(
    rows: np.ndarray, owner: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """From ranked code rows (n x m, best first, -1: none), the rows of the first `k` images,
    each at its first (best) code, `exclude[i]` left out of row i; -1 where fewer were found.
    Rows must reach (k + 1) x codes per image deep for the k images to be the true top k."""
    found = rows >= 0
    images = np.where(found, owner[np.where(found, rows, 0)], -1)
    keep = first_per_image(images) if codes_per_image(owner) > 1 else np.ones(rows.shape, bool)
    keep &= found
    if exclude is not None:
        keep &= images != exclude[:, None]
    take = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the first k kept, in rank order
    chosen = np.take_along_axis(rows, take, axis=1)
    kept = np.take_along_axis(keep, take, axis=1)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    out[:, : chosen.shape[1]] = np.where(kept, chosen, -1)
    return out


def ivf_self_rank(
    database: np.ndarray, depth: int, nlist: int, nprobe: int, seed: int = 0
) -> np.ndarray:
    """Each database code's `depth` nearest database codes (itself included), best first, found
    through an inverted file: k-means (faiss, `seed`, 10 iterations, on at most IVF_SAMPLE x
    `nlist` codes drawn with `seed`) cuts the database into `nlist` lists, each code goes to
    its nearest centroid's list and searches the lists of its `nprobe` nearest centroids
    (nprobe = nlist: every list, exact). n x depth rows, -1 where the lists probed hold fewer.

    This is faiss's `IndexIVFFlat` search, but scanned list by list: the codes that probe a list
    against that list's codes in one `faiss.knn` (a matrix product and a k-selection), which on
    a 100k-code database is several times faster than IndexIVFFlat.search one code at a time."""
    database = np.ascontiguousarray(database, dtype=np.float32)
    with one_thread():
        found, dists = scan_lists(database, depth, nlist, nprobe, seed)
    n = len(database)
    found, dists = found.reshape(n, -1), dists.reshape(n, -1)
    if dists.shape[1] > depth:
        best = np.argpartition(dists, depth - 1, axis=1)[:, :depth]
        found, dists = np.take_along_axis(found, best, 1), np.take_along_axis(dists, best, 1)
    order = np.lexsort((np.where(found < 0, n, found), dists))  # nearest first, ties by row
    return np.take_along_axis(found, order, axis=1).astype(np.int64)


def scan_lists(
    database: np.ndarray, depth: int, nlist: int, nprobe: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`ivf_self_rank`'s search: each code's `depth` nearest in each list it probes (rows
    code x nprobe + slot, -1 / inf where a list holds fewer)."""
    n, dim = database.shape
    sample = database
    if n > IVF_SAMPLE * nlist:
        rng = np.random.default_rng(seed)
        sample = database[np.sort(rng.choice(n, IVF_SAMPLE * nlist, replace=False))]
    kmeans = faiss.Kmeans(
        dim, nlist, niter=10, seed=seed, min_points_per_centroid=1, max_points_per_centroid=n
    )
    kmeans.train(sample)
    quantizer = faiss.IndexFlatL2(dim)
    quantizer.add(kmeans.centroids)
    _, probes = quantizer.search(database, nprobe)  # n x nprobe lists, the nearest first
    lists, ends = group(probes[:, 0], nlist)  # each list's codes
    probing, probe_ends = group(probes.ravel(), nlist)  # (code, slot) pairs, by list probed
    found = np.full((n * nprobe, depth), -1, dtype=np.int32)
    dists = np.full((n * nprobe, depth), np.inf, dtype=np.float32)
    for j in range(nlist):
        members = lists[ends[j] : ends[j + 1]]
        pairs = probing[probe_ends[j] : probe_ends[j + 1]]
        if not len(members) or not len(pairs):
            continue
        top = min(depth, len(members))
        # L2, as the exact search (IndexFlatL2), so that nprobe = nlist finds the same codes
        d, i = faiss.knn(database[pairs // nprobe], database[members], top)
        found[pairs, :top], dists[pairs, :top] = members[i], d
    return found, dists


@contextmanager
def one_thread() -> Iterator[None]:
    """faiss on one OpenMP thread: its many small products (one per list) gain little from
    threads, and on a busy machine the threads' waits cost more than they save (measured on the
    2 shared cores here: the 1,024 lists over 100k codes 5-12 s with 2 threads, about 3 s with
    1; k-means and the lists' assignment faster with 1 too)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def group(values: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions of `values` (ints in [0, groups)) sorted by value, and where each group
    ends: group g is `positions[ends[g] : ends[g + 1]]`."""
    positions = np.argsort(values, kind="stable")
    return positions, np.searchsorted(values[positions], np.arange(groups + 1))


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

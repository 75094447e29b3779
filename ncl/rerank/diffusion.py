"""Diffusion on a k-nearest-neighbour graph (Iscen et al., CVPR 2017, "Efficient diffusion on
region manifolds"), for global codes, arrays in, arrays out.

The database side, once: a graph over the database *images* whose edge I-J weighs
max(s, 0)^gamma (s: the inner product of their codes) when J is among I's k nearest images and I
among J's (mutual neighbours; an image with several codes is a neighbour through any of them, at
its best similarity). The query side: the query's seeds, its top images with weights
max(s, 0)^gamma, are spread over the graph by solving (I - alpha S) f = y with conjugate
gradients, S = D^-1/2 A D^-1/2 the symmetrically normalised affinity; images are ranked by f.
As in the paper the solve is *truncated*: it runs on the graph restricted to the query's
shortlist (its top images from the search), normalised there, so its cost follows the
shortlist's length and not the database's. The shortlists of many queries are solved as one
block-diagonal system (scipy's CG), a chunk of queries at a time, without a loop over queries.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import LinearOperator, cg
from threadpoolctl import threadpool_limits

# shortlisted images solved in one block-diagonal system (128 queries of 1,000): their rows of the
# graph are gathered at once (x k edges each: 6.4M entries for k = 50)
CHUNK = 1 << 17
# entries of the image -> shortlist position table of a chunk (queries x database images, int64)
TABLE = 1 << 24
# conjugate gradients stop at this relative residual, or after `iterations` steps
TOLERANCE = 1e-6


def mutual_graph(
    owner: np.ndarray, near: np.ndarray, sims: np.ndarray, gamma: float, images: int
) -> sparse.csr_array:
    """The images x images affinity: max(s, 0)^gamma between mutual neighbours, 0 elsewhere.

    `near` holds each code row's neighbour code rows (-1: none) and `sims` their inner products
    with it; `owner` maps code rows to images (< `images`). Symmetric, no self-loops (the
    neighbours are other images), float32."""
    found = near >= 0
    rows = np.broadcast_to(owner[:, None], near.shape)[found]
    cols = owner[near[found]]
    weights = np.maximum(sims[found], 0).astype(np.float32) ** np.float32(gamma)
    # an image that is a neighbour through several codes (turned copies) keeps its best weight
    keys = rows * images + cols
    order = np.lexsort((-weights, keys))
    keys, weights = keys[order], weights[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys, weights = keys[first], weights[first]
    directed = sparse.csr_array(
        (weights, (keys // images, keys % images)), shape=(images, images), dtype=np.float32
    )
    graph = directed.minimum(directed.T).tocsr()
    graph.eliminate_zeros()
    return graph


def diffuse(
    graph: sparse.csr_array,
    shortlist: np.ndarray,
    seeds: np.ndarray,
    alpha: float,
    iterations: int,
) -> np.ndarray:
    """f for every shortlisted image (queries x length): the solution of (I - alpha S) f = y on
    each query's shortlist, S the graph restricted to the shortlist's images (`shortlist`, image
    ids, -1: none) and normalised there, y the `seeds` weights (same shape, 0: not a seed).
    alpha = 0 gives f = y; alpha must be below 1 (then I - alpha S is positive definite).

    BLAS runs on one thread: CG's vector operations are ~1 MB each, too small for threads, and
    on the 2 shared cores here OpenBLAS's waiting threads made 1,000 shortlists of 1,000 four
    times slower (8.8 s against 2.2 s)."""
    queries, length = shortlist.shape
    out = np.zeros(shortlist.shape, dtype=np.float64)
    step = max(1, min(CHUNK // max(length, 1), TABLE // max(graph.shape[0], 1)))
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, queries, step):
            stop = min(start + step, queries)
            out[start:stop] = solve_block(
                graph, shortlist[start:stop], seeds[start:stop], alpha, iterations
            )
    return out


def solve_block(
    graph: sparse.csr_array,
    shortlist: np.ndarray,
    seeds: np.ndarray,
    alpha: float,
    iterations: int,
) -> np.ndarray:
    """`diffuse` for a chunk of queries: their restricted graphs as one block-diagonal system."""
    queries, length = shortlist.shape
    size = queries * length
    flat = shortlist.ravel()
    valid = flat >= 0
    # where each image sits in its query's shortlist (its row in the system), -1: not there
    slot = np.full((queries, graph.shape[0]), -1, dtype=np.int64)
    block = np.arange(size) // length
    slot[block[valid], flat[valid]] = np.flatnonzero(valid)
    # the graph's rows of every shortlisted image, then only the columns in the same shortlist
    rows = graph[np.where(valid, flat, 0)]
    r = np.repeat(np.arange(size), np.diff(rows.indptr))
    c = slot[block[r], rows.indices]
    hit = (c >= 0) & valid[r]
    r, c, w = r[hit], c[hit], rows.data[hit].astype(np.float64)
    degree = np.bincount(r, weights=w, minlength=size)
    scale = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0)
    # S = D^-1/2 A D^-1/2, its rows in order (r is sorted): CSR without a sort
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=size))])
    normalised = sparse.csr_array((w * scale[r] * scale[c], c, indptr), shape=(size, size))
    system = LinearOperator(
        (size, size), matvec=lambda f: f - alpha * (normalised @ f), dtype=np.float64
    )
    f, _ = cg(system, seeds.ravel().astype(np.float64), rtol=TOLERANCE, maxiter=iterations)
    return f.reshape(queries, length)

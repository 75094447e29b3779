"""Hard-negative mining (Radenović et al. 2016, cirtorch) and the sharding of its extraction.

Each epoch the candidate pool is described by the current network; a query's hard negatives are
its nearest pool images that are not of its class, at most one per class (so that n negatives
show n different things, not n views of one look-alike). The search is faiss's exact inner
product on L2-normalised descriptors, widened until every query has its n negatives.

The extraction is split between the processes of a DDP run: `shard` gives each rank every
`world`-th image (the list padded by repeats to a multiple of `world`, as a DistributedSampler
does), `unshard` puts the gathered pieces back in order. Every rank then holds the same codes and
mines the same tuples, and a distributed sampler hands each its own part of them.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np
from torch import Tensor

NO_NEGATIVE = -1


def hardest_negatives(
    queries: np.ndarray,
    pool: np.ndarray,
    query_classes: np.ndarray,
    pool_classes: np.ndarray,
    count: int,
) -> np.ndarray:
    """Q x `count` rows of `pool`: for each query (its descriptor in `queries`, L2-normalised
    like the pool's), the nearest pool images of other classes than its own, at most one per
    class, nearest first. Where fewer than `count` other classes exist, NO_NEGATIVE fills up."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(pool)
    found = np.full((len(queries), count), NO_NEGATIVE, dtype=np.int64)
    todo = np.arange(len(queries))
    depth = min(len(pool), 4 * count + 16)
    while len(todo):
        _, neighbours = index.search(queries[todo], depth)
        short = []
        for q, row in zip(todo, neighbours, strict=True):
            picked = _one_per_class(row, pool_classes, query_classes[q], count)
            found[q, : len(picked)] = picked
            if len(picked) < count and depth < len(pool):
                short.append(q)
        todo = np.asarray(short, dtype=np.int64)
        depth = min(len(pool), 4 * depth)
    return found


def _one_per_class(neighbours: np.ndarray, classes: np.ndarray, own: int, count: int) -> list[int]:
    """The first `count` of `neighbours` (nearest first) not of class `own`, one per class."""
    seen = {own}
    picked = []
    for i in neighbours:
        if i < 0 or classes[i] in seen:
            continue
        seen.add(classes[i])
        picked.append(int(i))
        if len(picked) == count:
            break
    return picked


def shard(indices: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank `rank`'s part of `indices`: every `world`-th, the list padded by repeating its start
    to a multiple of `world` so that every rank has as many (collectives need equal sizes)."""
    if len(indices) == 0:
        raise ValueError("nothing to shard: no images")
    padded = np.resize(np.asarray(indices), -(-len(indices) // world) * world)
    return padded[rank::world]


def unshard(gathered: Tensor, count: int) -> Tensor:
    """The rows of `gathered` (world x m x ..., rank r holding `shard(..., r, world)`) back in
    the order of the `count` indices that were sharded."""
    return gathered.transpose(0, 1).reshape(-1, *gathered.shape[2:])[:count]


def gather_shards(local: Tensor, count: int, all_gather: Callable[[Tensor], Tensor]) -> Tensor:
    """Every rank's `local` rows (its `shard`), gathered with `all_gather` (world x m x ...),
    in index order; with one process, `local` itself."""
    gathered = all_gather(local)
    if gathered.dim() == local.dim():  # one process: nothing was stacked
        return local[:count]
    return unshard(gathered, count)

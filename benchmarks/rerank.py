"""Re-ranking speed: ncl's alpha-QE and alpha-DBA (faiss, `ncl.rerank`) against a plain numpy
version (brute-force matrix product + argpartition) on the same codes, in the same run.

python -m benchmarks.rerank [--quick]

Codes are random but clustered (points scattered around 2,000 centres), L2-normalised, 100k x
256; 1,000 queries are perturbed database codes. alpha-QE: k = 2, alpha = 3, ranked 100 deep
(search, expand, search again). DBA: k = 10, alpha = 3 over the whole database (each code's 10
nearest other codes: a database x database product). The numpy DBA runs over the first
`--numpy-rows` codes only (a rate either way: the table says how many rows each method did).
IVF DBA (`--nlist`, each `--nprobe`): the same, its neighbours from an inverted file; its
accuracy against the exact DBA of the same run: the recall of the exact 10 neighbours (the mean
fraction of each code's exact neighbours it finds) and the max / mean difference of the
augmented codes. Diffusion (k = 10 mutual neighbours, 5 seeds, the search's top 1,000 re-ranked):
its graph assembled from the exact neighbours above and made whole with IVF neighbours, then the
query side timed against the plain search of the same depth (1,000), which it re-ranks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ncl.compress.base import l2_normalize
from ncl.rerank import AlphaQueryExpansion, DatabaseAugmentation, Diffusion, Reranking
from ncl.rerank.diffusion import mutual_graph
from ncl.rerank.neighbours import weighted_mean
from ncl.search.search import Search

BATCH = 1000  # rows per numpy matrix product


def clustered(n: int, d: int, centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, d), dtype=np.float32)
    x = means[rng.integers(centres, size=n)] + 0.7 * rng.standard_normal((n, d), dtype=np.float32)
    return l2_normalize(x)


def numpy_top(q: np.ndarray, x: np.ndarray, k: int, skip: np.ndarray | None = None) -> np.ndarray:
    """Top-k rows of x for each q, best first (skip: a row per query left out)."""
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), BATCH):
        sims = q[s : s + BATCH] @ x.T
        if skip is not None:
            sims[np.arange(len(sims)), skip[s : s + BATCH]] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[s : s + BATCH] = np.take_along_axis(part, order, axis=1)
    return out


def numpy_mean(q: np.ndarray, x: np.ndarray, near: np.ndarray, alpha: float) -> np.ndarray:
    sims = np.einsum("nd,nkd->nk", q, x[near])
    weights = np.maximum(sims, 0) ** alpha
    return l2_normalize(q + np.einsum("nk,nkd->nd", weights, x[near]))


def recall(exact: np.ndarray, found: np.ndarray) -> float:
    """The mean fraction of each row's exact neighbours (-1: none) that `found` holds too."""
    hits = (exact[:, :, None] == found[:, None, :]).any(axis=2) & (exact >= 0)
    return float(hits.sum() / max((exact >= 0).sum(), 1))


def timed(f, *args):
    start = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a 10x smaller database")
    parser.add_argument("--numpy-rows", type=int, default=5000, help="numpy DBA rows (a rate)")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF DBA: k-means lists")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16], help="IVF DBA rows")
    args = parser.parse_args()
    n, d = (10_000 if args.quick else 100_000), 256
    x = clustered(n, d, 2000, seed=0)
    rng = np.random.default_rng(1)
    q = l2_normalize(x[rng.integers(n, size=1000)] + 0.05 * rng.standard_normal((1000, d)))
    owner = np.arange(n)
    qe, dba = AlphaQueryExpansion(k=2, alpha=3.0), DatabaseAugmentation(k=10, alpha=3.0)

    ncl_qe, t_ncl_qe = timed(
        lambda: Reranking(qe=qe).rank(Search(gpu=False), x, owner, q, 100).ranks
    )

    def numpy_qe() -> np.ndarray:
        expanded = numpy_mean(q, x, numpy_top(q, x, qe.k), qe.alpha)
        return numpy_top(expanded, x, 100)

    np_qe, t_np_qe = timed(numpy_qe)
    agree_qe = np.mean(
        [len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(ncl_qe, np_qe, strict=True)]
    )

    def augment(dba: DatabaseAugmentation) -> tuple[np.ndarray, np.ndarray]:
        near = dba.neighbours(x, owner, use_gpu=False)
        return near, weighted_mean(x, x, near, dba.alpha)

    (exact_near, ncl_dba), t_ncl_dba = timed(augment, dba)
    rows = min(args.numpy_rows, n)
    sub = x[:rows]
    np_dba, t_np_dba = timed(
        lambda: numpy_mean(sub, x, numpy_top(sub, x, dba.k, skip=np.arange(rows)), dba.alpha)
    )
    diff = float(np.abs(np_dba - ncl_dba[:rows]).max())
    ivf = []
    for nprobe in args.nprobe:
        approx = DatabaseAugmentation(dba.k, dba.alpha, nlist=min(args.nlist, n), nprobe=nprobe)
        (near, codes), t = timed(augment, approx)
        gap = np.abs(codes - ncl_dba)
        ivf.append((approx, t, recall(exact_near, near), float(gap.max()), float(gap.mean())))

    diffusion = Diffusion(k=dba.k)
    sims = np.einsum("nd,nkd->nk", x, x[exact_near])
    graph, t_graph = timed(lambda: mutual_graph(owner, exact_near, sims, diffusion.gamma, n))
    ivf_diffusion = Diffusion(k=dba.k, nlist=min(args.nlist, n), nprobe=args.nprobe[0])
    ivf_graph, t_ivf_graph = timed(ivf_diffusion.compute, x, owner)
    plain, t_plain = timed(lambda: Search(gpu=False).rank(x, owner, q, diffusion.truncate).ranks)
    diffused, t_diffuse = timed(diffusion.rerank, graph, x, owner, q, plain)
    moved = float(np.mean(diffused[:, :10] != plain[:, :10]))

    print(f"{n:,} x {d} clustered codes, 1,000 queries")
    print("| step | ncl s (rows) | numpy s (rows) | numpy s scaled to all | speed-up | agreement |")
    print("|---|---|---|---|---|---|")
    print(
        f"| alpha-QE k=2 a=3, top 100 | {t_ncl_qe:.2f} (1,000) | {t_np_qe:.2f} (1,000) "
        f"| {t_np_qe:.2f} | {t_np_qe / t_ncl_qe:.1f}x | top-10 {agree_qe:.4f} |"
    )
    scaled = t_np_dba * n / rows
    print(
        f"| DBA k=10 a=3 | {t_ncl_dba:.2f} ({n:,}) | {t_np_dba:.2f} ({rows:,}) | {scaled:.1f} "
        f"| {scaled / t_ncl_dba:.1f}x | max diff {diff:.1e} |"
    )
    for approx, t, hit, most, mean in ivf:
        print(
            f"| DBA k=10 a=3, IVF nlist={approx.nlist} nprobe={approx.nprobe} | {t:.2f} ({n:,}) "
            f"| {t_np_dba:.2f} ({rows:,}) | {scaled:.1f} | {scaled / t:.1f}x "
            f"| recall@10 {hit:.4f}, vs exact max diff {most:.1e}, mean {mean:.1e} |"
        )
    print()
    print("| diffusion (k=10, 5 seeds, top 1,000) | seconds | against |")
    print("|---|---|---|")
    print(
        f"| graph from the exact neighbours (their search above not counted) | {t_graph:.2f} "
        f"| {graph.nnz:,} edge entries, {graph.nnz / n:.1f} per image |"
    )
    print(
        f"| graph whole, IVF nlist={ivf_diffusion.nlist} nprobe={ivf_diffusion.probes} "
        f"| {t_ivf_graph:.2f} | {(ivf_graph != graph).nnz:,} entries differ from the exact |"
    )
    print(f"| plain search, 1,000 queries x 1,000 deep | {t_plain:.2f} | 1.0x |")
    print(
        f"| diffusion of those lists (after the search) | {t_diffuse:.2f} "
        f"| {t_diffuse / t_plain:.1f}x the search; {1000 * t_diffuse / len(q):.1f} ms a query; "
        f"top-10 places changed {moved:.2f} |"
    )


if __name__ == "__main__":
    main()

"""Search speed and memory: faiss flat index vs a plain numpy argsort(q @ X.T), same data, same run.

python -m benchmarks.search [--quick]

Each method runs in a fresh process so its peak memory (max RSS above the process's RSS once the
data is in memory) is its own. The numpy baseline ranks queries in batches of 100 (its q @ X.T
for all 1,000 queries at 1M would not fit in memory with its argsort) and, where it is slow, over
fewer queries: queries/s is a rate either way and the table says how many queries each method ran.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np


def unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def faiss_search(db: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    from ncl.search.flat import rank

    return rank(db, q, k, use_gpu=False).ranks


def numpy_search(db: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    out = []
    for start in range(0, len(q), 100):
        out.append(np.argsort(-(q[start : start + 100] @ db.T), axis=1)[:, :k])
    return np.concatenate(out)


def child(method: str, n: int, d: int, nq: int, k: int, conn) -> None:
    db, q = unit_vectors(n, d, 0), unit_vectors(nq, d, 1)
    base = rss_mb()
    fn = faiss_search if method == "faiss" else numpy_search
    fn(db, q[:2], k)  # warm-up (thread pools, BLAS)
    t = time.perf_counter()
    ranks = fn(db, q, k)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send((nq / seconds, peak - base, ranks[:, :10]))


def run(method: str, n: int, d: int, nq: int, k: int):
    parent, child_conn = mp.Pipe()
    p = mp.get_context("fork").Process(target=child, args=(method, n, d, nq, k, child_conn))
    p.start()
    result = parent.recv()
    p.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10x smaller databases")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    cases = [(1_000_000 // scale, 128, 1000, 200), (100_000 // scale, 4096, 1000, 1000)]
    k = 100
    print(
        "| database | faiss q/s | numpy q/s (queries) | speed-up | faiss peak MB | numpy peak MB | top-10 agree |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, d, nq, nq_numpy in cases:
        f_qps, f_mem, f_top = run("faiss", n, d, nq, k)
        n_qps, n_mem, n_top = run("numpy", n, d, nq_numpy, k)
        agree = float(np.mean(f_top[:nq_numpy] == n_top))
        print(
            f"| {n:,} x {d} | {f_qps:,.0f} | {n_qps:,.0f} ({nq_numpy}) | {f_qps / n_qps:.1f}x | "
            f"{f_mem:,.0f} | {n_mem:,.0f} | {agree:.4f} |"
        )


if __name__ == "__main__":
    main()

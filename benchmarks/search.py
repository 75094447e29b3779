"""Search speed and memory: faiss flat index vs a plain numpy argsort(q @ X.T), same data, same run;
and the compressed index kinds of `search=` against flat at scale.

python -m benchmarks.search [--quick]
OMP_NUM_THREADS=1 python -m benchmarks.search --indexes [--n 1000000] [--nlist 4096] [--opq]

`--indexes`: N x 256 clustered unit codes (a mixture of 64 anisotropic Gaussians, not real codes)
written as a float16 code set and memory-mapped; for each index kind, in its own process: build
seconds (training on 50k separate codes included), index bytes against the raw float32 codes,
queries/s over 1,000 queries and 10-recall@100 against flat's exact top 10, in the same run; the
build's peak numpy heap (tracemalloc: the chunks, not the set) and its anonymous memory growth
(RssAnon: faiss's own allocations, the index) while streaming from the memory map.

Each method runs in a fresh process so its peak memory (max RSS above the process's RSS once the
data is in memory) is its own. The numpy baseline ranks queries in batches of 100 (its q @ X.T
for all 1,000 queries at 1M would not fit in memory with its argsort) and, where it is slow, over
fewer queries: queries/s is a rate either way and the table says how many queries each method ran.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

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
    parser.add_argument("--indexes", action="store_true", help="index kinds against flat")
    parser.add_argument("--n", type=int, default=1_000_000, help="codes (--indexes)")
    parser.add_argument("--nlist", type=int, default=4096, help="IVF lists (--indexes)")
    parser.add_argument("--opq", action="store_true", help="also ivf_pq with OPQ (slow to train)")
    args = parser.parse_args()
    if args.indexes:
        indexes(args.n, args.nlist, args.opq)
        return
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


def clustered_codes(n: int, d: int, seed: int, chunk: int = 1 << 16):
    """Unit codes from a fixed mixture of 64 anisotropic Gaussians (the same for every seed),
    a chunk at a time."""
    model = np.random.default_rng(12345)
    centres = np.abs(model.standard_normal((64, d))).astype(np.float32)
    scales = (0.5 * model.random((64, d)) ** 2).astype(np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        c = rng.integers(0, 64, m)
        x = centres[c] + scales[c] * rng.standard_normal((m, d), dtype=np.float32)
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def anon_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon")


def index_child(kind, codes_dir: str, train, queries, k: int, conn) -> None:
    import tracemalloc

    from ncl.codes.store import read_codes
    from ncl.compress.base import l2_normalize
    from ncl.search.build import index_bytes, make_index
    from ncl.search.flat import search_batches
    from ncl.search.rows import CodeRows

    codes = read_codes(codes_dir).codes  # float16, memory-mapped
    rows = CodeRows([codes], l2_normalize, codes.shape[1])
    base = anon_mb()
    tracemalloc.start()
    t = time.perf_counter()
    index = make_index(kind, rows, train)
    build = time.perf_counter() - t
    heap = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    grown = anon_mb() - base
    kind.tune(index)
    search_batches(index, queries[:10], k)  # warm-up
    t = time.perf_counter()
    ranks = search_batches(index, queries, k)
    qps = len(queries) / (time.perf_counter() - t)
    conn.send((build, index_bytes(index), qps, ranks, heap, grown))


def run_index(kind, codes_dir, train, queries, k):
    parent, child_conn = mp.Pipe()
    args = (kind, codes_dir, train, queries, k, child_conn)
    p = mp.get_context("fork").Process(target=index_child, args=args)
    p.start()
    result = parent.recv()
    p.join()
    return result


def indexes(n: int, nlist: int, opq: bool) -> None:
    import tempfile

    from ncl.codes.store import write_ids
    from ncl.search.index import HNSW, IVFPQ, Flat, IVFFlat

    d, k = 256, 100
    train = np.concatenate(list(clustered_codes(50_000, d, 1)))
    queries = np.concatenate(list(clustered_codes(1000, d, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "codes"
        folder.mkdir()
        out = np.lib.format.open_memmap(folder / "codes.npy", "w+", np.float16, (n, d))
        start = 0
        for block in clustered_codes(n, d, 0):
            out[start : start + len(block)] = block
            start += len(block)
        out.flush()
        del out
        write_ids(folder, [str(i) for i in range(n)])
        (folder / "meta.json").write_text(json.dumps({"count": n}))
        kinds = [
            Flat(),
            IVFFlat(nlist=nlist, nprobe=16),
            IVFPQ(nlist=nlist, nprobe=16, m=32),
            IVFPQ(nlist=nlist, nprobe=64, m=32),
            *([IVFPQ(nlist=nlist, nprobe=16, m=32, opq=True)] if opq else []),
            HNSW(m=32, ef_construction=40, ef_search=128),
        ]
        raw = n * d * 4
        print(f"{n:,} x {d} codes (float16 on disk, memory-mapped), 1,000 queries, k = {k}\n")
        print(
            "| index | build s | bytes | / raw | q/s | x flat q/s | 10-recall@100 "
            "| build heap MB | build anon MB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        exact = None
        flat_qps = 1.0
        for kind in kinds:
            build, size, qps, ranks, heap, grown = run_index(kind, str(folder), train, queries, k)
            if exact is None:
                exact, flat_qps = ranks[:, :10], qps
            recall = np.mean([len(set(e) & set(r)) / 10 for e, r in zip(exact, ranks, strict=True)])
            print(
                f"| {kind.name} {kind.params()} | {build:.1f} | {size / 2**20:,.1f} MB | "
                f"{size / raw:.3f} | {qps:,.0f} | {qps / flat_qps:.1f}x | {recall:.3f} | "
                f"{heap:,.0f} | {grown:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

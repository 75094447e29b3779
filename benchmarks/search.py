"""Search speed and memory: faiss flat index vs a plain numpy argsort(q @ X.T), same data, same run;
and the compressed index kinds of `search=` against flat at scale.

python -m benchmarks.search [--quick]
python -m benchmarks.search --refine-speed [--n 1000000]
OMP_NUM_THREADS=2 python -m benchmarks.search --indexes [--kinds ivf_flat,ivf_pq,hnsw] [--n 1000000]
    [--nlist 4096] [--nprobe 16,64] [--pq-m 32,64] [--pq-nbits 4,8] [--opq 32] [--hnsw-m 32]
    [--ef-construction 40] [--ef-search 128,256]

`--indexes`: N x 256 clustered unit codes (a mixture of 64 anisotropic Gaussians, not real codes)
written as a float16 code set and memory-mapped; each index built once, in its own process, then
searched with every search-time setting asked for (nprobe, efSearch: a sweep never rebuilds).
Per setting: build seconds (training on `--train` separate codes included), index bytes against
the raw float32 codes, queries/s over 1,000 queries and 10-recall@100 against flat's exact top
10, in the same run. Memory of the build while streaming from the memory map: its peak numpy heap
(tracemalloc: the chunks, not the set), its peak anonymous memory above the process's before the
build (RssAnon sampled every 20 ms: numpy's and faiss's allocations, not the page cache of the
memory map) against the index's bytes, and the anonymous memory still held after it (the index
in memory) and, once tuned for searching, IVF-PQ's precomputed tables (`table_bytes`).

`--refine-speed`: re-ranking shortlists of 200 / 400 / 800 rows for 1,000 queries by exact
distances read from a memory-mapped float32 code set (what `search.index.refine` does), ncl's
`refined` against the plain numpy way (gather the rows, subtract, square, sum), best of 3, same
shortlists, same run.

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
import threading
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


def ints(text: str) -> list[int]:
    """A comma-separated list of integers (a sweep over one built index)."""
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10x smaller databases")
    parser.add_argument("--indexes", action="store_true", help="index kinds against flat")
    parser.add_argument("--n", type=int, default=1_000_000, help="codes (--indexes)")
    parser.add_argument(
        "--kinds", default="ivf_flat,ivf_pq,hnsw", help="index kinds besides flat (--indexes)"
    )
    parser.add_argument("--train", type=int, default=50_000, help="training codes (--indexes)")
    parser.add_argument("--nlist", type=int, default=4096, help="IVF lists (--indexes)")
    parser.add_argument(
        "--nprobe", type=ints, default=[16, 64], help="IVF lists scanned, e.g. 16,64"
    )
    parser.add_argument("--pq-m", type=ints, default=[32, 64], help="PQ sub-vectors, e.g. 32,64")
    parser.add_argument(
        "--pq-nbits", type=ints, default=[8], help="PQ bits a sub-vector; 4 is fast scan, e.g. 4,8"
    )
    parser.add_argument(
        "--refine",
        type=ints,
        default=[],
        help="also ivf_pq re-ranking refine x k exactly, e.g. 2,4",
    )
    parser.add_argument("--opq", type=int, help="also ivf_pq with OPQ of this m (slow to train)")
    parser.add_argument("--hnsw-m", type=ints, default=[32], help="HNSW links per code")
    parser.add_argument("--ef-construction", type=int, default=40, help="HNSW build breadth")
    parser.add_argument("--repeats", type=int, default=1, help="searches timed, best of")
    parser.add_argument(
        "--refine-speed", action="store_true", help="re-ranking shortlists: ncl against numpy"
    )
    parser.add_argument("--ef-search", type=ints, default=[128, 256, 512], help="HNSW breadths")
    args = parser.parse_args()
    if args.indexes:
        indexes(args)
        return
    if args.refine_speed:
        refine_speed(args.n)
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


class PeakAnon:
    """The process's peak anonymous memory (RssAnon: numpy's and faiss's allocations, not the
    page cache of the memory-mapped codes) while the block runs, sampled every 20 ms by a
    thread (faiss releases the GIL)."""

    def __enter__(self) -> PeakAnon:
        self.peak = anon_mb()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, anon_mb())

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, anon_mb())


def write_clustered(path: Path, n: int, d: int, dtype: type) -> np.ndarray:
    """`n` clustered codes (seed 0) written a chunk at a time to `path`, memory-mapped back."""
    out = np.lib.format.open_memmap(path, "w+", dtype, (n, d))
    start = 0
    for block in clustered_codes(n, d, 0):
        out[start : start + len(block)] = block
        start += len(block)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def numpy_refined(database: np.ndarray, queries: np.ndarray, shortlist: np.ndarray, k: int):
    """The plain way to re-rank shortlists (no -1 in them): copy the rows out, compare in numpy."""
    out = []
    for start in range(0, len(queries), 100):
        ids = shortlist[start : start + 100]
        codes = np.asarray(database[ids.ravel()], dtype=np.float32).reshape(*ids.shape, -1)
        codes -= queries[start : start + 100, None, :]
        distances = np.einsum("qrd,qrd->qr", codes, codes)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        out.append(np.take_along_axis(ids, order, axis=1))
    return np.concatenate(out)


def refine_speed(n: int, d: int = 256, k: int = 100) -> None:
    import tempfile

    from ncl.search.refine import refined

    queries = np.concatenate(list(clustered_codes(1000, d, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        codes = write_clustered(Path(tmp) / "codes.npy", n, d, np.float32)
        print(f"{n:,} x {d} float32 codes, memory-mapped; 1,000 queries, k = {k}, best of 3\n")
        print("| shortlist rows | numpy q/s | ncl q/s | ncl / numpy | same top k |")
        print("|---|---|---|---|---|")
        rng = np.random.default_rng(0)
        for width in (200, 400, 800):
            shortlist = rng.integers(0, n, (len(queries), width))
            best = {"numpy": 0.0, "ncl": 0.0}
            found = {}
            for _ in range(3):  # interleaved: this machine's speed moves from run to run
                for name, method in (("numpy", numpy_refined), ("ncl", refined)):
                    t = time.perf_counter()
                    found[name] = method(codes, queries, shortlist, k)
                    best[name] = max(best[name], len(queries) / (time.perf_counter() - t))
            same = float(np.mean(found["numpy"] == found["ncl"]))
            print(
                f"| {width} | {best['numpy']:,.0f} | {best['ncl']:,.0f} | "
                f"{best['ncl'] / best['numpy']:.1f}x | {same:.4f} |",
                flush=True,
            )


def index_child(kinds, codes_dir: str, train, queries, k: int, repeats: int, conn) -> None:
    """Build the index of `kinds[0]` once from the memory-mapped codes, then search it with
    each kind's search-time settings (they share the build settings), best of `repeats`."""
    import tracemalloc

    from ncl.codes.store import read_codes
    from ncl.compress.base import l2_normalize
    from ncl.search.build import DatabaseKey, index_bytes, make_index
    from ncl.search.flat import search_batches
    from ncl.search.refine import compressed_codes, refined
    from ncl.search.rows import CodeRows

    codes = read_codes(codes_dir).codes  # float16, memory-mapped
    rows = CodeRows([codes], l2_normalize, codes.shape[1])
    base = anon_mb()
    tracemalloc.start()
    t = time.perf_counter()
    with PeakAnon() as peak:
        index = make_index(kinds[0], rows, train)
    build = time.perf_counter() - t
    heap = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    built = {
        "build": build,
        "bytes": index_bytes(index),
        "heap": heap,
        "peak": peak.peak - base,
        "after": anon_mb() - base,
    }
    searches = []
    # what a refining index re-ranks by, as `Search` does: the compressed database written once
    exact = (
        compressed_codes(rows, DatabaseKey(Path(codes_dir), {"codes": codes_dir}))
        if any(kind.refine is not None for kind in kinds)
        else rows
    )
    for kind in kinds:
        kind.tune(index)
        search_batches(index, queries[:10], k)  # warm-up
        best = 0.0
        for _ in range(repeats):  # best of: this machine's speed moves from run to run
            t = time.perf_counter()
            if kind.refine is None:
                ranks = search_batches(index, queries, k)
            else:  # as `Search` does: the shortlist re-ranked exactly, codes read from the map
                shortlist = search_batches(index, queries, k * kind.refine)
                ranks = refined(exact, queries, shortlist, k)
            best = max(best, len(queries) / (time.perf_counter() - t))
        searches.append((best, ranks, kind.table_bytes(index)))
    conn.send((built, searches))


def run_index(kinds, codes_dir, train, queries, k, repeats):
    parent, child_conn = mp.Pipe()
    args = (kinds, codes_dir, train, queries, k, repeats, child_conn)
    p = mp.get_context("fork").Process(target=index_child, args=args)
    p.start()
    result = parent.recv()
    p.join()
    return result


def index_builds(args: argparse.Namespace) -> list[list]:
    """The index kinds to measure, grouped by build: each group's kinds differ only in their
    search-time settings (nprobe, efSearch), so each group is built once."""
    from ncl.search.index import HNSW, IVFPQ, Flat, IVFFlat

    nprobes = args.nprobe
    builds: list[list] = [[Flat()]]  # the exact reference, always
    if "ivf_flat" in args.kinds:
        builds.append([IVFFlat(nlist=args.nlist, nprobe=p) for p in nprobes[:1]])
    if "ivf_pq" in args.kinds:
        for m in args.pq_m:
            for nbits in args.pq_nbits:
                builds.append(
                    [
                        IVFPQ(
                            nlist=args.nlist,
                            nprobe=p,
                            m=m,
                            nbits=nbits,
                            fast_scan=nbits == 4,
                            refine=r,
                        )
                        for p in nprobes
                        for r in [None, *args.refine]
                    ]
                )
        if args.opq:
            opq = [IVFPQ(nlist=args.nlist, nprobe=p, m=args.opq, opq=True) for p in nprobes]
            builds.append(opq)
    if "hnsw" in args.kinds:
        for m in args.hnsw_m:
            builds.append(
                [
                    HNSW(m=m, ef_construction=args.ef_construction, ef_search=ef)
                    for ef in args.ef_search
                ]
            )
    return builds


def indexes(args: argparse.Namespace) -> None:
    import tempfile

    from ncl.codes.store import write_ids

    n, d, k = args.n, 256, 100
    train = np.concatenate(list(clustered_codes(args.train, d, 1)))
    queries = np.concatenate(list(clustered_codes(1000, d, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "codes"
        folder.mkdir()
        write_clustered(folder / "codes.npy", n, d, np.float16)
        write_ids(folder, [str(i) for i in range(n)])
        (folder / "meta.json").write_text(json.dumps({"count": n}))
        raw = n * d * 4
        print(
            f"{n:,} x {d} codes (float16 on disk, memory-mapped), trained on {args.train:,} "
            f"separate codes, 1,000 queries, k = {k}\n"
        )
        print(
            "| index | build s | bytes | / raw | q/s | x flat q/s | 10-recall@100 "
            "| build heap MB | build peak anon MB | peak / bytes | anon after MB "
            "| search table MB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        exact = None
        flat_qps = 1.0
        for kinds in index_builds(args):
            built, searches = run_index(kinds, str(folder), train, queries, k, args.repeats)
            size = built["bytes"]
            for kind, (qps, ranks, table) in zip(kinds, searches, strict=True):
                if exact is None:
                    exact, flat_qps = ranks[:, :10], qps
                recall = np.mean(
                    [len(set(e) & set(r)) / 10 for e, r in zip(exact, ranks, strict=True)]
                )
                print(
                    f"| {kind.label()} | {built['build']:.1f} | "
                    f"{size / 2**20:,.1f} MB | {size / raw:.3f} | {qps:,.0f} | "
                    f"{qps / flat_qps:.1f}x | {recall:.3f} | {built['heap']:,.0f} | "
                    f"{built['peak']:,.0f} | {built['peak'] * 2**20 / size:.2f} | "
                    f"{built['after']:,.0f} | {table / 2**20:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Baseline costs: encoding throughput from cached descriptors, and faiss k-means against
scikit-learn's MiniBatchKMeans on the same data in the same run.

python -m benchmarks.baselines [--quick]

Descriptors are synthetic but SIFT-like: non-negative, integer-valued 0..255, norm about 512, and
clustered (drawn around a few thousand modes), stored in a real descriptor cache so encoding reads
them from disk as it would after `extract_local_features`. Throughput is for `encode_image_set`
end to end (read, encode, write the code set); the sparse coder, two orders of magnitude slower
on a CPU, runs over the first 200 images only (a rate either way). The k-means objective (sum of squared distances to
the nearest centroid) is computed the same way, by exact faiss search, for both libraries.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import sklearn
import torch
from sklearn.cluster import MiniBatchKMeans

from ncl.baselines.encode import encode_image_set, fit_bovw_idf
from ncl.baselines.encoders import BoVW, build_encoder
from ncl.baselines.vocabulary import kmeans, quantization_error, sample_descriptors
from ncl.features.descriptors import LocalFeatureCache, descriptor_file


def sift_like(n: int, rng: np.random.Generator, modes: np.ndarray) -> np.ndarray:
    """n uint8 descriptors scattered around `modes` (m x 128, SIFT-scaled)."""
    x = modes[rng.integers(len(modes), size=n)] + rng.normal(0, 12, size=(n, modes.shape[1]))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def sift_modes(m: int, rng: np.random.Generator) -> np.ndarray:
    """m sparse-ish non-negative 128-d histograms scaled to SIFT's norm of 512, capped at 255."""
    modes = rng.gamma(0.4, size=(m, 128))
    modes *= 512 / np.linalg.norm(modes, axis=1, keepdims=True)
    return np.minimum(modes, 255)


def synthetic_cache(root: Path, images: int, per_image: int, seed: int) -> LocalFeatureCache:
    rng = np.random.default_rng(seed)
    modes = sift_modes(2048, rng)
    names = tuple(f"img{i:05d}" for i in range(images))
    (root / "descriptors").mkdir(parents=True)
    for name in names:
        np.save(descriptor_file(root, name), sift_like(per_image, rng, modes))
    return LocalFeatureCache(
        root=root, names=names, failed={}, rootsift=False, max_keypoints=per_image, max_side=None
    )


def encoding_rows(root: Path, images: int, per_image: int, k: int) -> list[tuple[str, ...]]:
    rows = []
    cache = synthetic_cache(root / "cache", images, per_image, seed=0)
    for rootsift in (False, True):
        view = dataclasses.replace(cache, rootsift=rootsift)
        centroids = kmeans(sample_descriptors(view, 100_000, seed=0), k, niter=10, seed=0)
        for name, params, count in (
            ("vlad", {}, images),
            ("bovw", {}, images),
            ("sparse", {"device": "cpu"}, min(images, 200)),
        ):
            encoder = build_encoder(name, centroids, **params)
            subset = dataclasses.replace(view, names=view.names[:count])
            if isinstance(encoder, BoVW):
                fit_bovw_idf(encoder, subset)
            start = time.perf_counter()
            out = root / f"{name}-{rootsift}"
            encode_image_set(subset, encoder, out, {"benchmark": "synthetic"})
            seconds = time.perf_counter() - start
            features = "RootSIFT" if rootsift else "SIFT"
            rows.append(
                (
                    f"{name} k={k} ({features})",
                    f"{encoder.dim}",
                    f"{count} x {per_image}",
                    f"{seconds:.1f}",
                    f"{count / seconds:.1f}",
                )
            )
    return rows


def kmeans_rows(n: int, k: int, niter: int) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(1)
    x = sift_like(n, rng, sift_modes(4 * k, rng)).astype(np.float32)
    results = []

    start = time.perf_counter()
    centroids = kmeans(x, k, niter=niter, seed=0)
    results.append((f"faiss.Kmeans niter={niter}", time.perf_counter() - start, centroids))

    start = time.perf_counter()
    mbk = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=1, random_state=0).fit(x)
    results.append(
        (
            f"sklearn MiniBatchKMeans batch=4096 ({mbk.n_steps_} steps, {mbk.n_iter_} epochs)",
            time.perf_counter() - start,
            mbk.cluster_centers_.astype(np.float32),
        )
    )

    base_time, base_centroids = results[0][1], results[0][2]
    base_objective = quantization_error(x, base_centroids)
    rows = []
    for label, seconds, c in results:
        objective = quantization_error(x, c)
        rows.append(
            (
                label,
                f"{n:,} x 128, k={k}",
                f"{seconds:.1f}",
                f"{objective:.4e}",
                f"{seconds / base_time:.2f}",
                f"{objective / base_objective:.4f}",
            )
        )
    return rows


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run to check the script")
    args = parser.parse_args()
    images, per_image, n = (100, 500, 100_000) if args.quick else (1000, 1000, 1_000_000)

    print(
        f"load average {os.getloadavg()[0]:.1f}, CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
        f"faiss {faiss.__version__} (GPUs: {faiss.get_num_gpus()}), scikit-learn {sklearn.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        encoding = encoding_rows(Path(tmp), images, per_image, k=64)
    print("\nEncoding from cached descriptors (read + encode + write the code set)\n")
    table(("encoder", "dim", "images x descriptors", "seconds", "images/s"), encoding)
    print("\nk-means: time and objective (sum of squared distances), ratios to faiss\n")
    table(
        ("method", "data", "seconds", "objective", "time / faiss", "objective / faiss"),
        kmeans_rows(n, k=256, niter=20),
    )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Visual vocabularies: faiss k-means on a seeded sample of local descriptors.

The vocabulary is learnt on an image set separate from the benchmark (as the PCA of neural codes
is), and it is the costly fitted state of every encoder; so it is saved as
``<out_dir>/k<k>-<key>/{centroids.npy, meta.json}`` and reused whenever the same parameters and
the same image list (in the same order, which the sample depends on) are asked for again.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ncl.cache import Artifact, digest
from ncl.features.descriptors import LocalFeatureCache
from ncl.io.progress import progress_bar


@dataclass(frozen=True)
class Vocabulary:
    path: Path
    centroids: np.ndarray
    meta: dict[str, Any]

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def key(self) -> str:
        return str(self.meta["key"])


def load_vocabulary(path: str | Path) -> Vocabulary:
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    centroids = np.load(path / "centroids.npy", allow_pickle=False)
    return Vocabulary(path=path, centroids=centroids, meta=meta)


def sample_descriptors(cache: LocalFeatureCache, max_descriptors: int, seed: int) -> np.ndarray:
    """At most `max_descriptors` descriptors drawn uniformly without replacement from all of the
    cache's images (so images with many keypoints weigh more, as in the pooled set), seeded."""
    counts = np.array([cache.count(n) for n in cache.names], dtype=np.int64)
    total = int(counts.sum())
    if total <= max_descriptors:
        chosen = np.arange(total)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(total, max_descriptors, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    bounds = np.searchsorted(chosen, starts)
    parts = []
    with progress_bar("sampling descriptors", len(cache.names)) as advance:
        for i, name in enumerate(cache.names):
            rows = chosen[bounds[i] : bounds[i + 1]] - starts[i]
            if rows.size:
                parts.append(cache.descriptors(name)[rows])
            advance(1)
    if not parts:
        raise ValueError(f"{cache.root}: the {len(cache.names)} images have no descriptors")
    return np.concatenate(parts)


def kmeans(x: np.ndarray, k: int, *, niter: int, seed: int) -> np.ndarray:
    """k x d float32 centroids of `x` by faiss (on GPUs when faiss sees any), on *all* of `x`:
    faiss would otherwise subsample to 256 points per centroid behind the caller's back."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[0] < k:
        raise ValueError(f"cannot find {k} centroids among {x.shape[0]} descriptors")
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=niter,
        seed=seed,
        gpu=faiss.get_num_gpus() > 0,
        max_points_per_centroid=math.ceil(x.shape[0] / k),
        verbose=False,
    )
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32)


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared distance, index) of the nearest centroid of each row of `x`, by exact search."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    if x.shape[0] == 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    distances, labels = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return distances[:, 0], labels[:, 0]


def quantization_error(x: np.ndarray, centroids: np.ndarray) -> float:
    """The k-means objective: sum of squared distances to the nearest centroid."""
    return float(assign(x, centroids)[0].sum(dtype=np.float64))


def build_vocabulary(
    cache: LocalFeatureCache,
    k: int,
    out_dir: str | Path,
    *,
    max_descriptors: int = 1_000_000,
    niter: int = 20,
    seed: int = 0,
) -> Vocabulary:
    """The k-word vocabulary of `cache`'s images, loaded from `out_dir` when it was built before."""
    params = {
        "k": k,
        "niter": niter,
        "seed": seed,
        "max_descriptors": max_descriptors,
        **cache.config(),
        "images": len(cache.names),
        "image_list_sha1": hashlib.sha1("\n".join(cache.names).encode()).hexdigest(),
    }
    artifact = Artifact(Path(out_dir) / f"k{k}-{digest(params, 12)}", params)

    def make(tmp: Path) -> dict:
        sample = sample_descriptors(cache, max_descriptors, seed)
        centroids = kmeans(sample, k, niter=niter, seed=seed)
        np.save(tmp / "centroids.npy", centroids)
        return {
            **params,
            "descriptors_sampled": int(sample.shape[0]),
            "objective": quantization_error(sample, centroids),
            "faiss": faiss.__version__,
            "source": str(cache.root),
        }

    return artifact.load(make, load_vocabulary, "vocabulary")

"""Synthetic codes that follow a real code set's distribution: distractors at a scale no image
set here has (a million and more), to measure a search's speed and its loss at that scale.

The model is a Gaussian mixture in the real codes' principal subspace: the codes are centred and
projected on their first `rank` principal components, k-means (faiss) groups the projections
into `components` clusters, and each cluster is a Gaussian with its own mean and per-component
variance there; what the subspace leaves out is isotropic noise of the variance it holds. A
sample is drawn from a cluster chosen by its share of the codes, mapped back and L2-normalised,
as real codes are. Such codes are *not* images: results made with them say "synthetic".
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class CodeModel:
    """A fitted mixture: `mean` (dim), `basis` (rank x dim, orthonormal rows), per cluster its
    `weights`, `centres` and `scales` (standard deviations, clusters x rank) in the subspace,
    and `residual`, the standard deviation of each dimension outside it."""

    mean: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    centres: np.ndarray
    scales: np.ndarray
    residual: float

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` L2-normalised float32 codes drawn from the mixture."""
        cluster = rng.choice(len(self.weights), size=count, p=self.weights)
        z = rng.standard_normal((count, self.basis.shape[0]), dtype=np.float32)
        inside = self.centres[cluster] + z * self.scales[cluster]
        x = self.mean + inside @ self.basis
        x += self.residual * rng.standard_normal((count, self.dim), dtype=np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x


def fit_code_model(
    codes: np.ndarray, components: int = 32, rank: int = 64, seed: int = 0
) -> CodeModel:
    """The mixture of `components` Gaussians in the first `rank` principal components of
    `codes` (both capped by what the codes allow)."""
    x = np.asarray(codes, dtype=np.float32)
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"a code model needs at least 2 codes to fit, got {n}")
    mean = x.mean(axis=0)
    centred = x - mean
    _, values, vt = np.linalg.svd(centred, full_matrices=False)
    rank = min(rank, len(values), dim)
    basis = vt[:rank]
    variances = values**2 / n
    left_out = float(variances[rank:].sum()) / max(dim - rank, 1)
    y = centred @ basis.T
    k = max(1, min(components, n // 2))
    kmeans = faiss.Kmeans(rank, k, niter=20, seed=seed, min_points_per_centroid=1)
    kmeans.train(np.ascontiguousarray(y))
    _, labels = kmeans.index.search(np.ascontiguousarray(y), 1)
    labels = labels[:, 0]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    centres = np.zeros((k, rank), dtype=np.float32)
    scales = np.zeros((k, rank), dtype=np.float32)
    spread = y.std(axis=0)
    for c in range(k):
        members = y[labels == c]
        if len(members):
            centres[c] = members.mean(axis=0)
            # a cluster of one code borrows the overall spread rather than collapse to a point
            scales[c] = members.std(axis=0) if len(members) > 1 else spread
    return CodeModel(
        mean=mean,
        basis=basis.astype(np.float32),
        weights=counts / counts.sum(),
        centres=centres,
        scales=scales,
        residual=float(np.sqrt(left_out)),
    )

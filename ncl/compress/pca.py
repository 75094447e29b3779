"""PCA compression of neural codes (paper section 5).

faiss fits the PCA once per (fit set, tap) with as many components as any run may ask for; a
compressor to `d` dimensions uses the leading `d` of them. So a sweep over dimensions fits once
(`ncl.eval.compression` caches the basis beside the codes it came from).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ncl.atomic import save_npz_atomically
from ncl.compress.base import l2_normalize


class PCABasis:
    """Mean, components (rows, by decreasing variance) and their eigenvalues."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, eigenvalues: np.ndarray) -> None:
        self.mean = mean.astype(np.float32)
        self.components = components.astype(np.float32)
        self.eigenvalues = eigenvalues.astype(np.float32)

    @property
    def max_dim(self) -> int:
        return self.components.shape[0]

    @classmethod
    def fit(cls, codes: np.ndarray, max_components: int) -> PCABasis:
        """Fit on L2-normalised `codes` with faiss; keeps min(n - 1, D, max_components) components."""
        x = l2_normalize(codes)
        n, d = x.shape
        d_out = min(n - 1, d, max_components)
        if d_out < 1:
            raise ValueError(f"PCA needs at least 2 fit images, got {n}")
        pca = faiss.PCAMatrix(d, d_out)
        pca.train(np.ascontiguousarray(x))
        mean = faiss.vector_to_array(pca.mean)
        components = faiss.vector_to_array(pca.A).reshape(-1, d)[:d_out]
        # faiss keeps sums of squares; the variances along each component are these over n
        eigenvalues = faiss.vector_to_array(pca.eigenvalues)[:d_out] / n
        return cls(mean, components, eigenvalues)

    def save(self, path: Path) -> None:
        """Write atomically: a crash never leaves a basis that `load` would accept."""
        save_npz_atomically(
            path, mean=self.mean, components=self.components, eigenvalues=self.eigenvalues
        )

    @classmethod
    def load(cls, path: Path) -> PCABasis:
        with np.load(path) as f:
            return cls(f["mean"], f["components"], f["eigenvalues"])


class PCA:
    """L2-normalise, project on the leading `dim` components (optionally whitened), L2-normalise.

    Whitening divides component k by λ_k^(power/2) (λ floored at 1e-12): `power` 1 is full
    PCA-whitening, below 1 it is softened towards plain PCA (0), as in Radenović et al. 2018.
    """

    def __init__(self, basis: PCABasis, dim: int, whiten: bool = False, power: float = 1.0) -> None:
        if dim > basis.max_dim:
            raise ValueError(
                f"PCA to {dim} dims asked, but the fit set only supports {basis.max_dim} "
                "(at most one fewer than its number of images): use a larger fit set or fewer dims"
            )
        self.dim = dim
        self.mean = basis.mean
        projection = basis.components[:dim]
        self.info = {"whiten": whiten, "whiten_power": power} if whiten else {}
        if whiten:
            scale = np.maximum(basis.eigenvalues[:dim], 1e-12) ** (power / 2)
            projection = projection / scale[:, None]
        self.projection_t = np.ascontiguousarray(projection.T)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return l2_normalize((l2_normalize(codes) - self.mean) @ self.projection_t)

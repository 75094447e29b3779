"""Learned whitening Lw (Radenović et al., TPAMI 2018) from matching pairs, as a compressor.

On L2-normalised fit codes x and index pairs (i, j) of matching photos:

- m, the mean of the fit codes;
- C_S = mean over pairs of (x_i - x_j)(x_i - x_j)ᵀ, the covariance of matching-pair differences,
  and P = C_S^(-1/2) (symmetric), which makes it the identity;
- C_D = the scatter of the centred fit codes, and the eigenvectors V of P C_D Pᵀ (the scatter of
  the whitened codes) by decreasing eigenvalue;
- the projection Vᵀ P: subtract m, project, keep the leading `dim` rows, L2-normalise.

With fewer pairs than code dimensions C_S is singular; `shrinkage` s replaces it by
(1 - s) C_S + s (tr C_S / D) I, which keeps the directions the pairs never saw from dominating
(s = 0 is Lw as published).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ncl.compress.base import l2_normalize
from ncl.compress.pca import PCABasis

EIGEN_FLOOR = 1e-10  # relative to the largest eigenvalue of C_S: below it, a direction is null


def inverse_sqrt(c: np.ndarray) -> np.ndarray:
    """C^(-1/2) of a symmetric positive semi-definite matrix (null directions floored)."""
    values, vectors = np.linalg.eigh(c)
    values = np.maximum(values, EIGEN_FLOOR * max(float(values.max()), EIGEN_FLOOR))
    return (vectors / np.sqrt(values)) @ vectors.T


class LearnedWhitening:
    """`mean` (D) and `projection` (rows by decreasing whitened scatter `eigenvalues`, D x D)."""

    def __init__(
        self,
        mean: np.ndarray,
        projection: np.ndarray,
        eigenvalues: np.ndarray,
        dim: int | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.projection = np.asarray(projection, dtype=np.float32)
        self.eigenvalues = np.asarray(eigenvalues, dtype=np.float32)
        self.info = dict(info or {})
        self.dim = self.max_dim if dim is None else int(dim)
        if not 1 <= self.dim <= self.max_dim:
            raise ValueError(
                f"learned whitening to {self.dim} dims asked, but it has {self.max_dim} "
                "(the codes' dimension): ask for fewer dims"
            )
        self._projection_t = np.ascontiguousarray(self.projection[: self.dim].T)

    @property
    def max_dim(self) -> int:
        return self.projection.shape[0]

    @classmethod
    def fit(
        cls, codes: np.ndarray, a: np.ndarray, b: np.ndarray, shrinkage: float = 0.0
    ) -> LearnedWhitening:
        """Fit on `codes` (one row per image) and matching pairs `(a[k], b[k])` of row indices."""
        x = l2_normalize(codes).astype(np.float64)
        d = x.shape[1]
        diff = x[np.asarray(a)] - x[np.asarray(b)]
        c_s = diff.T @ diff / len(diff)
        if shrinkage:
            c_s = (1 - shrinkage) * c_s + shrinkage * np.trace(c_s) / d * np.eye(d)
        p = inverse_sqrt(c_s)
        mean = x.mean(axis=0)
        whitened = (x - mean) @ p.T
        values, vectors = np.linalg.eigh(whitened.T @ whitened / len(x))
        order = np.argsort(values)[::-1]
        return cls(mean, vectors[:, order].T @ p, values[order])

    def truncated(self, dim: int) -> LearnedWhitening:
        """The same whitening keeping the leading `dim` dimensions."""
        return LearnedWhitening(self.mean, self.projection, self.eigenvalues, dim, self.info)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return l2_normalize((l2_normalize(codes) - self.mean) @ self._projection_t)

    def save(self, path: Path) -> None:
        """Written as a PCA basis is (mean, rows, eigenvalues), atomically."""
        PCABasis(self.mean, self.projection, self.eigenvalues).save(path)

    @classmethod
    def load(cls, path: Path) -> LearnedWhitening:
        basis = PCABasis.load(path)
        return cls(basis.mean, basis.components, basis.eigenvalues)

"""The normalisations that fight burstiness in aggregated descriptors (seminar, appendix A).

A few visual words that fire very often in one image (repeated structures: windows, leaves) would
otherwise dominate the similarity of two images. Each function takes a batch, one image per row,
and keeps all-zero rows (an image without keypoints) at zero rather than dividing by zero. The
plain L2 normalisation is the one of every code, `ncl.compress.base.l2_normalize` (float32).
"""

from __future__ import annotations

import numpy as np

from ncl.compress.base import l2_normalize


def power_law(x: np.ndarray, alpha: float) -> np.ndarray:
    """Signed power law sign(x)|x|^alpha (alpha = 0.5: signed square root); alpha = 1 is identity."""
    if alpha == 1.0:
        return x
    return np.sign(x) * np.abs(x) ** alpha


def intra_normalize(x: np.ndarray, k: int) -> np.ndarray:
    """L2-normalise each of the `k` equal blocks of every row (one block per visual word), so
    every word present in an image contributes equally (Arandjelović & Zisserman, CVPR 2013)."""
    n, dim = x.shape
    if dim % k:
        raise ValueError(f"cannot split rows of {dim} components into {k} equal blocks")
    return l2_normalize(x.reshape(n * k, dim // k)).reshape(n, dim)

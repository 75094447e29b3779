"""Compressors map L2-normalised codes to shorter L2-normalised codes.

Every compressor is fitted on a *separate* image set (DESIGN.md, PCA compression) and applied the
same way to database and query codes, so evaluation treats them all alike.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length, as float32 (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


class Compressor(Protocol):
    """What `evaluate.py` applies to codes: `dim` outputs, unit-length rows."""

    dim: int

    def __call__(self, codes: np.ndarray) -> np.ndarray: ...


class NoCompression:
    """The codes as extracted, L2-normalised."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return l2_normalize(codes)

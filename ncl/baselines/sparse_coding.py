"""Batched lasso on torch: the embedding step of sparse-coded features (seminar 2.3).

For every row y of Y the solver returns r* = argmin_r ||y - D r||² + λ||r||₁ with D the dictionary
(d x k, atoms as columns). All rows share D, so the gradient of the whole batch is two matrix
products, which is what makes sparse-coding every descriptor of many images affordable (on a GPU
when one is there). FISTA (Beck & Teboulle, 2009) with step 1/L, L twice the largest eigenvalue
of DᵀD, converges as O(1/t²) and stops after `max_iter` iterations or once an iteration moves the
codes by less than `tol` relative to their norm.
"""

from __future__ import annotations

import math

import torch
from torch.nn.functional import softshrink

_CHECK_EVERY = 10  # iterations between convergence checks (each one is a device sync)


def lasso_objective(
    y: torch.Tensor, dictionary: torch.Tensor, r: torch.Tensor, lam: float
) -> torch.Tensor:
    """||y - D r||² + λ||r||₁ for each row (y: n x d, D: d x k, r: n x k)."""
    return ((y - r @ dictionary.T) ** 2).sum(dim=1) + lam * r.abs().sum(dim=1)


def lasso_fista(
    y: torch.Tensor,
    dictionary: torch.Tensor,
    lam: float,
    *,
    max_iter: int = 200,
    tol: float = 1e-4,
) -> torch.Tensor:
    """Sparse codes (n x k) of the rows of `y` (n x d) over `dictionary` (d x k), in their dtype."""
    gram = dictionary.T @ dictionary
    lipschitz = 2 * float(torch.linalg.eigvalsh(gram)[-1])
    if lipschitz == 0.0:
        return y.new_zeros(y.shape[0], dictionary.shape[1])
    step, threshold = 1.0 / lipschitz, lam / lipschitz
    # The gradient step z - step · 2(z DᵀD - y D) is z M + c: one fused matrix product per iteration.
    m = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) - (2 * step) * gram
    c = (2 * step) * (y @ dictionary)
    r = torch.zeros_like(c)
    z, t = r, 1.0
    for it in range(1, max_iter + 1):
        r_next = softshrink(torch.addmm(c, z, m), threshold)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        # Momentum z = r_next + (t - 1)/t_next · (r_next - r), as one lerp.
        z = torch.lerp(r_next, r, -(t - 1) / t_next)
        if it % _CHECK_EVERY == 0:
            moved = float(torch.linalg.vector_norm(r_next - r))
            if moved <= tol * max(float(torch.linalg.vector_norm(r_next)), 1e-30):
                return r_next
        r, t = r_next, t_next
    return r

"""A learned low-rank projection as a compressor (paper section 5, after Simonyan et al. 2013).

`ProjectionModule` (`ncl.projection.module`) learns W on pairs of matching photos; what
`evaluate.py` applies is this compressor: L2-normalise, optionally PCA to `pre_dim` first (the
paper projects 4096-d codes directly for 16 and 32 dims, but PCA-compresses them to 1024 first for
64 and 128, where W alone overfits), multiply by W, L2-normalise.

A projection is stored like a PCA basis, beside the code set it was learned on
(`<fit codes>/projection-d<dim>.npz`), so `compression=projection` finds it from the same
`fit_on` image set as `compression=pca`. The file holds W, the optional PCA pre-step and an `info`
record (pairs file, training run, final loss) that evaluation copies into its results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncl.atomic import save_npz_atomically
from ncl.compress.base import l2_normalize
from ncl.compress.pca import PCA, PCABasis


def projection_file(fit_codes: Path, dim: int) -> Path:
    """Where the projection to `dim` dims learned on the code set at `fit_codes` is kept."""
    return Path(fit_codes) / f"projection-d{dim}.npz"


def projection_inputs(codes: np.ndarray, pre: PCA | None) -> np.ndarray:
    """What W multiplies: L2-normalised codes, PCA-compressed when there is a pre-step."""
    return l2_normalize(codes) if pre is None else pre(codes)


@dataclass
class LearnedProjection:
    """`weight` (dim x input dim) applied after the optional PCA pre-step to `pre_dim`."""

    weight: np.ndarray
    pre_basis: PCABasis | None = None
    pre_dim: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        if (self.pre_basis is None) != (self.pre_dim is None):
            raise ValueError("a PCA pre-step needs both its basis and its dimension")
        self._pre = None if self.pre_basis is None else PCA(self.pre_basis, int(self.pre_dim))
        self._weight_t = np.ascontiguousarray(self.weight.T)

    @property
    def dim(self) -> int:
        return self.weight.shape[0]

    @property
    def input_dim(self) -> int:
        """The dimension of the codes it takes (before the PCA pre-step)."""
        return self.weight.shape[1] if self.pre_basis is None else self.pre_basis.mean.shape[0]

    def inputs(self, codes: np.ndarray) -> np.ndarray:
        return projection_inputs(codes, self._pre)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        if codes.shape[1] != self.input_dim:
            raise ValueError(
                f"the projection takes {self.input_dim}-d codes, got {codes.shape[1]}-d ones"
            )
        return l2_normalize(self.inputs(codes) @ self._weight_t)

    def save(self, path: Path) -> None:
        """Write atomically, so a crash never leaves a file that `load` would accept."""
        arrays: dict[str, Any] = {"weight": self.weight, "info": json.dumps(self.info)}
        if self.pre_basis is not None:
            arrays |= {
                "pre_dim": np.int64(self.pre_dim),
                "pre_mean": self.pre_basis.mean,
                "pre_components": self.pre_basis.components[: self.pre_dim],
                "pre_eigenvalues": self.pre_basis.eigenvalues[: self.pre_dim],
            }
        save_npz_atomically(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> LearnedProjection:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no learned projection; train one with `python train.py "
                "experiment=projection_demo module.dim=<dim>` (see docs/compression.md)"
            )
        with np.load(path) as f:
            pre = None
            if "pre_dim" in f:
                pre = PCABasis(f["pre_mean"], f["pre_components"], f["pre_eigenvalues"])
            return cls(
                weight=f["weight"],
                pre_basis=pre,
                pre_dim=int(f["pre_dim"]) if pre is not None else None,
                info=json.loads(str(f["info"])),
            )

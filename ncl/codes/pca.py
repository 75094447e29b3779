"""PCA bases of code sets, fitted once and kept beside the codes they were fitted on.

Compression (`ncl.eval.compression`) and the projection's PCA pre-step (`ncl.projection`) fit
their PCA on a code set; a sweep over dimensions, or a second run, reuses the one basis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ncl.cache import Artifact
from ncl.codes.store import CodeSet
from ncl.compress.pca import PCABasis


def fit_codes_inputs(codes: CodeSet) -> dict[str, Any]:
    """What stands in for a fit code set among an artifact's inputs: its path, key, file stamp
    and shape."""
    return {"codes": codes.identity, "shape": [len(codes), codes.dim]}


def cached_pca_basis(codes: CodeSet, max_components: int) -> PCABasis:
    """The PCA basis of a code set, fitted once and kept beside it (`pca-<k>/basis.npz`), an
    artifact of the cache made from the codes file and the number of components."""
    artifact = Artifact(
        codes.path / f"pca-{max_components}",
        {**fit_codes_inputs(codes), "max_components": max_components},
    )

    def fit(tmp: Path) -> None:
        PCABasis.fit(np.asarray(codes.codes), max_components).save(tmp / "basis.npz")

    return artifact.load(fit, lambda path: PCABasis.load(path / "basis.npz"), "PCA basis")

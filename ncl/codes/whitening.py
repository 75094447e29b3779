"""Learned whitenings (Lw) of code sets, fitted once per pairs file and kept beside the codes they
were fitted on, as PCA bases are (`ncl.codes.pca`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ncl.cache import Artifact, digest, file_stamp
from ncl.codes.pca import fit_codes_inputs
from ncl.codes.store import CodeSet
from ncl.compress.whitening import LearnedWhitening
from ncl.pairs import pairs_with_codes


def cached_learned_whitening(
    codes: CodeSet, pairs_file: str | Path, shrinkage: float
) -> LearnedWhitening:
    """The learned whitening of a code set from the matching pairs in `pairs_file`, an artifact of
    the cache (`lw-<digest of the pairs file's path and the settings>/whitening.npz`) made from the
    codes file, the pairs file and `shrinkage`: an unchanged fit is reused, a rewritten pairs
    file refits. Without shrinkage, C_S needs at least as many pairs as the codes have dims."""
    pairs_file = Path(pairs_file).resolve()
    settings = {"pairs_file": str(pairs_file), "shrinkage": shrinkage}
    artifact = Artifact(
        codes.path / f"lw-{digest(settings, 8)}",
        {**fit_codes_inputs(codes), "pairs": file_stamp(pairs_file), **settings},
    )

    def fit(tmp: Path) -> dict[str, int]:
        needed, why = 1, ""
        if not shrinkage:
            needed = codes.dim
            why = " (one per code dim without shrinkage; or set compression.shrinkage, e.g. 0.1)"
        kept = pairs_with_codes(pairs_file, codes.ids, codes.path, at_least=needed, why=why)
        pairs = np.asarray(kept)
        whitening = LearnedWhitening.fit(
            np.asarray(codes.codes), pairs[:, 0], pairs[:, 1], shrinkage
        )
        whitening.save(tmp / "whitening.npz")
        return {"pairs_used": len(pairs)}

    path = artifact.path
    whitening = artifact.load(
        fit, lambda p: LearnedWhitening.load(p / "whitening.npz"), "learned whitening"
    )
    meta = artifact.meta or {}
    whitening.info = {
        "pairs": str(pairs_file),
        "pairs_used": meta.get("pairs_used"),
        "shrinkage": shrinkage,
        "fit": str(path),
    }
    return whitening

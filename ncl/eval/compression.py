"""Compression as a stage of evaluation: which dimensions to evaluate, which separate image set
to fit on, and how a fitted compressor is made, cached or loaded (`conf/compression/*.yaml`).

The maths lives in `ncl.compress` (arrays in, arrays out); a stage adds what evaluation needs
around it. A new compression method is one class here with `compressor(fit, dim, full_dim)` and
one YAML file whose `_target_` names it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from ncl.cache import file_stamp
from ncl.codes.pca import cached_pca_basis
from ncl.codes.store import CodeSet
from ncl.codes.whitening import cached_learned_whitening
from ncl.compress.base import Compressor, NoCompression
from ncl.compress.pca import PCA
from ncl.compress.projection import LearnedProjection, projection_file
from ncl.data.images import ImageSet

SELF = "self"  # fit_on=self: fit on the benchmark's own database (flagged in the results)


def check_fraction(option: str, value: Any) -> None:
    """`compression.<option>` must be a number from 0 to 1."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and 0 <= value <= 1):
        raise ValueError(f"compression.{option} must be a number from 0 to 1, got {value!r}")


@dataclass(frozen=True)
class Compression:
    """No compression (`compression=none`): every row is the codes as extracted, L2-normalised.

    `dim`: one result row per value (None: the uncompressed reference row); `fit_on`: the
    separate image set to fit on, or "self" for the benchmark itself.
    """

    dim: Sequence[int | None] | int | None = (None,)
    fit_on: ImageSet | str | None = None
    method = "none"

    def __post_init__(self) -> None:
        dims = self.dim if isinstance(self.dim, Sequence) else [self.dim]
        for d in dims:
            if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
                raise ValueError(
                    f"compression.dim must be positive integers or null, got {list(dims)}"
                )
        if isinstance(self.fit_on, str) and self.fit_on != SELF:
            raise ValueError(
                f"compression.fit_on must be an image set or '{SELF}', got {self.fit_on!r}"
            )
        object.__setattr__(self, "dim", tuple(dims))

    @property
    def dims(self) -> tuple[int | None, ...]:
        return self.dim  # type: ignore[return-value]

    @property
    def fits(self) -> bool:
        """Whether any row needs a fitted compressor."""
        return self.method != "none" and any(d is not None for d in self.dims)

    @property
    def fit_on_benchmark(self) -> bool:
        return self.fit_on == SELF

    def record(self) -> Any:
        """What the compressor was fitted on, for the results: fitting on the benchmark is flagged."""
        if not self.fits or self.fit_on is None:
            return None
        if self.fit_on_benchmark:
            return "self (the benchmark itself)"
        assert isinstance(self.fit_on, ImageSet)
        return {"name": self.fit_on.name, "images": len(self.fit_on)}

    def compressor(self, fit: CodeSet | None, dim: int | None, full_dim: int) -> Compressor:
        return NoCompression(full_dim)

    def identity(self, fit: CodeSet | None, dim: int | None) -> dict[str, Any]:
        """What identifies the compressor of a row, as an input of artifacts made from the
        compressed codes (DBA's): its method, dim, settings and what it was fitted on."""
        if dim is None or not self.fits:
            return {"method": "none"}
        settings = {f.name: getattr(self, f.name) for f in fields(self)}
        settings.pop("fit_on")
        return {
            "method": self.method,
            **settings,
            "dim": dim,
            "fit": None if fit is None else fit.identity,
        }


@dataclass(frozen=True)
class PCACompression(Compression):
    """PCA fitted on a separate image set, L2 before and after (paper section 5); the basis is
    fitted once with `max_components` and cached beside the fit codes, truncated per dim.
    `whiten` divides each component by its standard deviation raised to `whiten_power` (β):
    1 whitens fully, β < 1 softens it (0 is plain PCA)."""

    whiten: bool = False
    whiten_power: float = 1.0
    max_components: int = 1024
    method = "pca"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.whiten, bool):
            raise ValueError(f"compression.whiten must be true or false, got {self.whiten!r}")
        check_fraction("whiten_power", self.whiten_power)
        if self.whiten_power != 1 and not self.whiten:
            raise ValueError(
                f"compression.whiten_power={self.whiten_power} needs compression.whiten=true"
            )
        m = self.max_components
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"compression.max_components must be a positive integer, got {m!r}")

    def compressor(self, fit: CodeSet | None, dim: int | None, full_dim: int) -> Compressor:
        if dim is None:
            return NoCompression(full_dim)
        assert fit is not None
        basis = cached_pca_basis(fit, self.max_components)
        return PCA(basis, dim, whiten=self.whiten, power=self.whiten_power)


@dataclass(frozen=True)
class ProjectionCompression(Compression):
    """The discriminative projection learned on matching pairs (paper section 5), found beside
    the codes of the image set it was learned on (`train.py experiment=projection_demo`)."""

    method = "projection"

    def compressor(self, fit: CodeSet | None, dim: int | None, full_dim: int) -> Compressor:
        if dim is None:
            return NoCompression(full_dim)
        assert fit is not None
        return LearnedProjection.load(projection_file(fit.path, dim))

    def identity(self, fit: CodeSet | None, dim: int | None) -> dict[str, Any]:
        found = super().identity(fit, dim)
        if dim is not None and fit is not None:
            found["projection"] = file_stamp(projection_file(fit.path, dim))
        return found


@dataclass(frozen=True)
class LearnedWhiteningCompression(Compression):
    """Learned whitening Lw (Radenović et al. 2018) from the matching pairs of the fit set
    (`pairs_file`, as `mine_pairs.py` writes it): fitted once per pairs file and cached beside the
    fit codes, truncated per dim by eigenvalue. `shrinkage` pulls the pair-difference covariance
    towards a multiple of the identity (0: as published; it then needs as many pairs as dims)."""

    pairs_file: str | None = None
    shrinkage: float = 0.0
    method = "lw"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pairs_file, str) or not self.pairs_file:
            raise ValueError(
                f"compression.pairs_file must name a pairs.tsv file, got {self.pairs_file!r}"
            )
        check_fraction("shrinkage", self.shrinkage)

    def compressor(self, fit: CodeSet | None, dim: int | None, full_dim: int) -> Compressor:
        if dim is None:
            return NoCompression(full_dim)
        assert fit is not None
        return cached_learned_whitening(fit, self.pairs_file, self.shrinkage).truncated(dim)

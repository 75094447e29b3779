"""Distractors: codes added to any benchmark's database (`conf/distractors/*.yaml`), never
positive, its queries and ground truth unchanged (Oxford105k and Paris106k are this with the
Flickr 100k images, R1M with the revisited sets).

- `ImageDistractors(images)`: any image set, its codes extracted once through the code store.
- `SyntheticDistractors(count, like)`: `count` codes drawn from a Gaussian mixture fitted to the
  codes of the image set `like` (`ncl.data.synthetic`; by default the benchmark's fit set),
  for measuring at a million images and beyond. They are a code set named `synthetic-...` in
  the store beside `like`'s, written a chunk at a time (constant memory) as an artifact of
  `ncl.cache`, and every result made with them is named synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ncl.cache import Artifact
from ncl.codes.source import CodeSource
from ncl.codes.store import (
    CODE_DTYPES,
    CodeSet,
    allocate_codes,
    code_set_meta,
    read_codes,
    write_ids,
)
from ncl.data.images import ImageSet
from ncl.data.synthetic import fit_code_model
from ncl.io.progress import progress_bar

# synthetic codes drawn at once (x dim float32 in memory)
SAMPLE_CHUNK = 1 << 15


class Distractors(Protocol):
    """Code sets added after the database, one per tap of a code source."""

    @property
    def name(self) -> str: ...

    def codes(self, source: CodeSource) -> dict[str, CodeSet]: ...

    def record(self) -> dict[str, Any]:
        """What the results say of them."""
        ...


@dataclass(frozen=True)
class ImageDistractors:
    """The codes of an image set (`images`: e.g. a folder of Flickr photos)."""

    images: ImageSet | None = None

    @property
    def name(self) -> str:
        return self.set.name

    @property
    def set(self) -> ImageSet:
        if self.images is None:
            raise ValueError("distractors.images must name an image set {name, root}")
        return self.images

    def codes(self, source: CodeSource) -> dict[str, CodeSet]:
        return source.codes(self.set)

    def record(self) -> dict[str, Any]:
        return {"kind": "images", "name": self.name, "images": len(self.set)}


@dataclass(frozen=True)
class SyntheticDistractors:
    """`count` synthetic codes per tap following the codes of `like` (`components` Gaussians
    in its `rank` principal components, drawn with `seed`), stored as `dtype`."""

    count: int = 100_000
    like: ImageSet | None = None
    components: int = 32
    rank: int = 64
    seed: int = 0
    dtype: str = "float16"

    def __post_init__(self) -> None:
        for option in ("count", "components", "rank"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"distractors.{option} must be a positive integer, got {value!r}")
        if self.dtype not in CODE_DTYPES:
            raise ValueError(f"distractors.dtype must be one of {CODE_DTYPES}, got {self.dtype!r}")

    @property
    def like_set(self) -> ImageSet:
        if self.like is None:
            raise ValueError(
                "distractors.like must name the image set whose codes the synthetic ones follow "
                "(default: the benchmark's fit_on)"
            )
        return self.like

    @property
    def name(self) -> str:
        return f"synthetic-{self.count}-like-{self.like_set.name}-s{self.seed}"

    def record(self) -> dict[str, Any]:
        return {
            "kind": "synthetic",
            "name": self.name,
            "codes": self.count,
            "like": self.like_set.name,
            "components": self.components,
            "rank": self.rank,
            "seed": self.seed,
        }

    def codes(self, source: CodeSource) -> dict[str, CodeSet]:
        return {tap: self.code_set(real) for tap, real in source.codes(self.like_set).items()}

    def code_set(self, real: CodeSet) -> CodeSet:
        """The synthetic code set following `real`, beside it in the store (made once)."""
        path = real.path.parent.parent / self.name / real.path.name
        inputs = {"like": real.identity, **self.record()}
        artifact = Artifact(path, inputs)
        return artifact.load(lambda tmp: self.write(real, tmp), read_codes, "synthetic distractors")

    def write(self, real: CodeSet, tmp: Path) -> dict[str, Any]:
        model = fit_code_model(np.asarray(real.codes), self.components, self.rank, self.seed)
        rng = np.random.default_rng(self.seed)
        out = allocate_codes(tmp, self.count, model.dim, self.dtype)
        with progress_bar(f"synthetic → {self.name}", self.count) as advance:
            for start in range(0, self.count, SAMPLE_CHUNK):
                n = min(SAMPLE_CHUNK, self.count - start)
                out[start : start + n] = model.sample(n, rng)
                advance(n)
        out.flush()
        del out
        ids = [f"synthetic{i:09d}" for i in range(self.count)]
        write_ids(tmp, ids)
        return code_set_meta(
            ids, model.dim, self.dtype, {"synthetic": True, "tap": real.meta.get("tap")}
        )

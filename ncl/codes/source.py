"""Code sources: where extraction and evaluation get the code sets of an image set from.

Both jobs need one thing of a descriptor, whatever it is: for an image set, one code set per tap
in the code store. A `CodeSource` gives exactly that, so a network's taps (`ncl.codes.neural`),
combinations of them (`ncl.codes.combine`) and the holistic baselines of `ncl.baselines` go
through the same compression, search and protocols.
"""

from __future__ import annotations

from typing import Protocol

from ncl.codes.store import CodeSet
from ncl.data.images import ImageSet


class CodeSource(Protocol):
    """Code sets of image sets, one per tap, computed once and then read from the code store."""

    @property
    def name(self) -> str:
        """The "model" of results and reports, and the code store's first directory level."""
        ...

    @property
    def taps(self) -> list[str]: ...

    def codes(self, images: ImageSet) -> dict[str, CodeSet]:
        """The code set of `images` for every tap, in the store, made where missing or stale."""
        ...

"""Combined layers (paper section 3): the sum or the concatenation of several taps' codes.

The paper reports that combining L5, L6 and L7 codes by sum or concatenation did worse than L6
alone; a combined tap lets anyone check that on their data. A tap name with `+` (`l6+l7`) is the
sum of the parts, one with `|` (`l5|l6|l7`) their concatenation; each part is L2-normalised first,
so that no layer dominates by its scale. Summed parts must have the same dimension.

A combined code set is derived from its parts once and kept in the code store under its own tap
name, an artifact of the cache made from its parts: when a part is extracted again, the
combination is remade. It is then a code set like any other: compression,
search and the fitted PCA bases treat it alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ncl.cache import file_stamp
from ncl.codes.source import CodeSource
from ncl.codes.store import CodeSet, CodeStore, read_codes, write_codes
from ncl.compress.base import l2_normalize
from ncl.data.images import ImageSet

SUM, CONCAT = "+", "|"


def tap_parts(tap: str) -> tuple[str, list[str]]:
    """(operator, parts) of a combined tap, or ("", [tap]) for a plain one."""
    ops = {op for op in (SUM, CONCAT) if op in tap}
    if not ops:
        return "", [tap]
    if len(ops) > 1:
        raise ValueError(f"tap {tap!r}: combine with either '+' (sum) or '|' (concatenation)")
    op = ops.pop()
    parts = re.split(re.escape(op), tap)
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"tap {tap!r}: every part of a combination needs a name")
    return op, parts


def rename_parts(tap: str, rename: Callable[[str], str]) -> str:
    """`tap` with every part renamed (`conv+l7` -> `conv-gem3+l7`), the operator kept."""
    op, parts = tap_parts(tap)
    return op.join(rename(p) for p in parts) if op else rename(tap)


def base_taps(taps: list[str]) -> list[str]:
    """The plain taps that `taps` need extracted, in first-use order."""
    return list(dict.fromkeys(part for tap in taps for part in tap_parts(tap)[1]))


def combine(tap: str, parts: list[CodeSet]) -> np.ndarray:
    """The combined codes of the images all `parts` share, in the first part's order."""
    op, names = tap_parts(tap)
    ids = parts[0].ids
    if len(parts) != len(names):
        raise ValueError(f"tap {tap!r}: {len(names)} parts named, {len(parts)} code sets given")
    for part in parts[1:]:
        if part.ids != ids:
            raise ValueError(
                f"tap {tap!r}: {part.path} lists other images than {parts[0].path}; "
                "extract the parts from the same image set"
            )
    blocks = [l2_normalize(np.asarray(p.codes)) for p in parts]
    if op == CONCAT:
        return np.concatenate(blocks, axis=1)
    dims = {b.shape[1] for b in blocks}
    if len(dims) > 1:
        shapes = ", ".join(f"{n}: {b.shape[1]}-d" for n, b in zip(names, blocks, strict=True))
        raise ValueError(f"tap {tap!r}: a sum needs parts of one dimension ({shapes})")
    return np.sum(blocks, axis=0)


@dataclass
class CombinedTaps:
    """A code source whose taps may be combinations of the taps of `source`."""

    source: CodeSource  # over the plain taps: base_taps(taps)
    taps: list[str]
    store: CodeStore

    @property
    def name(self) -> str:
        return self.source.name

    def codes(self, images: ImageSet) -> dict[str, CodeSet]:
        plain = self.source.codes(images)
        out = {}
        for tap in self.taps:
            op, names = tap_parts(tap)
            out[tap] = (
                plain[tap] if not op else self._combined(images, tap, [plain[n] for n in names])
            )
        return out

    def _combined(self, images: ImageSet, tap: str, parts: list[CodeSet]) -> CodeSet:
        # a part extracted again has another cache key and codes file: the combination follows
        inputs = {
            "parts": [
                [str(p.path), p.meta.get("key"), file_stamp(p.path / "codes.npy")] for p in parts
            ]
        }
        artifact = self.store.artifact(self.name, images.name, tap, inputs)
        with artifact.lock():
            if not artifact.is_current():
                meta = {"model": self.name, "tap": tap, "failed": parts[0].meta.get("failed", [])}
                write_codes(artifact.path, parts[0].ids, combine(tap, parts), meta, inputs)
        return read_codes(artifact.path)

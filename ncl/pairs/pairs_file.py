"""The pairs file: what pair mining hands to training.

One line per pair, tab-separated, no header:

    name_a <TAB> name_b <TAB> class <TAB> inliers

Names are image ids as `ncl.data.images.folder_image_set` gives them (the path below the image
set's root without extension), the ids codes are stored under; `class` is the first folder of
that path; `inliers` the evidence linking the two photos (see `ncl.pairs.graph`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ncl.atomic import write_text_atomically

log = logging.getLogger(__name__)
MINE_HINT = "python mine_pairs.py images.root=<the image set's folder>"

FIELDS = ("name_a", "name_b", "class", "inliers")


@dataclass(frozen=True)
class Pair:
    """Two photos of one class (`label`) that show the same thing, with the inlier count that
    links them."""

    a: str
    b: str
    label: str
    inliers: int

    def line(self) -> str:
        for value in (self.a, self.b, self.label):
            if not value or any(c in value for c in "\t\n\r"):
                raise ValueError(f"{value!r}: names and classes must be non-empty, without tabs")
        return f"{self.a}\t{self.b}\t{self.label}\t{self.inliers}\n"


def write_pairs(path: Path, pairs: Iterable[Pair]) -> None:
    """Write `pairs` to `path` atomically."""
    write_text_atomically(Path(path), "".join(p.line() for p in pairs))


def read_pairs(path: str | Path) -> list[Pair]:
    """The pairs in `path`; a malformed line raises ValueError naming the file and line."""
    path = Path(path)
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            fields = line.split("\t")
            problem = None
            if len(fields) != len(FIELDS):
                problem = f"expected {len(FIELDS)} tab-separated fields {FIELDS}, got {len(fields)}"
            elif not all(fields[:3]):
                problem = "empty image name or class"
            elif not (fields[3].isascii() and fields[3].isdigit()):
                problem = f"inliers must be a non-negative integer, got {fields[3]!r}"
            if problem:
                raise ValueError(f"{path}:{number}: malformed pair line {line!r}: {problem}")
            pairs.append(Pair(fields[0], fields[1], fields[2], int(fields[3])))
    return pairs


def pairs_with_codes(
    path: str | Path, ids: Sequence[str], codes: str | Path, *, at_least: int = 1, why: str = ""
) -> list[tuple[int, int]]:
    """The pairs of the pairs file `path` as row indices into a code set whose image ids are
    `ids` (at `codes`, for messages). Pairs naming an image without codes are left out, their
    count logged; fewer than `at_least` usable pairs is an error that says how to mine more
    (and `why` so many are needed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no pairs file; mine the pairs of the image set first ({MINE_HINT})"
        )
    pairs = read_pairs(path)
    row = {name: i for i, name in enumerate(ids)}
    kept = [(row[p.a], row[p.b]) for p in pairs if p.a in row and p.b in row]
    if len(kept) < len(pairs):
        log.warning(
            "%s: %d of %d pairs name images without codes in %s; they are left out",
            path,
            len(pairs) - len(kept),
            len(pairs),
            codes,
        )
    if len(kept) < at_least:
        raise ValueError(
            f"{path}: {len(kept)} pair(s) whose images have codes in {codes}, at least "
            f"{at_least} needed{why}; mine more ({MINE_HINT}, or a lower min_inliers)"
        )
    return kept

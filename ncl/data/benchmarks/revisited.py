"""Revisited Oxford and Paris (Radenović et al., CVPR 2018) from revisitop's `gnd_r*.pkl`.

The pickle holds `imlist` (database image names), `qimlist` (70 query image names, not in
`imlist`) and `gnd`: per query a dict with `bbx` (x1, y1, x2, y2) and `easy`, `hard`, `junk`,
0-based indices into `imlist`. Images are `<image_dir>/<name>.jpg` for both lists.

`read_revisited_gnd` needs the pickle alone, so ranked lists and pre-extracted codes can be scored
where no image is present; `read_revisited` adds the file paths without opening each image
(extraction reports missing files).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncl.data.benchmarks._files import list_jpegs, merge_distractors, require_dir, require_file
from ncl.data.benchmarks.base import (
    BBox,
    Benchmark,
    BenchmarkFormatError,
    Query,
    partial_record,
)
from ncl.protocols.official import RevisitedProtocol

MAX_GND_BYTES = 64 << 20


class _PlainUnpickler(pickle._Unpickler):
    """Loads only built-in containers and numbers, which is all revisitop's files hold: a
    ground-truth file from the internet then cannot run code when it is opened. It is the
    pure-Python unpickler, over bytes already in memory: its memo is a dict and its reads are
    bounded by the data, so a damaged length or memo index fails instead of allocating
    gigabytes (the C unpickler sizes its memo table by the largest index it is given)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: not a plain ground-truth file"
        )


@dataclass(frozen=True)
class RevisitedGroundTruth:
    """What the pickle defines: database names, query names, query boxes, and per query the
    indices into `imlist` of its easy, hard and junk images."""

    imlist: list[str]
    qimlist: list[str]
    bboxes: list[BBox]
    easy: list[list[int]]
    hard: list[list[int]]
    junk: list[list[int]]
    kappas: Sequence[int] = (1, 5, 10)

    @property
    def protocol(self) -> RevisitedProtocol:
        return RevisitedProtocol(self.easy, self.hard, self.junk, kappas=self.kappas)


def _names(path: Path, data: dict, key: str) -> list[str]:
    names = data.get(key)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BenchmarkFormatError(f"{path}: {key!r} must be a list of image names")
    if len(set(names)) != len(names):
        raise BenchmarkFormatError(f"{path}: {key!r} lists an image twice")
    return names


def _indices(path: Path, entry: dict, key: str, query: str, n_images: int) -> list[int]:
    values = entry.get(key)
    if not isinstance(values, Sequence) or not all(
        isinstance(v, int) and 0 <= v < n_images for v in values
    ):
        raise BenchmarkFormatError(
            f"{path}: gnd[{query!r}][{key!r}] must list indices into imlist (0..{n_images - 1})"
        )
    return list(values)


def _bbox(path: Path, entry: dict, query: str) -> BBox:
    box = entry.get("bbx")
    if (
        not isinstance(box, Sequence)
        or len(box) != 4
        or not all(isinstance(v, (int, float)) for v in box)
    ):
        raise BenchmarkFormatError(
            f"{path}: gnd[{query!r}]['bbx'] must be four numbers x1 y1 x2 y2"
        )
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y2)


def read_revisited_gnd(
    path: str | Path, *, kappas: Sequence[int] = (1, 5, 10)
) -> RevisitedGroundTruth:
    """Parse and check a `gnd_r{oxford5k,paris6k}.pkl`; no image is needed."""
    path = require_file(Path(path), "revisited ground truth (gnd_*.pkl)")
    size = path.stat().st_size
    if size > MAX_GND_BYTES:
        raise BenchmarkFormatError(
            f"{path}: {size} bytes, not a revisitop ground-truth pickle (those are a few MB)"
        )
    try:
        data = _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except MemoryError as e:
        raise BenchmarkFormatError(f"{path}: not a revisitop ground-truth pickle (damaged)") from e
    except Exception as e:  # any error of parsing untrusted bytes is a bad file, named
        raise BenchmarkFormatError(
            f"{path}: not a revisitop ground-truth pickle ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}: expected a dict with imlist, qimlist, gnd")
    imlist, qimlist = _names(path, data, "imlist"), _names(path, data, "qimlist")
    gnd = data.get("gnd")
    if (
        not isinstance(gnd, list)
        or len(gnd) != len(qimlist)
        or not all(isinstance(g, dict) for g in gnd)
    ):
        raise BenchmarkFormatError(
            f"{path}: 'gnd' must be a list of {len(qimlist)} dicts, one per query"
        )
    lists = {
        key: [_indices(path, g, key, q, len(imlist)) for g, q in zip(gnd, qimlist, strict=True)]
        for key in ("easy", "hard", "junk")
    }
    return RevisitedGroundTruth(
        imlist=imlist,
        qimlist=qimlist,
        bboxes=[_bbox(path, g, q) for g, q in zip(gnd, qimlist, strict=True)],
        easy=lists["easy"],
        hard=lists["hard"],
        junk=lists["junk"],
        kappas=kappas,
    )


def restrict_to_present(
    gt: RevisitedGroundTruth, present: Iterable[str]
) -> tuple[RevisitedGroundTruth, dict[str, str]]:
    """The ground truth of the images present only: `imlist` restricted (in its order), indices
    renumbered, a query whose image or every easy and hard positive is absent dropped (returned
    with why)."""
    present = set(present)
    kept_images = [n for n in gt.imlist if n in present]
    renumber = {gt.imlist.index(n): i for i, n in enumerate(kept_images)}
    lists: dict[str, list[list[int]]] = {"easy": [], "hard": [], "junk": []}
    qimlist, bboxes, dropped = [], [], {}
    for q, (query, box) in enumerate(zip(gt.qimlist, gt.bboxes, strict=True)):
        found = {key: [renumber[i] for i in getattr(gt, key)[q] if i in renumber] for key in lists}
        if query not in present:
            dropped[query] = f"query image {query!r} absent"
        elif not found["easy"] + found["hard"]:
            dropped[query] = f"none of its {len(gt.easy[q]) + len(gt.hard[q])} positives present"
        else:
            qimlist.append(query)
            bboxes.append(box)
            for key in lists:
                lists[key].append(found[key])
    restricted = RevisitedGroundTruth(kept_images, qimlist, bboxes, **lists, kappas=gt.kappas)
    return restricted, dropped


def read_revisited(
    root: str | Path,
    *,
    name: str = "roxford5k",
    gnd_file: str | Path | None = None,
    image_dir: str | Path = "jpg",
    distractor_dirs: Iterable[str | Path] = (),
    partial: bool = False,
) -> Benchmark:
    """A revisited benchmark under `root`: `gnd_file` (default `gnd_<name>.pkl`) and `image_dir`.

    The database is `imlist` in its order, followed by every JPEG under `distractor_dirs`
    (R1M, never positive). Only the folders and the pickle must exist; relative paths are
    under `root`. `partial`: only some of the images are present (`restrict_to_present`); the
    benchmark says so (`Benchmark.partial`) and its figures are not comparable with published
    ones.
    """
    if not isinstance(partial, bool):
        raise ValueError(f"benchmark.reader.partial must be true or false, got {partial!r}")
    root = Path(root)
    gt = read_revisited_gnd(root / (gnd_file or f"gnd_{name}.pkl"))
    images = require_dir(root / image_dir, "image")
    record = None
    if partial:
        present = list_jpegs(images, recursive=False)
        named = set(gt.imlist) | set(gt.qimlist)
        gt, dropped = restrict_to_present(gt, present)
        if not gt.qimlist:
            raise BenchmarkFormatError(
                f"{images}: no query of {name} has its image and a positive present; "
                "nothing to evaluate"
            )
        record = partial_record(name, named, present, len(gt.qimlist), dropped)
    database = merge_distractors({n: images / f"{n}.jpg" for n in gt.imlist}, root, distractor_dirs)
    queries = [
        Query(name=q, image=q, path=images / f"{q}.jpg", bbox=box)
        for q, box in zip(gt.qimlist, gt.bboxes, strict=True)
    ]
    return Benchmark(
        name=name,
        database=list(database),
        database_files=list(database.values()),
        queries=queries,
        protocol=gt.protocol,
        partial=record,
    )

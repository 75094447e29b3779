"""Oxford5k / Paris6k (Philbin et al. 2007, 2008) in their official layout, and the 105k/106k
variants with Flickr distractors.

The ground truth folder holds, per query, `<query>_{query,good,ok,junk}.txt` (e.g.
`all_souls_1_query.txt`). The query file has one line `oxc1_all_souls_000013 136.5 34.1 648.5
955.7`: image name (Oxford prefixes `oxc1_`, Paris does not) and the box x1 y1 x2 y2; the other
three list image names without extension. Positives are good + ok, junk is skipped while walking
the ranking, and the query image stays in the database.

The ground truth is read on its own (`read_oxford_gt`) so that ranked lists can be scored from
names without any image on disk (`ncl.eval.score`).

A benchmark of which only some images are present (e.g. `../shared/data/paris6k-278`) is read with
`partial=True`: the ground truth is restricted to the present images, and a query whose image or
every positive is absent is dropped (`restrict_to_present`). Its figures are not comparable with
published ones, and the benchmark says so (`Benchmark.partial`).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ncl.data.benchmarks._files import list_jpegs, merge_distractors, read_lines, require_dir
from ncl.data.benchmarks.base import (
    BBox,
    Benchmark,
    BenchmarkFormatError,
    Query,
    partial_record,
)
from ncl.protocols.official import APProtocol

GT_KINDS = ("good", "ok", "junk")
PARTIAL_HINT = "benchmark.reader.partial=true evaluates on the images present"


@dataclass(frozen=True)
class OxfordQueryTruth:
    """Ground truth of one query: `name` is the gt file prefix (`all_souls_1`), `image` the query
    image without prefix, `gt_dir` the folder its four files are in."""

    name: str
    image: str
    bbox: BBox
    good: tuple[str, ...]
    ok: tuple[str, ...]
    junk: tuple[str, ...]
    gt_dir: Path

    @property
    def positives(self) -> tuple[str, ...]:
        return self.good + self.ok

    def file(self, kind: str) -> Path:
        return self.gt_dir / f"{self.name}_{kind}.txt"


def _parse_query_line(path: Path, query_prefix: str) -> tuple[str, BBox]:
    lines = read_lines(path, "query file")
    fields = lines[0].split() if len(lines) == 1 else []
    if len(fields) != 5:
        raise BenchmarkFormatError(
            f"{path}: expected one line 'image x1 y1 x2 y2', got {len(lines)} line(s): {lines[:2]}"
        )
    try:
        x1, y1, x2, y2 = (float(v) for v in fields[1:])
    except ValueError as e:
        raise BenchmarkFormatError(f"{path}: bounding box is not four numbers: {fields[1:]}") from e
    image = fields[0]
    if query_prefix and image.startswith(query_prefix):
        image = image[len(query_prefix) :]
    return image, (x1, y1, x2, y2)


def read_oxford_gt(gt_dir: str | Path, *, query_prefix: str = "oxc1_") -> list[OxfordQueryTruth]:
    """Every query of an Oxford-style ground-truth folder, sorted by name.

    `query_prefix` is stripped from query image names where present (Oxford's `oxc1_`; Paris
    and generated benchmarks have none).
    """
    gt_dir = require_dir(Path(gt_dir), "ground truth")
    names = sorted(f.name[: -len("_query.txt")] for f in gt_dir.glob("*_query.txt"))
    if not names:
        raise BenchmarkFormatError(
            f"{gt_dir}: no <query>_query.txt files in the ground truth folder"
        )
    truths = []
    for name in names:
        query_file = gt_dir / f"{name}_query.txt"
        image, bbox = _parse_query_line(query_file, query_prefix)
        lists = {
            kind: tuple(read_lines(gt_dir / f"{name}_{kind}.txt", f"{kind} list of query {name!r}"))
            for kind in GT_KINDS
        }
        truths.append(OxfordQueryTruth(name=name, image=image, bbox=bbox, gt_dir=gt_dir, **lists))
    return truths


def oxford_protocol(truths: Iterable[OxfordQueryTruth], index: Mapping[str, int]) -> APProtocol:
    """The AP protocol over database indices `index` (image name -> position).

    A name in the ground truth that `index` lacks is an error naming its gt file: it means the
    images and the ground truth do not belong together.
    """
    positives, junk = [], []
    for t in truths:
        lists = {}
        for kind in GT_KINDS:
            missing = [n for n in getattr(t, kind) if n not in index]
            if missing:
                raise BenchmarkFormatError(
                    f"{t.file(kind)}: {len(missing)} image(s) not in the database, e.g. "
                    f"{missing[0]!r} ({PARTIAL_HINT})"
                )
            lists[kind] = [index[n] for n in getattr(t, kind)]
        positives.append(lists["good"] + lists["ok"])
        junk.append(lists["junk"])
    return APProtocol(positives, junk)


def restrict_to_present(
    truths: Iterable[OxfordQueryTruth], present: Container[str]
) -> tuple[list[OxfordQueryTruth], dict[str, str]]:
    """The ground truth restricted to the `present` images: good, ok and junk lists keep only
    present images; a query whose image is absent, or none of whose positives is present, is
    dropped. Returns the kept truths and, per dropped query, why."""
    kept, dropped = [], {}
    for t in truths:
        lists = {kind: tuple(n for n in getattr(t, kind) if n in present) for kind in GT_KINDS}
        if t.image not in present:
            dropped[t.name] = f"query image {t.image!r} absent"
        elif not lists["good"] + lists["ok"]:
            dropped[t.name] = f"none of its {len(t.positives)} positives present"
        else:
            kept.append(replace(t, **lists))
    return kept, dropped


def read_oxford(
    root: str | Path,
    *,
    name: str = "oxford5k",
    image_dir: str | Path = "jpg",
    gt_dir: str | Path = "gt",
    distractor_dirs: Iterable[str | Path] = (),
    query_prefix: str = "oxc1_",
    partial: bool = False,
) -> Benchmark:
    """An Oxford-layout benchmark under `root`: images in `image_dir`, ground truth in `gt_dir`.

    The database is every JPEG under `image_dir` (searched recursively: Paris's official tar
    keeps `paris/<landmark>/*.jpg`) sorted by name, followed by the JPEGs under each of
    `distractor_dirs` (Oxford105k / Paris106k: the Flickr 100k images). Queries are cropped by
    their box by the extractor; they stay in the database. Relative folders are under `root`.

    An image the ground truth names but `image_dir` lacks is an error naming it, unless `partial`:
    then the ground truth is restricted to the images present (`restrict_to_present`), the
    dropped queries are named in the log, and `Benchmark.partial` records what was kept.
    """
    if not isinstance(partial, bool):
        raise ValueError(f"benchmark.reader.partial must be true or false, got {partial!r}")
    root = Path(root)
    images = list_jpegs(require_dir(root / image_dir, "image"), recursive=True)
    truths = read_oxford_gt(root / gt_dir, query_prefix=query_prefix)
    record = None
    if partial:
        kept, dropped = restrict_to_present(truths, images)
        if not kept:
            raise BenchmarkFormatError(
                f"{root / image_dir}: no query of {root / gt_dir} has its image and a positive "
                "present; nothing to evaluate"
            )
        named = {n for t in truths for n in (t.image, *t.good, *t.ok, *t.junk)}
        record = partial_record(name, named, images, len(kept), dropped)
        truths = kept
    database = merge_distractors(images, root, distractor_dirs)
    index = {n: i for i, n in enumerate(database)}
    queries = []
    for t in truths:
        if t.image not in images:
            raise BenchmarkFormatError(
                f"{t.file('query')}: query image {t.image!r} not in {root / image_dir} "
                f"({PARTIAL_HINT})"
            )
        queries.append(Query(name=t.name, image=t.image, path=images[t.image], bbox=t.bbox))
    protocol = oxford_protocol(truths, {n: index[n] for n in images})
    return Benchmark(
        name=name,
        database=list(database),
        database_files=list(database.values()),
        queries=queries,
        protocol=protocol,
        partial=record,
    )

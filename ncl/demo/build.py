"""The demo written to disk in Oxford's layout, so the Oxford reader and protocol score it
unchanged, and kept as an artifact of `ncl.cache`, so it is built once and rebuilt only when
what it is made from changes.

Ground truth, as Oxford's. The query is view 0 of a test instance, a mild view whose box is the
instance's bounding box in it; it stays in the database and is listed in `good`, as Oxford lists
each query image among its positives (otherwise its own full image, ranked first, would count
as a false positive). `good`: the views where at least 60% of the instance is visible; `ok`:
25-60%; `junk`: less than 25%.

Layout: `root/jpg/*.jpg` (database), `root/gt/<instance>_1_{query,good,ok,junk}.txt`,
`root/train/<instance>/*.jpg` (ImageFolder), `root/demo.json` (the manifest: parameters,
sources, split rule, counts, instances) and the cache's `root/meta.json` (key and inputs: the
generator's version, the seed, the parameters and each source's file stamp). A changed input
rebuilds the demo in a staging folder that replaces `root` whole; concurrent builders of one
root build it once (the cache's lock), the later ones reuse it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ncl.cache import Artifact
from ncl.data.benchmarks.base import Benchmark
from ncl.data.benchmarks.oxford import read_oxford
from ncl.demo.params import DemoParams
from ncl.demo.regions import Region, Split, downscale, photo_regions, split_regions
from ncl.demo.render import View, render_view, view_rng
from ncl.demo.sources import Source, check_names, default_sources, load_sources, opencv_doc_dir

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MANIFEST = "demo.json"
# Visible fraction of the instance below which a view is `ok`, and below which it is `junk`.
GOOD_VISIBLE = 0.6
JUNK_VISIBLE = 0.25


@dataclass(frozen=True)
class DemoInfo:
    """What `build_demo` wrote, as recorded in `root/demo.json`."""

    root: Path
    seed: int
    params: DemoParams
    sources: tuple[str, ...]
    textures: tuple[str, ...]
    split: str
    counts: dict[str, int]
    version: int = GENERATOR_VERSION

    @classmethod
    def read(cls, root: Path) -> DemoInfo:
        meta = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        params = {k: v for k, v in meta["params"].items() if k != "sources"}
        return cls(
            root=root,
            seed=meta["seed"],
            params=DemoParams(**params),
            sources=tuple(meta["sources"]),
            textures=tuple(meta["textures"]),
            split=meta["split"],
            counts=meta["counts"],
            version=meta["version"],
        )


def relevance(visible: float) -> str:
    """Oxford's label for a view in which `visible` of the instance can be seen."""
    if visible >= GOOD_VISIBLE:
        return "good"
    return "ok" if visible >= JUNK_VISIBLE else "junk"


@dataclass(frozen=True)
class _Job:
    """A view to render: its image name, region, output file and whether it is a query."""

    name: str
    region: Region
    path: Path
    query: bool = False


def _jobs(split: Split, params: DemoParams, out: Path) -> Iterator[_Job]:
    for region in split.test:
        for k in range(params.test_views):
            name = f"{region.name}_v{k}"
            yield _Job(name, region, out / "jpg" / f"{name}.jpg", query=k == 0)
    for i in range(params.n_distractors):
        region = split.distractor[i % len(split.distractor)]
        name = f"{region.name}_v{i // len(split.distractor)}"
        yield _Job(name, region, out / "jpg" / f"{name}.jpg")
    for region in split.train:
        for k in range(params.train_views):
            name = f"{region.name}_v{k}"
            yield _Job(name, region, out / "train" / region.name / f"{name}.jpg")


def _render_all(
    jobs: Sequence[_Job],
    photos: dict[str, np.ndarray],
    textures: Sequence[np.ndarray],
    params: DemoParams,
    seed: int,
) -> dict[str, View]:
    """Render and write every job's view (threads: cv2 and numpy release the GIL); returns
    the views by name without their bytes, for the ground truth."""

    def run(job: _Job) -> tuple[str, View]:
        x0, y0, x1, y1 = job.region.box
        region = photos[job.region.source][y0:y1, x0:x1]
        view = render_view(
            region,
            textures,
            difficulty=params.difficulty,
            view_size=params.view_size,
            query=job.query,
            rng=view_rng(seed, job.name),
        )
        job.path.write_bytes(view.jpeg)
        return job.name, View(b"", view.box, view.visible)

    for folder in {job.path.parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(pool.map(run, jobs))


def _write_gt(gt_dir: Path, split: Split, views: dict[str, View], params: DemoParams) -> None:
    gt_dir.mkdir(parents=True, exist_ok=True)
    for region in split.test:
        query = f"{region.name}_v0"
        x1, y1, x2, y2 = views[query].box
        lists: dict[str, list[str]] = {"good": [query], "ok": [], "junk": []}
        for k in range(1, params.test_views):
            name = f"{region.name}_v{k}"
            lists[relevance(views[name].visible)].append(name)
        prefix = gt_dir / f"{region.name}_1"
        Path(f"{prefix}_query.txt").write_text(f"{query} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}\n")
        for kind, names in lists.items():
            Path(f"{prefix}_{kind}.txt").write_text("".join(f"{n}\n" for n in sorted(names)))


def _inputs(seed: int, params: DemoParams, sources: Sequence[Source]) -> dict[str, Any]:
    """What the built demo is a function of, the artifact's inputs: the generator's version, the
    seed, the parameters, and each source's name, role and file stamp, in order (the order of
    the textures decides which one a background is cut from)."""
    return {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "params": asdict(params),
        "sources": [[s.name, "texture" if s.texture else "photo", s.stamp()] for s in sources],
    }


def _generate(out: Path, *, seed: int, params: DemoParams, sources: Sequence[Source]) -> None:
    """Write the whole benchmark into the empty staging folder `out`."""
    start = time.perf_counter()
    photos, textures = load_sources(sources)
    photos = {name: downscale(image, params.max_side) for name, image in photos.items()}
    by_photo = {
        name: regions
        for name, image in photos.items()
        if (regions := photo_regions(name, image, params.tile))
    }
    split = split_regions(by_photo, params, seed)
    jobs = list(_jobs(split, params, out))
    grays = [
        cv2.cvtColor(t, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0 for t in textures.values()
    ]
    views = _render_all(jobs, photos, grays, params, seed)
    _write_gt(out / "gt", split, views, params)
    used = sorted({r.source for r in (*split.test, *split.distractor, *split.train)})
    counts = {
        "photos": len(by_photo),
        "regions": sum(map(len, by_photo.values())),
        "test_instances": len(split.test),
        "queries": len(split.test),
        "database_images": len(split.test) * params.test_views + params.n_distractors,
        "distractors": params.n_distractors,
        "distractor_regions": len(split.distractor),
        "train_instances": len(split.train),
        "train_images": len(split.train) * params.train_views,
    }
    instances = {
        role: {r.name: {"source": r.source, "box": list(r.box)} for r in regions}
        for role, regions in (
            ("test", split.test),
            ("distractor", split.distractor),
            ("train", split.train),
        )
    }
    manifest = {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "params": {**asdict(params), "sources": [s.name for s in sources]},
        "sources": used,
        "skipped_sources": sorted({s.name for s in sources} - set(photos) - set(textures)),
        "textures": sorted(textures),
        "split": split.rule,
        "counts": counts,
        "instances": instances,
    }
    (out / MANIFEST).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    log.info("demo: built %d views in %.1f s: %s", len(jobs), time.perf_counter() - start, counts)


def build_demo(
    root: str | Path,
    *,
    seed: int = 0,
    difficulty: float = 0.5,
    sources: Sequence[Source] | None = None,
    **params: Any,
) -> DemoInfo:
    """Generate the demo benchmark at `root`, or reuse the one there.

    `params` are the other fields of `DemoParams`. `sources` defaults to `default_sources`
    with opencv-doc's folder from `opencv_doc_dir()`. `root` is an artifact of `ncl.cache`:
    when its inputs (version, seed, parameters, sources and their files' stamps) are those
    recorded in `root/meta.json`, nothing is written; otherwise the demo is built in a staging
    folder beside `root` and renamed into place. A non-empty `root` without a `demo.json` is
    not ours to replace and raises `FileExistsError`.
    """
    root = Path(root)
    demo_params = DemoParams(difficulty=difficulty, **params)
    sources = default_sources(opencv_doc_dir()) if sources is None else tuple(sources)
    check_names(sources)
    if root.exists() and not (root / MANIFEST).is_file() and any(root.iterdir()):
        raise FileExistsError(
            f"{root}: not empty and not a demo benchmark (no {MANIFEST}); refusing to replace it"
        )
    make = partial(_generate, seed=seed, params=demo_params, sources=sources)
    Artifact(root, _inputs(seed, demo_params, sources)).get(make, "the demo benchmark")
    return DemoInfo.read(root)


def demo_benchmark(
    root: str | Path, *, seed: int = 0, difficulty: float = 0.5, **params: Any
) -> Benchmark:
    """The demo as a `Benchmark` (Oxford protocol), built first where needed: the reader the
    `benchmark=demo` config names."""
    info = build_demo(root, seed=seed, difficulty=difficulty, **params)
    return read_oxford(info.root, name="demo", query_prefix="")

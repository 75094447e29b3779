"""The embedded demo benchmark: counts, disjointness, the exact Oxford ground-truth format,
determinism, idempotent and atomic (re)builds through the artifact cache (a changed input
remakes it, an unchanged one reuses it, concurrent builders build it once), and that it works
without opencv-doc.

The ground truth is parsed here, not with `ncl.data.benchmarks.oxford`, so these tests pin the
on-disk format itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ncl import demo
from ncl.demo import build as demo_build
from ncl.demo.__main__ import main
from ncl.demo.sources import package_file
from ncl.io.decode import read_rgb

# A build small enough to make several per test run (about 50 views).
SMALL = {
    "n_test": 6,
    "test_views": 4,
    "n_distractors": 8,
    "train_views": 2,
    "min_train": 4,
    "max_train": 8,
}
NAME = re.compile(r"[a-z0-9_]+")
GT_FILE = re.compile(r"([a-z0-9_]+)_1_(query|good|ok|junk)\.txt")


def _package_only() -> tuple[demo.Source, ...]:
    return demo.default_sources(None)


def _parse_gt(root: Path) -> dict[str, dict]:
    """Instance -> {query, box, good, ok, junk}, read as Oxford's files are: one query line
    `image x1 y1 x2 y2`, and lists of image names without extension."""
    files: dict[str, dict[str, Path]] = {}
    for path in (root / "gt").iterdir():
        match = GT_FILE.fullmatch(path.name)
        assert match, f"unexpected gt file {path.name}"
        files.setdefault(match[1], {})[match[2]] = path
    gt = {}
    for instance, kinds in files.items():
        assert set(kinds) == {"query", "good", "ok", "junk"}, instance
        lines = kinds["query"].read_text().splitlines()
        assert len(lines) == 1, kinds["query"]
        fields = lines[0].split(" ")
        assert len(fields) == 5, lines[0]
        entry = {"query": fields[0], "box": tuple(float(v) for v in fields[1:])}
        for kind in ("good", "ok", "junk"):
            text = kinds[kind].read_text()
            assert text == "" or text.endswith("\n"), kinds[kind]
            entry[kind] = text.split()
        gt[instance] = entry
    return gt


def _manifest(root: Path) -> dict:
    return json.loads((root / "demo.json").read_text())


def _siblings(root: Path) -> list[str]:
    """What lies beside the demo, less the cache's lock file: no staging or old folder is left."""
    return sorted(p.name for p in root.parent.iterdir() if not p.name.endswith(".lock"))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoInfo:
    """The default demo as a fresh machine without opencv-doc builds it (disabled by the
    environment variable, the switch a user has)."""
    root = tmp_path_factory.mktemp("full") / "demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(demo.OPENCV_DIR_ENV, "")
        return demo.build_demo(root, seed=0)


def test_counts_hold_without_opencv_doc(full: demo.DemoInfo) -> None:
    meta = _manifest(full.root)
    assert not [s for s in meta["sources"] if s.startswith("ocv_")]
    assert full.split == "photo"
    counts = full.counts
    assert counts["queries"] == counts["test_instances"] >= 40
    database = sorted((full.root / "jpg").iterdir())
    assert len(database) == counts["database_images"] >= 300
    assert counts["distractors"] > 0
    assert counts["train_instances"] >= 24
    classes = sorted((full.root / "train").iterdir())
    assert [c.name for c in classes] == sorted(meta["instances"]["train"])
    assert all(len(list(c.glob("*.jpg"))) == full.params.train_views >= 6 for c in classes)
    assert counts["train_images"] == sum(len(list(c.glob("*.jpg"))) for c in classes)


def test_no_content_shared_between_test_train_and_distractors(full: demo.DemoInfo) -> None:
    instances = _manifest(full.root)["instances"]
    roles = {role: set(regions) for role, regions in instances.items()}
    assert not roles["test"] & roles["train"]
    assert not roles["test"] & roles["distractor"]
    assert not roles["distractor"] & roles["train"]
    # no two regions of one photo overlap, whatever their roles
    boxes: dict[str, list[tuple[int, ...]]] = {}
    for regions in instances.values():
        for region in regions.values():
            boxes.setdefault(region["source"], []).append(tuple(region["box"]))
    for source, source_boxes in boxes.items():
        for i, (ax0, ay0, ax1, ay1) in enumerate(source_boxes):
            for bx0, by0, bx1, by1 in source_boxes[i + 1 :]:
                overlap = min(ax1, bx1) > max(ax0, bx0) and min(ay1, by1) > max(ay0, by0)
                assert not overlap, source
    # split by photo: no photo gives both test and train instances
    test_photos = {r["source"] for r in instances["test"].values()}
    assert not test_photos & {r["source"] for r in instances["train"].values()}


def test_ground_truth_is_in_the_oxford_format(full: demo.DemoInfo) -> None:
    gt = _parse_gt(full.root)
    database = {p.stem for p in (full.root / "jpg").glob("*.jpg")}
    assert len(gt) == full.counts["queries"]
    for instance, entry in gt.items():
        assert NAME.fullmatch(instance) and instance in _manifest(full.root)["instances"]["test"]
        assert entry["query"] in database and entry["query"] in entry["good"]
        listed = entry["good"] + entry["ok"] + entry["junk"]
        assert len(listed) == len(set(listed)) == full.params.test_views
        assert set(listed) <= database
        assert all(name.startswith(f"{instance}_") for name in listed)
        height, width = cv2.imread(str(full.root / "jpg" / f"{entry['query']}.jpg")).shape[:2]
        x1, y1, x2, y2 = entry["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert (x2 - x1) * (y2 - y1) > 0.2 * width * height  # the instance, not a speck


def test_distractors_match_no_query(full: demo.DemoInfo) -> None:
    gt = _parse_gt(full.root)
    listed = {n for e in gt.values() for kind in ("good", "ok", "junk") for n in e[kind]}
    database = {p.stem for p in (full.root / "jpg").glob("*.jpg")}
    distractors = database - listed
    assert len(distractors) == full.counts["distractors"]
    regions = set(_manifest(full.root)["instances"]["distractor"])
    assert {name.rsplit("_v", 1)[0] for name in distractors} <= regions
    assert all(NAME.fullmatch(name) for name in database)


def test_views_are_colour_images_of_the_view_size(full: demo.DemoInfo) -> None:
    for path in sorted((full.root / "jpg").glob("*.jpg"))[::40]:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 3 and image.shape[2] == 3
        assert max(image.shape[:2]) == full.params.view_size


def test_same_seed_same_files_other_seed_other_images(tmp_path: Path) -> None:
    a = demo.build_demo(tmp_path / "a", seed=3, sources=_package_only(), **SMALL)
    b = demo.build_demo(tmp_path / "b", seed=3, sources=_package_only(), **SMALL)
    c = demo.build_demo(tmp_path / "c", seed=4, sources=_package_only(), **SMALL)
    files_a, files_b, files_c = _files(a.root), _files(b.root), _files(c.root)
    assert files_a == files_b
    images = [name for name in files_a if name.endswith(".jpg")]
    assert len(images) == 6 * 4 + 8 + a.counts["train_images"]
    shared = [name for name in images if name in files_c]
    assert any(files_a[name] != files_c[name] for name in shared)
    assert _parse_gt(a.root) == _parse_gt(b.root)


def test_rebuild_is_skipped_when_nothing_changed(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    first = demo.build_demo(root, seed=0, sources=_package_only(), **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = demo.build_demo(root, seed=0, sources=_package_only(), **SMALL)
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps
    assert _siblings(root) == ["demo"]


def test_failed_rebuild_keeps_the_old_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "demo"
    demo.build_demo(root, seed=0, sources=_package_only(), **SMALL)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as mp:
        mp.setattr(demo_build, "_write_gt", crash)
        with pytest.raises(RuntimeError, match="disk full"):
            demo.build_demo(root, seed=1, sources=_package_only(), **SMALL)
    assert _manifest(root)["seed"] == 0
    assert _siblings(root) == ["demo"]

    rebuilt = demo.build_demo(root, seed=1, sources=_package_only(), **SMALL)
    assert rebuilt.seed == 1 and _manifest(root)["seed"] == 1
    assert _siblings(root) == ["demo"]


def test_each_changed_input_remakes_the_demo_and_the_log_says_which(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = tmp_path / "astronaut.png"
    shutil.copy(package_file("skimage", "data/astronaut.png"), photo)
    copied = demo.Source("astronaut", partial(read_rgb, photo), file=photo)
    sources = tuple(copied if s.name == "astronaut" else s for s in _package_only())
    root = tmp_path / "demo"

    def build(**changes: Any) -> str:
        """Build with `changes`: "reused", "made", or which inputs the cache says changed."""
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ncl"):
            demo.build_demo(root, sources=sources, **{"seed": 0, **SMALL, **changes})
        if "demo: built" not in caplog.text:
            return "reused"
        why = re.search(r"remaking the demo benchmark \((.*)\)", caplog.text)
        return why[1] if why else "made"

    assert build() == "made"
    assert build() == "reused"
    assert build(seed=1) == "changed: seed"
    assert build(seed=1, difficulty=0.9) == "changed: params"
    assert (
        demo.DemoInfo.read(root).params.difficulty == 0.9 == _manifest(root)["params"]["difficulty"]
    )
    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the photo is replaced
    assert build(seed=1, difficulty=0.9) == "changed: sources"
    monkeypatch.setattr(demo_build, "GENERATOR_VERSION", demo.GENERATOR_VERSION + 1)
    assert build(seed=1, difficulty=0.9) == "changed: version"
    assert demo.DemoInfo.read(root).version == demo.GENERATOR_VERSION + 1
    assert build(seed=1, difficulty=0.9) == "reused"
    assert _siblings(root) == ["astronaut.png", "demo"]


def test_concurrent_builders_build_the_demo_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Path] = []
    generate = demo_build._generate

    def counted(out: Path, **kwargs: Any) -> None:
        built.append(out)
        generate(out, **kwargs)

    monkeypatch.setattr(demo_build, "_generate", counted)
    root = tmp_path / "demo"

    def build(_: int) -> demo.DemoInfo:
        return demo.build_demo(root, seed=0, sources=_package_only(), **SMALL)

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(build, range(2))
    assert len(built) == 1 and first == second
    assert _siblings(root) == ["demo"]


def test_a_folder_that_is_not_a_demo_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo"):
        demo.build_demo(tmp_path / "mine", sources=_package_only(), **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_too_few_photos_split_by_region_without_sharing_content(tmp_path: Path) -> None:
    keep = {"astronaut", "coffee", "motorcycle", "brick"}
    sources = [s for s in _package_only() if s.name in keep]
    info = demo.build_demo(
        tmp_path / "demo",
        sources=sources,
        **{**SMALL, "n_test": 12, "min_train": 16, "max_train": 16},
    )
    assert info.split == "region"
    assert info.counts["test_instances"] == 12 and info.counts["train_instances"] == 16
    instances = _manifest(info.root)["instances"]
    cells = [
        (r["source"], tuple(r["box"])) for regions in instances.values() for r in regions.values()
    ]
    assert len(cells) == len(set(cells))
    with pytest.raises(ValueError, match="cannot give 500 test instances"):
        demo.build_demo(tmp_path / "none", sources=sources, **{**SMALL, "n_test": 500})


def test_missing_sources_are_skipped_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def gray_camera() -> np.ndarray:  # a loader may return gray floats; it becomes RGB uint8
        return cv2.imread(str(package_file("skimage", "data/camera.png")), 0) / 255.0

    gone = demo.Source("gone", lambda: read_rgb(tmp_path / "absent.jpg"))
    sources = (*_package_only(), gone, demo.Source("gray_camera", gray_camera))
    with caplog.at_level(logging.INFO, logger="ncl.demo"):
        info = demo.build_demo(tmp_path / "demo", sources=sources, **SMALL)
    assert "source gone skipped" in caplog.text
    meta = _manifest(info.root)
    assert meta["skipped_sources"] == ["gone"]
    assert "gone" not in info.sources
    assert meta["textures"] == ["brick", "grass", "gravel"]


def test_opencv_doc_switch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(demo.OPENCV_DIR_ENV, "")
    assert demo.opencv_doc_dir() is None
    monkeypatch.setenv(demo.OPENCV_DIR_ENV, str(tmp_path / "nowhere"))
    names = [s.name for s in demo.default_sources(demo.opencv_doc_dir())]
    assert names == [s.name for s in _package_only()]
    monkeypatch.delenv(demo.OPENCV_DIR_ENV)
    assert demo.opencv_doc_dir() == demo.OPENCV_DOC_DIR


@pytest.mark.skipif(not demo.OPENCV_DOC_DIR.is_dir(), reason="Debian's opencv-doc is not installed")
def test_opencv_doc_photos_are_used_when_installed(tmp_path: Path) -> None:
    sources = demo.default_sources(demo.OPENCV_DOC_DIR)
    info = demo.build_demo(tmp_path / "demo", sources=sources, **SMALL)
    meta = _manifest(info.root)
    assert len([s for s in meta["params"]["sources"] if s.startswith("ocv_")]) >= 20
    assert meta["skipped_sources"] == []
    assert any(s.startswith("ocv_") for s in info.sources)
    assert info.counts["photos"] > 30 and info.split == "photo"


def test_relevance_follows_the_visible_fraction() -> None:
    assert [demo.relevance(v) for v in (1.0, 0.6, 0.59, 0.25, 0.24)] == [
        "good",
        "good",
        "ok",
        "ok",
        "junk",
    ]


def test_cli_prints_the_counts(full: demo.DemoInfo, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(full.root), "--no-opencv"])
    out = capsys.readouterr().out
    assert f"queries            {full.counts['queries']}" in out
    assert f"database_images    {full.counts['database_images']}" in out

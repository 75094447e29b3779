"""The baselines through the jobs: `extract.py encoder=...` and `evaluate.py encoder=...`.

Tiny benchmarks in the official layouts whose images are views (shifted, scaled, re-lit crops) of
real photos, so SIFT finds keypoints and views of one photo really match; the vocabulary is
fitted on views of other photos, a separate image set. No network may be built on these paths.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.fixtures_official import write_oxford
from helpers.paths import ROOT
from skimage import data as skdata

from ncl.baselines import vocabulary
from ncl.codes.store import CodeStore
from ncl.data.benchmarks import read_oxford
from ncl.data.images import query_image_set
from ncl.features import descriptors as local_features
from ncl.features.sift import rootsift, sift
from ncl.io.decode import read_gray
from ncl.io.geometry import crop_box
from ncl.jobs.evaluate import run_evaluation
from ncl.jobs.extract import run_extraction
from ncl.jobs.parts import code_source

OBJECTS = ("astronaut", "coffee", "rocket")  # the benchmark's objects
OTHERS = ("chelsea", "hubble_deep_field", "immunohistochemistry", "camera", "coins", "clock")
QUERY_BOX = (8.0, 6.0, 120.0, 90.0)
ENCODER = [
    "encoder.k=32",
    "encoder.local_features.max_keypoints=150",
    "encoder.local_features.workers=1",
    "encoder.vocabulary.niter=5",
]
SPARSE = ["encoder.params.max_iter=50", "encoder.params.device=cpu"]


def photo(name: str) -> np.ndarray:
    image = getattr(skdata, name)()
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)


def write_view(path: Path, image: np.ndarray, view: int) -> Path:
    """View `view` of `image`: a 75% crop moved along the diagonal, resized to 160 x 120 and
    re-lit; views of one photo share most of their content."""
    h, w = image.shape[:2]
    ch, cw = int(0.75 * h), int(0.75 * w)
    dy, dx = (h - ch) * view // 4, (w - cw) * view // 4
    crop = cv2.resize(image[dy : dy + ch, dx : dx + cw], (160, 120), interpolation=cv2.INTER_AREA)
    lit = cv2.convertScaleAbs(crop, alpha=1.0 + 0.1 * (view % 2), beta=5 * view)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), lit)
    return path


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    for name in OTHERS:
        for view in range(2):
            write_view(root / f"{name}_{view}.jpg", photo(name), view)
    return root


@pytest.fixture
def ukb(tmp_path: Path) -> Path:
    """UKB layout: 3 objects x 4 views, ukbench00000.jpg ... ukbench00011.jpg."""
    root = tmp_path / "ukb"
    for i, name in enumerate(OBJECTS):
        for view in range(4):
            write_view(root / f"ukbench{4 * i + view:05d}.jpg", photo(name), view)
    return root


@pytest.fixture
def oxford(tmp_path: Path):
    """Oxford layout; each landmark's images are views of one photo, the others of a third."""
    fixture = write_oxford(tmp_path / "oxford5k", images_per_landmark=4, n_other=3)
    objects = {"all_souls": OBJECTS[0], "radcliffe_camera": OBJECTS[1], "oxford": OBJECTS[2]}
    for name, file in fixture.files.items():
        write_view(file, photo(objects[name.rsplit("_", 1)[0]]), int(name[-1]) % 4)
    for query, spec in fixture.queries.items():  # boxes that hold a good part of the 160 x 120
        box = " ".join(f"{v:.1f}" for v in QUERY_BOX)
        (fixture.gt_dir / f"{query}_query.txt").write_text(f"oxc1_{spec.image} {box}\n")
    return fixture


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a CNN on a baseline's path is a bug: make it fail loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a baseline job built a network")

    monkeypatch.setattr("ncl.models.spec.create_backbone", refuse)


def fit_on(fit_dir: Path) -> list[str]:
    """The separate set vocabularies and PCA are fitted on."""
    return ["benchmark.fit_on.name=fit", f"benchmark.fit_on.root={fit_dir}"]


def ukb_overrides(root: Path, encoder: str) -> list[str]:
    return [
        "benchmark=ukb",
        f"benchmark.reader.root={root}",
        f"encoder={encoder}",
        *ENCODER,
        *(SPARSE if encoder == "sparse" else []),
    ]


def ns_by_hand(codes: np.ndarray) -> float:
    """UKB's score of `codes` (rows in ukbench order) ranked by plain numpy."""
    x = codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)
    top4 = np.argsort(-(x @ x.T), axis=1, kind="stable")[:, :4]
    groups = np.arange(len(codes)) // 4
    return float(np.mean((groups[top4] == groups[:, None]).sum(axis=1)))


@pytest.mark.parametrize(
    ("encoder", "dim", "min_ns"), [("bovw", 32, 2.75), ("vlad", 32 * 128, 3.5), ("sparse", 32, 3.0)]
)
def test_evaluate_scores_a_baseline_like_neural_codes(
    encoder: str,
    dim: int,
    min_ns: float,
    ukb: Path,
    fit_dir: Path,
    tmp_path: Path,
    cfg_evaluate,
    no_network: None,
) -> None:
    # PCA to 64 of 32-d codes is no compression: that row must be left out, not faked (the 12
    # fit images allow at most 11 PCA dims, so VLAD asks for 4 only)
    dims = "[null,4,64]" if dim < 64 else "[null,4]"
    overrides = [*ukb_overrides(ukb, encoder), "compression=pca", f"compression.dim={dims}"]
    headline = run_evaluation(cfg_evaluate([*fit_on(fit_dir), *overrides]))

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model"].startswith(f"{encoder}-k32-rootsift-")
    full, pca = results["rows"]
    assert (full["tap"], full["method"], full["dim"]) == (encoder, "none", dim)
    assert (pca["method"], pca["dim"]) == ("pca", 4)
    assert headline == full["metrics"]["N-S"]
    # views of one photo find each other (chance is about 1.8; measured: 3.33, 4.0, 3.6)
    assert full["metrics"]["N-S"] >= min_ns, full["metrics"]
    # evaluate.py read exactly the stored code set: the same codes ranked by numpy score the same
    store = CodeStore(tmp_path / "data" / "codes")
    codes = store.read(results["model"], "ukb", encoder)
    assert codes.ids == [f"ukbench{i:05d}" for i in range(12)] and codes.dim == dim
    assert full["metrics"]["N-S"] == pytest.approx(ns_by_hand(np.asarray(codes.codes)), abs=1e-9)
    # the vocabulary was fitted on the separate fit set, whose codes PCA was fitted on
    assert codes.meta["vocabulary_fit_on"] == "fit"
    assert store.exists(results["model"], "fit", encoder)


def test_extract_writes_database_query_and_fit_sets_from_cropped_queries(
    oxford, fit_dir: Path, tmp_path: Path, cfg_extract, no_network: None
) -> None:
    overrides = ["benchmark=oxford5k", f"benchmark.reader.root={oxford.root}", "encoder=vlad"]
    cfg = cfg_extract([*fit_on(fit_dir), *overrides, *ENCODER])
    run_extraction(cfg)

    source = code_source(cfg)
    assert source.taps == ["vlad"]
    store = CodeStore(tmp_path / "data" / "codes")
    db = store.read(source.name, "oxford5k", "vlad")
    queries = store.read(source.name, "oxford5k_queries", "vlad")
    fit = store.read(source.name, "fit", "vlad")
    assert db.ids == oxford.database and queries.ids == list(oxford.queries)
    assert len(fit) == 2 * len(OTHERS) and db.dim == queries.dim == fit.dim == 32 * 128
    assert db.meta["model"] == source.name and db.meta["tap"] == "vlad"
    # queries are described by the SIFT of their box only, as neural codes see the crop
    benchmark = read_oxford(oxford.root)
    cache = source.descriptors(query_image_set(benchmark, crop=True))
    query = benchmark.queries[0]
    cropped = sift(crop_box(read_gray(query.path), QUERY_BOX), max_keypoints=150, max_side=None)
    whole = sift(read_gray(query.path), max_keypoints=150, max_side=None)
    assert len(cropped) != len(whole)
    np.testing.assert_array_equal(cache.descriptors(query.name), rootsift(cropped))
    assert not np.allclose(queries.codes[0], db.codes[db.rows([query.image])[0]])


def test_interrupted_descriptor_cache_resumes_and_a_rerun_recomputes_nothing(
    ukb: Path, fit_dir: Path, cfg_extract, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    cfg = cfg_extract([*fit_on(fit_dir), *ukb_overrides(ukb, "bovw")])
    real = local_features._extract_one
    done: list[str] = []

    def power_cut_after_5(task: tuple, report: object) -> tuple[str, str | None]:
        if len(done) == 5:
            raise RuntimeError("power cut")
        done.append(task[0])
        return real(task, report)

    monkeypatch.setattr(local_features, "_extract_one", power_cut_after_5)
    with pytest.raises(RuntimeError, match="power cut"):
        run_extraction(cfg)

    monkeypatch.setattr(
        local_features, "_extract_one", lambda t, r: done.append(t[0]) or real(t, r)
    )
    run_extraction(cfg)
    ukb_names = [f"ukbench{i:05d}" for i in range(12)]
    assert done[:5] == ukb_names[:5]
    # the second run extracted each image once: the 7 UKB images left, then the fit set
    assert sorted(done) == sorted(ukb_names + [f"{n}_{v}" for n in OTHERS for v in range(2)])

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed")

    done.clear()
    monkeypatch.setattr(vocabulary, "kmeans", never)
    monkeypatch.setattr("ncl.baselines.source.fit_bovw_idf", never)
    monkeypatch.setattr("ncl.baselines.encode.write_ids", never)
    run_extraction(cfg)
    assert done == []


def test_unreadable_image_is_reported_left_out_and_never_retrieved(
    oxford,
    fit_dir: Path,
    tmp_path: Path,
    cfg_evaluate,
    caplog: pytest.LogCaptureFixture,
    no_network: None,
) -> None:
    broken = "oxford_000002"
    oxford.files[broken].write_bytes(b"not a JPEG at all" * 20)
    overrides = [
        "benchmark=oxford5k",
        f"benchmark.reader.root={oxford.root}",
        "encoder=vlad",
        *ENCODER,
        "compression=none",
        "logger=none",
    ]
    with caplog.at_level(logging.WARNING):
        run_evaluation(cfg_evaluate([*fit_on(fit_dir), *overrides]))
    assert f"cannot extract SIFT from image '{broken}'" in caplog.text
    assert "1 database image(s) have no codes" in caplog.text
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    codes = CodeStore(tmp_path / "data" / "codes").read(results["model"], "oxford5k", "vlad")
    assert broken not in codes.ids and codes.meta["failed"] == [broken]
    assert len(codes) == len(oxford.database) - 1
    assert 0 < results["rows"][0]["metrics"]["mAP"] <= 1


def test_a_sweep_over_encoders_is_one_command_with_one_report(
    ukb: Path, fit_dir: Path, tmp_path: Path
) -> None:
    """Hydra composes a multirun's master config with the default encoder (none), which has no
    `k`: options of the swept encoders are set with `++` (add or override)."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        str(ROOT / "evaluate.py"),
        "-m",
        "benchmark=ukb",
        f"benchmark.reader.root={ukb}",
        "encoder=bovw,vlad",
        *(f"++{o}" for o in ENCODER),
        f"paths.data_dir={tmp_path / 'data'}",
        *fit_on(fit_dir),
        "compression.dim=[null,4]",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
    ]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, text=True)
    lines = (sweep / "report.md").read_text().splitlines()
    assert lines[2] == "| benchmark | model | tap | dim | full | pca 4 |"
    table = lines[4 : lines.index("", 4)]  # the paired table follows after a blank line
    rows = {line.split(" | ")[2]: line for line in table}
    assert rows.keys() == {"bovw", "vlad"}
    assert " | 32 | " in rows["bovw"] and " | 4096 | " in rows["vlad"]

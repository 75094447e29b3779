"""Pair mining: the matching graph on real photos with known overlaps, candidate selection and
the greedy subset on hand-built graphs, resuming, unreadable images, the pairs file, and the
`mine_pairs.py` command (on a class folder, and by default on the demo's training split)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.paths import ROOT
from skimage import data as skdata

from ncl.data.images import folder_image_set
from ncl.demo import render_view
from ncl.features import keypoints as keypoints_module
from ncl.features.keypoints import KeypointCache, Keypoints
from ncl.jobs.mine_pairs import run_mining
from ncl.pairs import KeypointSettings, MatchSettings, MiningSettings, Pair, mine_pairs, read_pairs
from ncl.pairs import classes as classes_module
from ncl.pairs import mine as mine_module
from ncl.pairs.graph import adjacency, candidates, select_greedy, two_hop_evidence
from ncl.pairs.matching import PairVerifier
from ncl.pairs.pairs_file import write_pairs

FAST = MiningSettings(keypoints=KeypointSettings(max_keypoints=500, max_side=512))


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _view(photo: np.ndarray, seed: int, *, query: bool) -> bytes:
    """A generated view as the demo renders them, on a plain (untextured) background, so two
    views of different photos share no content."""
    rng = np.random.default_rng(seed)
    return render_view(photo, (), difficulty=0.3, view_size=384, query=query, rng=rng).jpeg


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of real photos whose matches are known.

    astro: three crops of the astronaut photo, left (columns 0-220), middle (110-402, rotated
    12° and scaled 0.8) and right (292-512): left and right share no pixel, the middle overlaps
    both; plus a crop of an unrelated photo (coffee). cat: two generated views of the chelsea
    photo and one of the rocket photo.
    """
    root = tmp_path_factory.mktemp("classes")
    astro = skdata.astronaut()
    _save(root / "astro" / "left.jpg", astro[:, :220])
    middle = astro[:, 110:402]
    turn = cv2.getRotationMatrix2D((middle.shape[1] / 2, middle.shape[0] / 2), 12, 0.8)
    middle = cv2.warpAffine(middle, turn, middle.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    _save(root / "astro" / "middle.jpg", middle)
    _save(root / "astro" / "right.jpg", astro[:, 292:])
    _save(root / "astro" / "coffee.jpg", skdata.coffee()[:, :300])
    (root / "cat").mkdir()
    (root / "cat" / "view0.jpg").write_bytes(_view(skdata.chelsea(), 0, query=True))
    (root / "cat" / "view1.jpg").write_bytes(_view(skdata.chelsea(), 1, query=False))
    (root / "cat" / "rocket.jpg").write_bytes(_view(skdata.rocket(), 5, query=False))
    return root


def _inliers(out_dir: Path, label: str) -> dict[frozenset[str], int]:
    """Every verified pair's inlier count from a class file (absent pairs: no inlier)."""
    data = json.loads((out_dir / "classes" / f"{label}.json").read_text())
    names = data["images"]
    return {frozenset((names[a], names[b])): n for a, b, n in data["inliers"]}


@pytest.fixture(scope="module")
def mined(photo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> mine_module.MiningResult:
    out = tmp_path_factory.mktemp("mined")
    return mine_pairs(folder_image_set("photos", photo_set), out, settings=FAST, workers=1)


# --- the matching graph on real photos ---------------------------------------------------------


def test_mining_links_overlapping_views_and_rejects_unrelated_photos(mined) -> None:
    m = FAST.min_inliers
    astro = _inliers(mined.out_dir, "astro")
    assert astro[frozenset(("astro/left", "astro/middle"))] >= m, astro
    assert astro[frozenset(("astro/middle", "astro/right"))] >= m, astro
    assert astro.get(frozenset(("astro/left", "astro/right")), 0) < m, astro
    for other in ("astro/left", "astro/middle", "astro/right"):
        assert astro.get(frozenset(("astro/coffee", other)), 0) < m, astro

    cat = _inliers(mined.out_dir, "cat")
    assert cat[frozenset(("cat/view0", "cat/view1"))] >= m, cat
    for view in ("cat/view0", "cat/view1"):
        assert cat.get(frozenset(("cat/rocket", view)), 0) < m, cat


def test_the_pair_is_the_two_hop_one_with_its_bottleneck_as_evidence(mined) -> None:
    astro = _inliers(mined.out_dir, "astro")
    bottleneck = min(
        astro[frozenset(("astro/left", "astro/middle"))],
        astro[frozenset(("astro/middle", "astro/right"))],
    )
    # cat has one edge and no third photo linked to it: no candidate, no pair.
    assert mined.pairs == [Pair("astro/left", "astro/right", "astro", bottleneck)]
    assert read_pairs(mined.pairs_file) == mined.pairs

    summary = json.loads((mined.out_dir / "summary.json").read_text())
    assert summary["classes"]["astro"] | {"mining_seconds": 0} == {
        "images": 4,
        "unreadable": 0,
        "pairs_verified": 6,
        "edges": 2,
        "degree_min": 0,
        "degree_median": 1.0,
        "degree_mean": 1.0,
        "degree_max": 2,
        "isolated": 1,
        "candidates": 1,
        "pairs": 1,
        "mining_seconds": 0,
    }
    assert summary["classes"]["cat"]["edges"] == 1 and summary["classes"]["cat"]["pairs"] == 0
    assert summary["totals"]["pairs"] == 1 and summary["totals"]["pairs_verified"] == 9
    assert summary["settings"]["min_inliers"] == FAST.min_inliers


def test_verifier_counts_nothing_for_too_few_matches() -> None:
    verifier = PairVerifier(MatchSettings())
    rng = np.random.default_rng(0)

    def keypoints(n: int) -> Keypoints:
        xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
        return Keypoints(xy, rng.integers(0, 255, (n, 128), dtype=np.uint8))

    empty, one, three = (verifier.prepare(keypoints(n)) for n in (0, 1, 3))
    # Three identical keypoints match themselves, but a homography needs four.
    for a, b in ((empty, three), (three, empty), (one, one), (three, three)):
        assert verifier.inliers(a, b) == 0


def test_flann_agrees_with_brute_force_on_known_overlaps(photo_set: Path) -> None:
    """FLANN (one kd-tree per image, squared distances) finds the matches brute force finds:
    the overlapping crops link, the disjoint ones and the unrelated photo do not."""
    cache = KeypointCache(photo_set.parent / "flann-keypoints", FAST.keypoints)
    names = ["left", "middle", "right", "coffee"]
    counts = {}
    for matcher in ("bf", "flann"):
        verifier = PairVerifier(MatchSettings(matcher=matcher))
        kp = {n: verifier.prepare(cache.get(n, photo_set / "astro" / f"{n}.jpg")) for n in names}
        counts[matcher] = {
            (a, b): verifier.inliers(kp[a], kp[b]) for a in names for b in names if a < b
        }
    m = FAST.min_inliers
    for counted in counts.values():
        assert counted[("left", "middle")] >= m and counted[("middle", "right")] >= m, counts
        assert counted[("left", "right")] < m and counted[("coffee", "left")] < m, counts
    bf, flann = counts["bf"][("left", "middle")], counts["flann"][("left", "middle")]
    assert abs(bf - flann) <= 0.2 * bf, counts  # approximate search loses a few matches at most


# --- candidates and the greedy subset on hand-built graphs ---------------------------------------


def test_candidates_share_a_neighbour_and_are_not_neighbours() -> None:
    #   0 -20- 2 -30- 1      0 and 1 share 2 (bottleneck 20) and 3 (bottleneck 10): evidence 20
    #   0 -50- 3 -10- 1      2 and 3 share 0 (min 20, 50) and 1 (min 30, 10): evidence 20
    #   4 -40- 5             4, 5 are neighbours; nobody else links to them
    edges = [(0, 2, 20), (1, 2, 30), (0, 3, 50), (1, 3, 10), (4, 5, 40), (0, 4, 3)]
    adj = adjacency(6, edges, min_inliers=5)  # (0, 4, 3) is below the threshold
    assert adj[0, 4] == 0 and adj[4, 5] == 40 and (adj == adj.T).all()
    assert two_hop_evidence(adj)[0, 1] == 20
    assert candidates(adj) == [(0, 1, 20), (2, 3, 20)]
    # A triangle has no candidate: every two-hop pair is also a neighbour pair.
    triangle = adjacency(3, [(0, 1, 9), (1, 2, 9), (0, 2, 9)], min_inliers=1)
    assert candidates(triangle) == []


def test_greedy_prefers_the_strongest_and_uses_each_photo_once() -> None:
    names = ["a", "b", "c", "d", "e"]
    pairs = [(0, 1, 10), (1, 2, 30), (2, 3, 20), (0, 3, 5), (3, 4, 5)]
    # (b, c) 30 first; (c, d) and (a, b) reuse a photo; (a, d) and (d, e) tie at 5: (a, d)
    # comes first by name, after which (d, e) reuses d.
    assert select_greedy(pairs, names) == [(1, 2, 30), (0, 3, 5)]
    assert select_greedy(list(reversed(pairs)), names) == [(1, 2, 30), (0, 3, 5)]


@pytest.mark.parametrize("seed", range(5))
def test_greedy_on_random_graphs_is_a_maximal_matching(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    edges = [(a, b, int(rng.integers(1, 60))) for a in range(n) for b in range(a + 1, n)]
    edges = [e for e in edges if rng.random() < 0.15]
    found = candidates(adjacency(n, edges, min_inliers=15))
    kept = select_greedy(found, [f"img{i:02d}" for i in range(n)])
    used = [i for a, b, _ in kept for i in (a, b)]
    assert len(used) == len(set(used)) and kept
    assert all(a in used or b in used for a, b, _ in found)  # nothing could be added
    assert [c for *_, c in kept] == sorted((c for *_, c in kept), reverse=True)


# --- resuming ----------------------------------------------------------------------------------


def test_resume_skips_finished_classes_and_recomputes_on_changed_settings(
    photo_set: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    images = folder_image_set("photos", photo_set)
    real = classes_module.mine_class

    def fail_on_cat(task, report):
        if task.label == "cat":
            raise RuntimeError("interrupted")
        return real(task, report)

    monkeypatch.setattr(classes_module, "mine_class", fail_on_cat)
    with pytest.raises(RuntimeError, match="interrupted"):
        mine_pairs(images, tmp_path, settings=FAST, workers=1)
    assert [p.name for p in (tmp_path / "classes").iterdir()] == ["astro.json"]
    monkeypatch.setattr(classes_module, "mine_class", real)

    first = mine_pairs(images, tmp_path, settings=FAST, workers=1)
    assert (first.classes_reused, first.classes_mined, first.pairs_verified) == (1, 1, 3)

    def no_matching(*args, **kwargs):
        raise AssertionError("a finished class was matched again")

    monkeypatch.setattr(PairVerifier, "inliers", no_matching)
    again = mine_pairs(images, tmp_path, settings=FAST, workers=1)
    assert (again.classes_reused, again.pairs_verified, again.pairs) == (2, 0, first.pairs)
    # min_inliers is applied to the stored counts: no matching, different graph.
    strict = mine_pairs(
        images, tmp_path, settings=MiningSettings(FAST.keypoints, FAST.matching, 10_000)
    )
    assert strict.classes_reused == 2 and strict.pairs == []
    assert strict.summary["totals"]["edges"] == 0
    monkeypatch.undo()

    changed = MiningSettings(FAST.keypoints, MatchSettings(ratio=0.7), FAST.min_inliers)
    with caplog.at_level(logging.INFO):
        redone = mine_pairs(images, tmp_path, settings=changed, workers=1)
    assert (redone.classes_reused, redone.classes_mined, redone.pairs_verified) == (0, 2, 9)
    assert "2 classes mined with other matching, mining them again" in caplog.text


def test_a_touched_image_makes_its_class_mined_again(photo_set: Path, tmp_path: Path) -> None:
    root = tmp_path / "set"
    for label in ("astro", "cat"):
        (root / label).mkdir(parents=True)
        for f in (photo_set / label).iterdir():
            (root / label / f.name).write_bytes(f.read_bytes())
    mine_pairs(folder_image_set("s", root), tmp_path / "out", settings=FAST, workers=1)
    _save(root / "cat" / "rocket.jpg", skdata.rocket())  # the image set was regenerated
    again = mine_pairs(folder_image_set("s", root), tmp_path / "out", settings=FAST, workers=1)
    assert (again.classes_reused, again.classes_mined) == (1, 1)


def test_keypoint_cache_reextracts_a_changed_image_only(
    photo_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per image, the cache is checked by the image file's `file_stamp`; the folder is an
    artifact of the settings, remade when made under others (e.g. another format)."""
    for name in ("left", "right"):
        (tmp_path / f"{name}.jpg").write_bytes((photo_set / "astro" / f"{name}.jpg").read_bytes())
    extracted: list[int] = []
    real = keypoints_module.sift_keypoints

    def counting(gray, **kwargs):
        extracted.append(gray.shape[1])
        return real(gray, **kwargs)

    monkeypatch.setattr(keypoints_module, "sift_keypoints", counting)
    cache = KeypointCache(tmp_path / "kp", FAST.keypoints)
    first = {n: cache.get(n, tmp_path / f"{n}.jpg") for n in ("left", "right")}
    assert len(extracted) == 2
    again = KeypointCache(tmp_path / "kp", FAST.keypoints)
    for n in ("left", "right"):  # unchanged: loaded, not extracted
        np.testing.assert_array_equal(again.get(n, tmp_path / f"{n}.jpg").xy, first[n].xy)
    assert len(extracted) == 2

    _save(tmp_path / "left.jpg", skdata.astronaut()[:, :100])  # a regenerated image
    assert len(again.get("left", tmp_path / "left.jpg")) != len(first["left"])
    again.get("right", tmp_path / "right.jpg")
    assert extracted[2:] == [100]

    meta = json.loads((cache.folder / "meta.json").read_text())
    meta["key"], meta["inputs"]["format"] = "older", 1
    (cache.folder / "meta.json").write_text(json.dumps(meta))
    remade = KeypointCache(tmp_path / "kp", FAST.keypoints)
    assert not remade.file("right").exists()
    remade.get("right", tmp_path / "right.jpg")
    assert len(extracted) == 4
    other = KeypointCache(tmp_path / "kp", KeypointSettings(max_keypoints=50, max_side=512))
    assert other.folder != remade.folder and len(other.get("right", tmp_path / "right.jpg")) <= 50


# --- unreadable images and the pairs file --------------------------------------------------------


def test_unreadable_image_is_reported_by_name_and_left_out(
    photo_set: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "set"
    (root / "astro").mkdir(parents=True)
    for f in (photo_set / "astro").iterdir():
        (root / "astro" / f.name).write_bytes(f.read_bytes())
    (root / "astro" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "loose.jpg").write_bytes((photo_set / "cat" / "view0.jpg").read_bytes())
    with caplog.at_level(logging.WARNING):
        result = mine_pairs(folder_image_set("s", root), tmp_path / "out", settings=FAST, workers=1)
    assert "astro/broken" in caplog.text and "loose" in caplog.text
    assert list(result.summary["unreadable"]) == ["astro/broken"]
    assert result.summary["outside_classes"] == ["loose"]
    assert result.summary["classes"]["astro"]["images"] == 5
    assert result.summary["classes"]["astro"]["unreadable"] == 1
    assert result.summary["classes"]["astro"]["pairs_verified"] == 6  # 4 readable photos
    assert [(p.a, p.b) for p in result.pairs] == [("astro/left", "astro/right")]
    assert not list((tmp_path / "out" / "keypoints").rglob("*broken*"))  # nothing cached


def test_read_pairs_round_trips_and_names_the_bad_line(tmp_path: Path) -> None:
    pairs = [Pair("c/x", "c/y", "c", 17), Pair("d/sub/p", "d/q", "d", 0)]
    write_pairs(tmp_path / "pairs.tsv", pairs)
    assert read_pairs(tmp_path / "pairs.tsv") == pairs
    for bad, problem in (
        ("c/x\tc/y\tc", "4 tab-separated fields"),
        ("c/x\tc/y\tc\tmany", "non-negative integer"),
        ("c/x\tc/y\tc\t-3", "non-negative integer"),
        ("c/x\t\tc\t3", "empty"),
        ("c/x c/y c 3", "4 tab-separated fields"),
    ):
        file = tmp_path / "bad.tsv"
        file.write_text(f"c/a\tc/b\tc\t5\n{bad}\n")
        with pytest.raises(ValueError, match=rf"bad\.tsv:2: .*{problem}"):
            read_pairs(file)
    with pytest.raises(ValueError, match="without tabs"):
        write_pairs(tmp_path / "x.tsv", [Pair("a\tb", "c", "d", 1)])


# --- the command -------------------------------------------------------------------------------


def test_command_with_two_workers_matches_the_in_process_run(
    photo_set: Path, mined, tmp_path: Path
) -> None:
    out = tmp_path / "pairs"
    cmd = [
        sys.executable,
        str(ROOT / "mine_pairs.py"),
        f"images.root={photo_set}",
        f"out_dir={out}",
        "workers=2",
        f"keypoints.max_keypoints={FAST.keypoints.max_keypoints}",
        f"keypoints.max_side={FAST.keypoints.max_side}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert read_pairs(out / "pairs.tsv") == mined.pairs
    for label in ("astro", "cat"):
        assert _inliers(out, label) == _inliers(mined.out_dir, label)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_set"] == photo_set.name and summary["run"]["workers"] == 2


def test_default_mines_the_demo_training_split_building_it_first(
    tmp_path: Path, cfg_mine_pairs
) -> None:
    small = {"n_test": 4, "test_views": 2, "n_distractors": 4, "train_views": 3}
    small |= {"min_train": 3, "max_train": 3}
    cfg = cfg_mine_pairs(
        [
            f"paths.data_dir={tmp_path / 'data'}",
            "workers=1",
            *(f"+benchmark.reader.{k}={v}" for k, v in small.items()),
        ]
    )
    result = run_mining(cfg)
    train = tmp_path / "data" / "demo" / "train"
    assert result.out_dir == tmp_path / "data" / "pairs" / "demo_train"
    assert (tmp_path / "data" / "demo" / "demo.json").is_file()
    summary = result.summary
    assert summary["image_set"] == "demo_train" and summary["root"] == str(train)
    assert summary["totals"]["classes"] == 3 and summary["totals"]["images"] == 9
    assert summary["totals"]["pairs_verified"] == 9
    # Three views of one region each: some are linked (not all: views can be hard).
    assert summary["totals"]["edges"] > 0, summary["classes"]
    names = set(folder_image_set("demo_train", train).names)
    used = [n for p in result.pairs for n in (p.a, p.b)]
    assert len(used) == len(set(used)) and set(used) <= names
    assert all(p.a.split("/")[0] == p.b.split("/")[0] == p.label for p in result.pairs)

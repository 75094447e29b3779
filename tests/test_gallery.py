"""Ranking galleries: the protocol's relevance of each result, the page written beside every
evaluation (queries worst first, results framed by the ground truth), thumbnails made once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford

from ncl.jobs.evaluate import run_evaluation
from ncl.protocols import APProtocol, RevisitedProtocol, UKBProtocol
from ncl.report.compare import compare, load_run
from ncl.report.gallery import FRAMES, main, thumbnail, write_gallery


def test_each_protocol_labels_results_as_the_ground_truth_says():
    ap = APProtocol(positives=[[1, 2]], junk=[[3]])
    assert ap.relevance(0, [2, 3, 4]) == ["positive", "junk", "negative"]
    ukb = UKBProtocol([0, 0, 1, 1])
    assert ukb.relevance(2, [3, 0, 7]) == ["positive", "negative", "negative"]
    revisited = RevisitedProtocol(easy=[[1]], hard=[[2]], junk=[[3]])
    assert revisited.relevance(0, [1, 2, 3, 4]) == ["positive", "positive", "junk", "negative"]


@pytest.fixture
def run(cfg_evaluate, tmp_path):
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=4, n_other=2)
    cfg = cfg_evaluate(oxford_overrides(oxford.root))
    run_evaluation(cfg)
    return Path(cfg.paths.output_dir), oxford


def test_every_evaluation_writes_a_gallery_worst_query_first(run):
    out, oxford = run
    page = (out / "gallery.html").read_text()
    results = json.loads((out / "results.json").read_text())
    aps = results["rows"][0]["per_query"]["AP"]
    shown = re.findall(r"<b>([^<]+)</b><br>AP ([0-9.]+)", page)
    assert {name for name, _ in shown} == set(oxford.queries)
    assert [float(v) for _, v in shown] == sorted(round(a, 3) for a in aps)
    assert FRAMES["positive"] in page and FRAMES["query"] in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all((out / src).is_file() for src in images)
    # and the comparison of two runs links their galleries
    assert f"gallery A: {out / 'gallery.html'}" in compare(load_run(out), load_run(out))


def test_thumbnails_are_made_once_and_a_box_is_drawn(run, tmp_path):
    out, oxford = run
    folder = tmp_path / "data" / "thumbnails" / "oxford5k"
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    write_gallery(out)
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    query = next(iter(oxford.queries.values()))
    plain = thumbnail(oxford.files[query.image], tmp_path / "t")
    boxed = thumbnail(oxford.files[query.image], tmp_path / "t", query.bbox)
    assert plain != boxed and plain.read_bytes() != boxed.read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert thumbnail(broken, tmp_path / "t") is None


def test_the_gallery_cli_names_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match=r"no results\.json"):
        main([str(tmp_path)])

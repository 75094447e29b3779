"""`python -m ncl.eval.score` on official-format fixtures: every protocol, --json, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.fixtures_official import (
    write_holidays,
    write_oxford,
    write_paris,
    write_ranks,
    write_revisited,
    write_ukb,
)
from helpers.paths import ROOT

from ncl.eval.score import main


def score(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ncl.eval.score", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def ok(*args: object) -> str:
    result = score(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: object) -> str:
    result = score(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result.stderr


def test_oxford(tmp_path):
    fx = write_oxford(tmp_path / "oxford")
    # first query: its only miss is a positive ranked second behind an unknown distractor;
    # everything else perfect
    lists = {q: spec.positives for q, spec in fx.queries.items()}
    first = next(iter(fx.queries))
    lists[first] = ["flickr_1", *fx.queries[first].positives]
    ranks = write_ranks(tmp_path / "ranks.txt", lists)
    # (0 + 1/2 + 1/2 + 2/3 + 2/3 + 3/4 + 3/4 + 4/5 + 4/5 + 5/6) / (2 * 5) for query 1
    first_ap = (0.5 + 0.5 + 2 / 3 + 2 / 3 + 0.75 + 0.75 + 0.8 + 0.8 + 5 / 6) / 10
    expected = (first_ap + len(lists) - 1) / len(lists)
    assert ok("oxford5k", fx.gt_dir, ranks) == f"mAP: {expected:.6f}\n"
    assert json.loads(ok("oxford5k", fx.gt_dir, ranks, "--json"))["mAP"] == pytest.approx(expected)


def test_scoring_needs_no_images_and_tolerates_jpg_suffix(tmp_path):
    fx = write_paris(tmp_path / "paris")
    for f in fx.files.values():
        f.unlink()
    lists = {f"{q}.jpg": [f"{n}.jpg" for n in spec.positives] for q, spec in fx.queries.items()}
    assert ok("paris6k", fx.gt_dir, write_ranks(tmp_path / "r.txt", lists)) == "mAP: 1.000000\n"


def test_holidays_list_file_and_folder(tmp_path):
    fx = write_holidays(tmp_path / "holidays", group_sizes=[3, 2])
    # query 100000 ranks itself first (removed), then 100100, 100001, 100002: ranks 1 and 2 -> 5/12
    ranks = write_ranks(
        tmp_path / "r.txt",
        {"100000": ["100000", "100100", "100001", "100002"], "100100": ["100101"]},
    )
    expected = (5 / 12 + 1.0) / 2
    assert ok("holidays", fx.list_file, ranks) == f"mAP: {expected:.6f}\n"
    assert json.loads(ok("holidays", fx.image_dir, ranks, "--json")) == {
        "mAP": pytest.approx(expected)
    }


def test_ukb(tmp_path):
    fx = write_ukb(tmp_path / "ukb", n_objects=2)
    lists = {n: fx.names[(i // 4) * 4 : (i // 4) * 4 + 4] for i, n in enumerate(fx.names)}
    lists["ukbench00000"] = ["ukbench00000", "ukbench00004", "unknown", "ukbench00001"]
    ranks = write_ranks(tmp_path / "r.txt", lists)
    assert ok("ukb", fx.image_dir, ranks) == f"N-S: {(2 + 7 * 4) / 8:.6f}\n"
    assert json.loads(ok("ukb", fx.image_dir, ranks, "--json")) == {"N-S": pytest.approx(30 / 8)}


def test_revisited(tmp_path):
    fx = write_revisited(tmp_path / "rox", images=False)
    ranks = write_ranks(tmp_path / "r.txt", {q: fx.imlist for q in fx.qimlist})
    text = ok("roxford5k", fx.gnd_file, ranks).splitlines()
    assert [line.split(":")[0] for line in text] == ["easy", "medium", "hard"]
    assert text[0].startswith("easy: mAP ") and "mP@1 " in text[0] and "mP@10 " in text[0]
    result = json.loads(ok("roxford5k", fx.gnd_file, ranks, "--json"))
    assert set(result) == {"easy", "medium", "hard"}
    for setup in result.values():
        assert set(setup) == {"mAP", "mP@1", "mP@5", "mP@10"}
    # easy: query 0 finds 0, 1 first -> 1; query 1 has no easy positive, left out; query 2's
    # positive 7 is eighth (its junk 8, 9 come after it) -> (0/7 + 1/8) / 2
    assert result["easy"]["mAP"] == pytest.approx((1.0 + (0 + 1 / 8) / 2) / 2)


def test_errors_exit_nonzero_with_a_message(tmp_path):
    fx = write_oxford(tmp_path / "oxford")
    queries = list(fx.queries)
    partial = write_ranks(tmp_path / "partial.txt", {q: [] for q in queries[1:]})
    message = fails("oxford5k", fx.gt_dir, partial)
    assert f"no line for query {queries[0]!r}" in message and "partial.txt" in message
    assert "invalid choice" in fails("oxford105k", fx.gt_dir, partial)


def in_process_error(capsys: pytest.CaptureFixture, *args: object) -> str:
    """The same checks without a subprocess each, to keep the suite fast."""
    assert main([str(a) for a in args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_more_errors(tmp_path, capsys):
    fx = write_oxford(tmp_path / "oxford")
    queries = list(fx.queries)
    ranks = write_ranks(tmp_path / "ranks.txt", {q: [] for q in queries})

    unknown = write_ranks(tmp_path / "unknown.txt", {**{q: [] for q in queries}, "nope_1": []})
    assert "unknown.txt:5: unknown query 'nope_1'" in in_process_error(
        capsys, "oxford5k", fx.gt_dir, unknown
    )

    bad = tmp_path / "bad.txt"
    bad.write_text("all_souls_1 all_souls_000001\n")
    assert "bad.txt:1: expected 'query_name: name1 name2 ...'" in in_process_error(
        capsys, "oxford5k", fx.gt_dir, bad
    )

    bad.write_text(ranks.read_text() + "all_souls_1:\n")
    assert "second line for query 'all_souls_1'" in in_process_error(
        capsys, "oxford5k", fx.gt_dir, bad
    )

    bad.write_text("all_souls_1: a b a\n")
    assert "lists an image twice" in in_process_error(capsys, "oxford5k", fx.gt_dir, bad)

    assert "not found" in in_process_error(capsys, "oxford5k", tmp_path / "nowhere", ranks)
    assert "cannot read ranks file" in in_process_error(
        capsys, "oxford5k", fx.gt_dir, tmp_path / "missing.txt"
    )
    assert "not found" in in_process_error(capsys, "roxford5k", tmp_path / "gnd_missing.pkl", ranks)
    assert "not a UKB image name" in in_process_error(
        capsys, "ukb", fx.gt_dir / "all_souls_1_good.txt", ranks
    )
    assert "must be numbers" in in_process_error(
        capsys, "holidays", fx.gt_dir / "all_souls_1_good.txt", ranks
    )

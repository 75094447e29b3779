"""Figures with their standard error, paired differences, and the run comparison CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ncl.report.compare import compare, load_run, main
from ncl.report.stats import estimate, paired_difference


def test_estimate_is_the_mean_and_its_standard_error_ignoring_left_out_queries():
    e = estimate([1.0, 0.0, 0.5, float("nan")])
    assert e.n == 3 and e.mean == pytest.approx(0.5)
    assert e.se == pytest.approx(0.5 / math.sqrt(3))  # sample sd 0.5 over sqrt(3)
    assert estimate([float("nan")]).n == 0


def test_paired_difference_cancels_what_the_queries_share():
    hard, easy = [0.1, 0.2, 0.1], [0.9, 1.0, 0.9]
    a = hard + easy
    b = [x + 0.05 for x in a]  # every query a little better
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(0.05) and diff.se == pytest.approx(0.0, abs=1e-12)
    assert estimate(a).se > 0.1  # the unpaired spread would hide it
    with pytest.raises(ValueError, match="same queries"):
        paired_difference([1.0], [1.0, 2.0])


def run(path: Path, model: str, aps: list[float], names: list[str]) -> Path:
    path.mkdir(parents=True)
    mean = sum(aps) / len(aps)
    row = {"tap": "pool", "method": "none", "dim": 8, "metrics": {"mAP": mean}}
    row["per_query"] = {"AP": aps}
    payload = {"benchmark": "demo", "model": model, "rows": [row], "query_names": names}
    (path / "results.json").write_text(json.dumps(payload))
    return path


def test_compare_reports_means_paired_difference_and_the_biggest_changes(tmp_path, capsys):
    names = ["q0", "q1", "q2", "q3"]
    a = run(tmp_path / "a", "old", [0.5, 0.5, 0.5, 0.5], names)
    b = run(tmp_path / "b", "new", [0.9, 0.5, 0.4, 0.6], names)
    text = compare(load_run(a), load_run(b), top=2)
    assert "B - A  0.1000" in text
    assert text.index("q0: 0.500 -> 0.900 (+0.400)") < text.index("biggest losses")
    assert "q2: 0.500 -> 0.400 (-0.100)" in text
    assert "q1:" not in text  # unchanged, and only two per direction
    main([str(a), str(b / "results.json")])
    assert "A = old, B = new" in capsys.readouterr().out


def test_compare_refuses_runs_that_share_nothing(tmp_path):
    a = run(tmp_path / "a", "m", [0.5], ["q"])
    other = json.loads((a / "results.json").read_text())
    other["benchmark"] = "ukb"
    with pytest.raises(ValueError, match="different benchmarks"):
        compare(load_run(a), other)
    with pytest.raises(SystemExit, match=r"no results\.json"):
        main([str(tmp_path / "a"), str(tmp_path / "missing")])


def test_the_console_table_gives_the_headline_metric_its_standard_error():
    from rich.console import Console

    from ncl.eval.run import ResultRow
    from ncl.report.table import print_rows

    row = ResultRow("pool", "none", 8, {"mAP": 0.5}, {"AP": [0.0, 1.0]}, 10, "cpu")
    console = Console(record=True, width=120)
    print_rows("demo", [row], console)
    text = console.export_text()
    assert "± SE (mAP)" in text and "0.5000" in text.split("± SE (mAP)")[1]

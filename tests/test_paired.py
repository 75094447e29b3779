"""The sweep report's paired table: every row with its standard error, and its difference to the
reference row of its group on the same queries, bold beyond two standard errors."""

from __future__ import annotations

import pytest

from ncl.report.paired import compression_label, paired_table
from ncl.report.table import search_name
from ncl.search.index import IVFPQ
from ncl.search.search import Search


def row(tap, method, dim, aps, rerank=None, compressor=None):
    r = {"tap": tap, "method": method, "dim": dim, "metrics": {"mAP": sum(aps) / len(aps)}}
    r["per_query"] = {"AP": aps}
    r["compressor"] = compressor or {}
    if rerank:
        r["rerank"] = {"name": rerank}
    return r


def run(rows):
    return {"benchmark": "demo", "model": "net", "rows": rows}


def lines_of(text: str) -> dict[tuple[str, str, str, str], str]:
    out = {}
    for line in text.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[(cells[2], cells[3], cells[4], cells[6])] = cells[8]
    return out


def test_each_group_is_paired_with_its_reference_and_clear_wins_are_bold():
    reference = [0.2, 0.4, 0.6, 0.8]
    text = paired_table(
        [
            run(
                [
                    row("conv-gem3", "none", 1280, [0.3, 0.5, 0.7, 0.9]),  # +0.1 on every query
                    row("pool", "none", 1280, reference),
                    row("pool", "pca", 128, reference),
                    row("pool", "pca", 128, [0.25, 0.45, 0.55, 0.85], rerank="alpha_qe"),
                ]
            )
        ]
    )
    cells = lines_of(text)
    assert cells[("full", "pool", "none", "none")] == "reference"
    assert cells[("full", "conv-gem3", "none", "none")] == "**+0.1000 ± 0.0000**"
    assert cells[("128", "pool", "pca", "none")] == "reference"
    noisy = cells[("128", "pool", "pca", "alpha_qe")]
    assert noisy == "+0.0250 ± 0.0250"  # one standard error: not marked
    # the reference leads its group
    body = text.splitlines()[2:]
    assert "| pool |" in body[0] and "reference" in body[0]


def test_rows_of_a_sweep_over_an_index_setting_stay_apart():
    """Jobs that differ only in a search-time setting (here refine) are rows of their own."""
    reference = [0.2, 0.4, 0.6, 0.8]
    rows = [row("pool", "pca", 128, reference)]
    for refine, aps in [(None, [0.1, 0.3, 0.5, 0.7]), (2, [0.2, 0.4, 0.6, 0.7])]:
        approximate = row("pool", "pca", 128, aps)
        kind = IVFPQ(nlist=16, m=64, nprobe=16, refine=refine)
        approximate["index"] = Search(index=kind).record()
        rows.append(approximate)
    cells = lines_of(paired_table([run(rows)]))
    assert cells[("128", "pool", "pca", "@ivf_pq nlist=16 m=64 nbits=8 nprobe=16")] == (
        "**-0.1000 ± 0.0000**"
    )
    assert cells[("128", "pool", "pca", "@ivf_pq nlist=16 m=64 nbits=8 nprobe=16 refine=2")] == (
        "-0.0250 ± 0.0250"
    )
    # results written before indexes had labels still name their index
    assert search_name({"index": {"name": "hnsw", "ef_search": 64}}) == "@hnsw"


def test_a_group_without_the_reference_says_so_and_whitening_is_named():
    text = paired_table([run([row("l6", "pca", 64, [0.1, 0.2], compressor={"whiten": True})])])
    assert "(no reference)" in text
    assert (
        compression_label({"method": "pca", "compressor": {"whiten": True, "whiten_power": 0.5}})
        == "pca-whiten0.5"
    )
    assert compression_label({"method": "lw"}) == "lw"


def test_figures_carry_their_standard_error():
    text = paired_table([run([row("pool", "none", 8, [0.0, 1.0])])])
    assert "AP 0.5000 ± 0.5000" in text
    with pytest.raises(KeyError):
        paired_table([run([{"tap": "x", "method": "none", "dim": 1, "metrics": {"mAP": 1}}])])

import json

from ncl.report.sweep import write_report
from ncl.report.table import headline_metric, markdown_table, records


def result(tap: str, method: str, dims_maps: dict, benchmark: str = "demo") -> dict:
    return {
        "benchmark": benchmark,
        "model": "m",
        "rows": [
            {
                "tap": tap,
                "method": method if d != 1280 else "none",
                "dim": d,
                "metrics": {"mAP": v},
                "per_query": {},
            }
            for d, v in dims_maps.items()
        ],
    }


def test_headline_metric_per_protocol():
    assert headline_metric({"AP": 0.1, "mAP": 0.5}) == ("mAP", 0.5)
    assert headline_metric({"easy/mAP": 0.9, "medium/mAP": 0.6}) == ("medium/mAP", 0.6)
    assert headline_metric({"N-S": 3.5}) == ("N-S", 3.5)


def test_sweep_report_gathers_jobs(tmp_path):
    for job, (tap, dims) in enumerate(
        [("pool", {1280: 0.7, 16: 0.4}), ("pool", {32: 0.5}), ("logits", {16: 0.3})]
    ):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(json.dumps(result(tap, "pca", dims)))
    path = write_report(tmp_path)
    text = path.read_text()
    assert "| benchmark | model | tap | full 1280 | pca 16 | pca 32 |" in text
    assert "| demo | m | pool | 0.7000 | 0.4000 | 0.5000 |" in text
    assert "| demo | m | logits |  | 0.3000 |  |" in text
    assert (tmp_path / "report.png").stat().st_size > 1000
    csv_lines = (tmp_path / "report.csv").read_text().splitlines()
    assert csv_lines[0] == "benchmark,model,tap,method,dim,mAP" and len(csv_lines) == 5


def test_markdown_table_orders_full_first_then_dims():
    recs = records([result("l6", "pca", {256: 0.4, 16: 0.2, 1280: 0.5})])
    header = markdown_table(recs).splitlines()[2]
    assert header.index("full 1280") < header.index("pca 16") < header.index("pca 256")


def test_full_codes_of_different_sizes_share_one_column_with_their_dim():
    """Table 3's layout: neural taps and baselines of other widths, full size and PCA 128."""
    recs = records(
        [
            result("pool", "pca", {1280: 0.7, 128: 0.6}),
            {
                "benchmark": "demo",
                "model": "vlad-k64",
                "rows": [
                    {"tap": "vlad", "method": "none", "dim": 8192, "metrics": {"mAP": 0.71}},
                    {"tap": "vlad", "method": "pca", "dim": 128, "metrics": {"mAP": 0.38}},
                ],
            },
        ]
    )
    lines = markdown_table(recs).splitlines()
    assert lines[2] == "| benchmark | model | tap | dim | full | pca 128 |"
    assert "| demo | m | pool | 1280 | 0.7000 | 0.6000 |" in lines
    assert "| demo | vlad-k64 | vlad | 8192 | 0.7100 | 0.3800 |" in lines

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
    assert (
        csv_lines[0] == "benchmark,model,tap,method,dim,rerank,paper_codes,mAP"
        and len(csv_lines) == 5
    )


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


def test_paper_figures_sit_under_the_rows_of_the_network_they_reproduce(tmp_path):
    """Table 2 / Table 4 cells: our Oxford L6 row, then the paper's figures for the same cells."""
    ours = result("l6", "pca", {1280: 0.5, 16: 0.3, 32: 0.35}, benchmark="oxford5k")
    ours["config"] = {"model": {"paper_codes": "imagenet"}}
    projection = result("l6", "projection", {16: 0.31}, benchmark="oxford5k")
    projection["config"] = {"model": {"paper_codes": "imagenet"}}
    other = result("pool", "pca", {16: 0.2}, benchmark="oxford5k")  # not a paper network
    for job, res in enumerate([ours, projection, other]):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(json.dumps(res))
    lines = write_report(tmp_path).read_text().splitlines()
    assert lines[2] == "| benchmark | model | tap | full 1280 | pca 16 | pca 32 | projection 16 |"
    row = lines.index("| oxford5k | m | l6 | 0.5000 | 0.3000 | 0.3500 | 0.3100 |")
    # full codes: Table 1 (0.435); PCA 16, 32: Table 2; projection 16: Table 4
    assert lines[row + 1] == (
        "| oxford5k | paper: AlexNet ILSVRC | l6 | 0.435 | 0.328 | 0.390 | 0.368 |"
    )
    assert not any(line.startswith("| oxford5k | paper") and "pool" in line for line in lines)

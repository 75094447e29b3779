"""evaluate.py end to end on official-format fixtures, checked against an independent path."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers.fixtures_official import write_oxford, write_ranks, write_ukb
from helpers.paths import ROOT

from ncl.codes.store import CodeStore
from ncl.eval.score import main as score_main
from ncl.jobs.evaluate import run_evaluation
from ncl.pairs import Pair, write_pairs


@pytest.fixture(scope="module")
def oxford(tmp_path_factory):
    root = tmp_path_factory.mktemp("oxford5k")
    return write_oxford(root, images_per_landmark=6, n_other=4)


def test_oxford_run_matches_score_cli_on_the_same_codes(oxford, cfg_evaluate, tmp_path, capsys):
    cfg = cfg_evaluate(
        [
            "benchmark=oxford5k",
            f"benchmark.reader.root={oxford.root}",
            "compression=pca",
            "compression.dim=[null,4]",
            "compression.fit_on=self",
            "taps=[pool]",
        ],
    )
    headline = run_evaluation(cfg)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    full, pca4 = results["rows"]
    assert (full["method"], full["dim"], pca4["method"], pca4["dim"]) == ("none", 1280, "pca", 4)
    assert results["fit_on"] == "self (the benchmark itself)"
    assert full["depth"] == len(oxford.database) + len(oxford.distractors)
    assert headline == full["metrics"]["mAP"]
    assert len(full["per_query"]["AP"]) == len(oxford.queries)
    assert "mAP" in capsys.readouterr().out

    # the same codes ranked by numpy and scored by the scoring command give the same mAP
    store = CodeStore(tmp_path / "data" / "codes")
    db = store.read("efficientnet_lite0", "oxford5k", "pool")
    q = store.read("efficientnet_lite0", "oxford5k_queries", "pool")
    assert q.meta["transform"]["query_boxes"] is True
    x = np.asarray(db.codes) / np.linalg.norm(db.codes, axis=1, keepdims=True)
    queries = np.asarray(q.codes) / np.linalg.norm(q.codes, axis=1, keepdims=True)
    order = np.argsort(-(queries @ x.T), axis=1, kind="stable")
    ranks = tmp_path / "ranks.txt"
    write_ranks(
        ranks, {name: [db.ids[i] for i in row] for name, row in zip(q.ids, order, strict=True)}
    )
    capsys.readouterr()
    assert score_main(["oxford5k", str(oxford.gt_dir), str(ranks), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] == pytest.approx(
        full["metrics"]["mAP"], abs=1e-6
    )


@pytest.mark.parametrize("logger", ["csv", "wandb"])
def test_ukb_uses_database_codes_for_queries_and_logs_metrics(cfg_evaluate, tmp_path, logger):
    root = tmp_path / "ukb"
    write_ukb(root, n_objects=3)
    cfg = cfg_evaluate(
        [
            "benchmark=ukb",
            f"benchmark.reader.root={root}",
            "compression=none",
            "taps=[logits]",
            f"logger={logger}",
        ],
    )
    run_evaluation(cfg)
    row = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]
    assert row["depth"] == 4 and 1.0 <= row["metrics"]["N-S"] <= 4.0
    assert not (tmp_path / "data" / "codes" / "efficientnet_lite0" / "ukb_queries").exists()
    if logger == "csv":
        metrics = (tmp_path / "out" / "csv" / "metrics.csv").read_text()
        assert "logits/none1000/N-S" in metrics.splitlines()[0]
    else:  # offline, no account: the run's files are written for a later `wandb sync`
        runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
        # the gallery as a table of images: one line per query, the query and its top 5
        (table,) = runs[0].rglob("gallery_*.table.json")
        logged = json.loads(table.read_text())
        assert logged["columns"] == ["query", "name", "N-S", "#1", "#2", "#3", "#4", "#5"]
        assert len(logged["data"]) == 3 * 4  # every UKB image is a query
        assert all(line[3] is not None and line[7] is None for line in logged["data"])  # depth 4


def test_pca_without_a_fit_set_is_a_clear_error(oxford, cfg_evaluate):
    cfg = cfg_evaluate(
        ["benchmark=oxford5k", f"benchmark.reader.root={oxford.root}", "taps=[pool]"]
    )
    with pytest.raises(FileNotFoundError, match="paris6k/jpg: image folder not found"):
        run_evaluation(cfg)


def test_multirun_sweep_writes_a_report(oxford, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        str(ROOT / "evaluate.py"),
        "-m",
        "benchmark=oxford5k",
        f"benchmark.reader.root={oxford.root}",
        "compression.fit_on=self",
        "compression.dim=2,4",
        "taps=[pool]",
        f"paths.data_dir={tmp_path / 'data'}",
        "extraction.num_workers=0",
        "extraction.progress=false",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
    ]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, text=True)
    report = (sweep / "report.md").read_text()
    assert "| oxford5k | efficientnet_lite0 | pool | " in report and "pca 2 | pca 4 |" in report
    assert (sweep / "report.png").is_file() and len(
        (sweep / "report.csv").read_text().splitlines()
    ) == 3
    # both jobs reused one extraction
    stored = (tmp_path / "data" / "codes" / "efficientnet_lite0" / "oxford5k").iterdir()
    assert [p.name for p in stored if not p.name.endswith(".lock")] == ["pool"]


def test_partial_benchmark_with_learned_whitening(cfg_evaluate, tmp_path, capsys):
    fx = write_oxford(tmp_path / "oxford5k", images_per_landmark=6, n_other=4)
    fx.files["all_souls_000001"].unlink()  # the image of query all_souls_1
    pairs = tmp_path / "pairs.tsv"
    linked = [
        ("all_souls_000002", "all_souls_000003", "all_souls"),
        ("all_souls_000004", "all_souls_000005", "all_souls"),
        ("radcliffe_camera_000001", "radcliffe_camera_000002", "radcliffe_camera"),
        ("radcliffe_camera_000003", "radcliffe_camera_000004", "radcliffe_camera"),
        ("all_souls_000001", "all_souls_000006", "all_souls"),  # no codes: skipped
    ]
    write_pairs(pairs, [Pair(a, b, c, 30) for a, b, c in linked])
    cfg = cfg_evaluate(
        [
            "benchmark=oxford5k",
            f"benchmark.reader.root={fx.root}",
            "benchmark.reader.partial=true",
            "compression=lw",
            "compression.dim=[null,4]",
            "compression.fit_on=self",
            f"compression.pairs_file={pairs}",
            "taps=[pool]",
        ],
    )
    run_evaluation(cfg)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["method"], r["dim"]) for r in results["rows"]] == [("none", 1280), ("lw", 4)]
    assert results["rows"][1]["compressor"]["pairs_used"] == 4
    assert results["queries"] == 3 and results["partial"]["queries"]["dropped_why"] == {
        "all_souls_1": "query image 'all_souls_000001' absent"
    }
    title = " ".join(capsys.readouterr().out.split())  # the table title wraps
    assert "oxford5k · efficientnet_lite0 · partial: not comparable with published figures" in title

"""The paper's largest gain in miniature (section 4): retraining a network on images related to
the retrieval task improves its codes. Slow: it trains for minutes (make test-slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from test_evaluate import evaluate_cfg

from ncl.jobs.evaluate import run_evaluation
from ncl.jobs.train import run_training

ROOT = Path(__file__).resolve().parents[1]


def demo_map(tmp_path: Path, model_overrides: list[str]) -> dict[str, float]:
    """mAP of the demo benchmark per compression (full, PCA 16, PCA 128) for one network."""
    run_evaluation(
        evaluate_cfg(tmp_path, [*model_overrides, "taps=[pool]", "compression.dim=[null,16,128]"])
    )
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    return {f"{r['method']}{r['dim']}": r["metrics"]["mAP"] for r in rows}


@pytest.mark.slow
def test_fine_tuning_on_the_demo_training_split_raises_the_demo_map(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=demo_finetune",
                f"paths.data_dir={tmp_path / 'data'}",
                f"paths.output_dir={tmp_path / 'run'}",
                "callbacks.rich_progress_bar=null",
            ],
        )
    run_training(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = demo_map(tmp_path, ["model=efficientnet_lite0"])
    after = demo_map(tmp_path, [f"model.name={checkpoint}"])
    assert after["none1280"] > before["none1280"] + 0.03, (before, after)
    assert after["pca16"] > before["pca16"] and after["pca128"] > before["pca128"], (before, after)

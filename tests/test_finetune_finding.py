"""The paper's largest gain in miniature (section 4): retraining a network on images related to
the retrieval task improves its codes. Slow: it trains for minutes (make test-slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncl.jobs.evaluate import run_evaluation
from ncl.jobs.train import run_training


def demo_map(cfg_evaluate, model_overrides: list[str]) -> dict[str, float]:
    """mAP of the demo benchmark per compression (full, PCA 16, PCA 128) for one network."""
    cfg = cfg_evaluate([*model_overrides, "taps=[pool]", "compression.dim=[null,16,128]"])
    run_evaluation(cfg)
    rows = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())["rows"]
    return {f"{r['method']}{r['dim']}": r["metrics"]["mAP"] for r in rows}


@pytest.mark.slow
def test_fine_tuning_on_the_demo_training_split_raises_the_demo_map(
    tmp_path, cfg_train, cfg_evaluate
):
    # the demo (generated on first use) in <tmp_path>/data, shared by training and evaluation
    cfg = cfg_train(
        [
            "experiment=demo_finetune",
            f"paths.output_dir={tmp_path / 'run'}",
            "callbacks.rich_progress_bar=null",
        ]
    )
    run_training(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = demo_map(cfg_evaluate, ["model=efficientnet_lite0"])
    after = demo_map(cfg_evaluate, [f"model.name={checkpoint}"])
    assert after["none1280"] > before["none1280"] + 0.03, (before, after)
    assert after["pca16"] > before["pca16"] and after["pca128"] > before["pca128"], (before, after)

"""Siamese fine-tuning in miniature (issue 13): training the whole network on the demo's mined
pairs with hard negatives improves its codes over the ImageNet network's, with the same pooling
(GeM, p = 3) and no compression. Slow: it mines pairs and trains for minutes (make test-slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncl.jobs.evaluate import run_evaluation
from ncl.jobs.mine_pairs import run_mining
from ncl.jobs.train import run_training


def demo_map(cfg_evaluate, overrides: list[str]) -> float:
    cfg = cfg_evaluate([*overrides, "compression=none", "gallery=false"])
    run_evaluation(cfg)
    rows = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())["rows"]
    (row,) = rows
    return row["metrics"]["mAP"]


@pytest.mark.slow
def test_siamese_fine_tuning_on_the_demo_beats_the_imagenet_codes(
    tmp_path, cfg_mine_pairs, cfg_train, cfg_evaluate
):
    # the demo (generated on first use) and its pairs in <tmp_path>/data, shared by all three
    run_mining(cfg_mine_pairs([]))
    cfg = cfg_train(
        [
            "experiment=siamese_demo",
            f"paths.output_dir={tmp_path / 'run'}",
            "callbacks.rich_progress_bar=null",
        ]
    )
    run_training(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = demo_map(cfg_evaluate, ["model=efficientnet_lite0", "pooling=gem", "taps=[conv]"])
    after = demo_map(cfg_evaluate, [f"model.name={checkpoint}", "taps=[global]"])
    assert after > before + 0.02, (before, after)

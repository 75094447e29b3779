"""`mine_pairs.py` behind its Hydra entry point."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ncl.data.images import ImageSet, folder_image_set
from ncl.features.keypoints import KeypointSettings
from ncl.jobs.config import build
from ncl.pairs.matching import MatchSettings
from ncl.pairs.mine import MiningResult, MiningSettings, mine_pairs

log = logging.getLogger(__name__)


def image_set(cfg: DictConfig) -> ImageSet:
    """`images.root` when given; otherwise the benchmark's training split (`benchmark.fit_on`),
    the benchmark's reader run first so that the demo is generated when missing."""
    if cfg.images.root:
        return folder_image_set(cfg.images.name or Path(cfg.images.root).name, cfg.images.root)
    build(cfg.benchmark.reader)
    fit_on = cfg.benchmark.fit_on
    return folder_image_set(cfg.images.name or fit_on.name, fit_on.root)


def settings(cfg: DictConfig) -> MiningSettings:
    keypoints = OmegaConf.to_container(cfg.keypoints, resolve=True)
    matching = OmegaConf.to_container(cfg.matching, resolve=True)
    assert isinstance(keypoints, dict) and isinstance(matching, dict)
    return MiningSettings(
        keypoints=KeypointSettings(**keypoints),
        matching=MatchSettings(**matching),
        min_inliers=cfg.min_inliers,
    )


def run_mining(cfg: DictConfig) -> MiningResult:
    images = image_set(cfg)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else Path(cfg.paths.data_dir) / "pairs" / images.name
    result = mine_pairs(
        images,
        out_dir,
        settings=settings(cfg),
        workers=cfg.workers or os.cpu_count() or 1,
        cache_dir=cfg.cache_dir,
    )
    totals = result.summary["totals"]
    log.info(
        "%s: %d pairs from %d of %d classes (%d edges, %d candidates; %d image pairs verified "
        "in %.1f s, %d classes reused) -> %s",
        images.name,
        totals["pairs"],
        totals["classes_with_pairs"],
        totals["classes"],
        totals["edges"],
        totals["candidates"],
        result.pairs_verified,
        result.seconds,
        result.classes_reused,
        result.pairs_file,
    )
    return result

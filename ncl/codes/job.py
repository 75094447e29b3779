"""`extract.py` behind its Hydra entry point."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from ncl.codes.extract import ExtractionSettings, extract_codes
from ncl.codes.store import CodeStore
from ncl.config import as_list
from ncl.data.images import ImageSet, database_image_set, folder_image_set, query_image_set
from ncl.models import create_backbone

log = logging.getLogger(__name__)


def image_sets(cfg: DictConfig) -> list[ImageSet]:
    if cfg.images.root:
        return [folder_image_set(cfg.images.name or Path(cfg.images.root).name, cfg.images.root)]
    benchmark = instantiate(cfg.benchmark.reader)
    sets = [database_image_set(benchmark)]
    if not benchmark.queries_in_database:
        sets.append(query_image_set(benchmark, cfg.crop_queries))
    if cfg.fit_set and cfg.benchmark.get("fit_on"):
        sets.append(folder_image_set(cfg.benchmark.fit_on.name, cfg.benchmark.fit_on.root))
    return sets


def run_extraction(cfg: DictConfig) -> None:
    store = CodeStore(cfg.paths.codes_dir)
    settings = ExtractionSettings(**cfg.extraction)
    taps = [str(t) for t in as_list(cfg.taps)]
    pretrained = cfg.model.get("pretrained", True)
    backbone = create_backbone(cfg.model.name, pretrained=pretrained)
    for images in image_sets(cfg):
        sets = extract_codes(
            images, cfg.model.name, taps, store, settings, backbone=backbone, pretrained=pretrained
        )
        for tap, codes in sets.items():
            failed = codes.meta.get("failed", [])
            log.info(
                "%s %s: %d x %d codes in %s%s",
                images.name,
                tap,
                len(codes),
                codes.dim,
                codes.path,
                f" ({len(failed)} unreadable left out)" if failed else "",
            )

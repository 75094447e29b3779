"""Parts that evaluate.py and extract.py both build from their config: the code source."""

from __future__ import annotations

from omegaconf import DictConfig

from ncl.codes.combine import CombinedTaps, base_taps, rename_parts
from ncl.codes.extraction import ExtractionSettings
from ncl.codes.neural import NeuralCodes
from ncl.codes.source import CodeSource
from ncl.codes.store import CodeStore
from ncl.jobs.config import as_list, build
from ncl.models import BackboneSpec
from ncl.models.descriptor import Descriptor
from ncl.models.pooling import Pooling


def check_options(cfg: DictConfig) -> None:
    """Build every part whose options can be checked without data, before any work starts
    (the benchmark reader may generate the demo, extraction writes codes): a bad value fails
    here, with the option's name and what it allows, and nothing is written."""
    settings = ExtractionSettings(**cfg.extraction)
    if cfg.get("search"):
        # an index's train_on image set is read once the benchmark is (the demo is generated)
        trains = "train_on" in (cfg.search.get("index") or {})
        build(cfg.search, **({"index": {"train_on": None}} if trains else {}))
    if cfg.get("distractors"):
        image_sets = [k for k in ("images", "like") if k in cfg.distractors]
        build(cfg.distractors, **dict.fromkeys(image_sets))
    if cfg.get("rerank"):
        build(cfg.rerank)
    if cfg.get("compression"):
        build(cfg.compression, fit_on=None)  # its image set is read once the benchmark is
    if not cfg.get("encoder"):
        build(cfg.model)
        taps = base_taps([str(t) for t in as_list(cfg.taps)])
        Descriptor(pooling(cfg), settings.scales).code_names(taps)


def pooling(cfg: DictConfig) -> Pooling | None:
    """The pooling of the `conv` map that `pooling=` selects (none: None)."""
    return build(cfg.pooling) if cfg.get("pooling") else None


def code_source(cfg: DictConfig, *, build_backbone: bool = False) -> CodeSource:
    """The code source a job's config asks for: the local-feature encoder `encoder` when one is
    selected, else the taps (plain or combined) of the network `model`. `build_backbone` builds
    the network now (extract.py always extracts something: a missing weights file fails first).
    With `pooling=<name>`, the `conv` tap is pooled and its codes are named after the pooling
    (and `extraction.scales`), in combinations too: `taps=[conv]` gives `conv-gem3`."""
    store = CodeStore(cfg.paths.codes_dir)
    if cfg.get("encoder"):
        return build(cfg.encoder)(store=store)
    backbone: BackboneSpec = build(cfg.model)
    settings = ExtractionSettings(**cfg.extraction)
    pool = pooling(cfg)
    descriptor = Descriptor(pool, settings.scales)
    taps = [rename_parts(str(t), descriptor.code_name) for t in as_list(cfg.taps)]
    source = NeuralCodes(
        backbone=backbone, taps=base_taps(taps), store=store, settings=settings, pooling=pool
    )
    if build_backbone and backbone.pretrained:
        source.build()
    return source if source.taps == taps else CombinedTaps(source, taps, store)

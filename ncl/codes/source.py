"""Code sources: where extract.py and evaluate.py get the code sets of an image set from.

Both jobs need one thing of a descriptor, whatever it is: for an image set, one code set per tap
in the code store. A `CodeSource` gives exactly that, so the holistic baselines of
`ncl.baselines` go through the same compression, search and protocols as neural codes.
`code_source(cfg)` picks one from the config: with `encoder=none` (the default) the taps of the
network `model` (combinations of them too, `ncl.codes.combine`), otherwise the local-feature
encoder `encoder` (bovw, vlad, sparse).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch
from omegaconf import DictConfig

from ncl.codes.combine import CombinedTaps, base_taps
from ncl.codes.extract import ExtractionSettings, extract_codes, stored_model_name
from ncl.codes.store import CodeSet, CodeStore
from ncl.config import as_list
from ncl.data.images import ImageSet
from ncl.models import Backbone, create_backbone

RANDOM_INIT_SEED = 0


class CodeSource(Protocol):
    """Code sets of image sets, one per tap, computed once and then read from the code store."""

    @property
    def name(self) -> str:
        """The "model" of results and reports, and the code store's first directory level."""
        ...

    @property
    def taps(self) -> list[str]: ...

    def codes(self, images: ImageSet) -> dict[str, CodeSet]:
        """The code set of `images` for every tap, in the store, extracted where missing."""
        ...


@dataclass
class NeuralCodes:
    """The activations of a network's taps (paper section 3), through `extract_codes`.

    `backbone=None` builds the network only when an image set has codes to extract. A randomly
    initialised network (`pretrained=False`) is built once, from a fixed seed: every image set
    (database, queries, fit set), in this run or a later one, is then encoded by the same one.
    """

    model: str
    taps: list[str]
    store: CodeStore
    settings: ExtractionSettings
    pretrained: bool = True
    backbone: Backbone | None = None

    @property
    def name(self) -> str:
        return stored_model_name(self.model, self.pretrained)

    def codes(self, images: ImageSet) -> dict[str, CodeSet]:
        if not self.pretrained and self.backbone is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                self.backbone = create_backbone(self.model, pretrained=False)
        return extract_codes(
            images,
            self.model,
            self.taps,
            self.store,
            self.settings,
            backbone=self.backbone,
            pretrained=self.pretrained,
        )


def encoder_selected(cfg: DictConfig) -> bool:
    """Whether the config asks for a local-feature baseline instead of a network's codes."""
    encoder = cfg.get("encoder")
    return bool(encoder and encoder.get("name"))


def code_source(cfg: DictConfig, *, build_backbone: bool = False) -> CodeSource:
    """The code source a job's config asks for; `build_backbone` builds the network now (for
    extract.py, which always extracts something) instead of when codes are found missing."""
    store = CodeStore(cfg.paths.codes_dir)
    if encoder_selected(cfg):
        # imported here: the baselines pull in OpenCV's SIFT, which neural codes never need
        from ncl.baselines.source import BaselineCodes

        if cfg.extraction.get("extra_rotation"):
            raise ValueError(
                "extraction.extra_rotation augments neural codes only; the baselines "
                f"(encoder={cfg.encoder.name}) do not support it"
            )
        return BaselineCodes.from_config(cfg.encoder, store)
    pretrained = bool(cfg.model.get("pretrained", True))
    taps = [str(t) for t in as_list(cfg.taps)]
    source = NeuralCodes(
        model=cfg.model.name,
        taps=base_taps(taps),
        store=store,
        settings=ExtractionSettings(**cfg.extraction),
        pretrained=pretrained,
    )
    if build_backbone and pretrained:
        source.backbone = create_backbone(source.model, pretrained=True)
    return source if source.taps == taps else CombinedTaps(source, taps, store)


def rotated(source: CodeSource, degrees: int) -> CodeSource:
    """`source` on images turned `degrees` more counter-clockwise (stored apart, as
    `<image set>_rot<degrees>`): e.g. Holidays' database at ±90° for the photos stored sideways."""
    if not isinstance(source, NeuralCodes):
        raise ValueError(
            "search.database_rotations applies to a network's plain taps only, not to "
            f"{type(source).__name__} (combined taps or a local-feature baseline)"
        )
    return replace(source, settings=replace(source.settings, extra_rotation=int(degrees)))

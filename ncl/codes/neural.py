"""Neural codes (paper section 3): the activations of a network's taps, as a code source."""

from __future__ import annotations

from dataclasses import dataclass, field

from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeSet, CodeStore
from ncl.data.images import ImageSet
from ncl.models import Backbone, BackboneSpec


@dataclass
class NeuralCodes:
    """The codes of `taps` of the network `backbone` describes.

    The network is built once, on the first image set with codes to extract (or given as
    `network`): a randomly initialised one (`pretrained=False`) then encodes every image set of
    the run (database, queries, fit set) with the same weights, and the fixed seed makes a later
    run's the same too.
    """

    backbone: BackboneSpec
    taps: list[str]
    store: CodeStore
    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    network: Backbone | None = None

    @property
    def name(self) -> str:
        return self.backbone.stored_name

    def build(self) -> Backbone:
        if self.network is None:
            self.network = self.backbone.build()
        return self.network

    def codes(self, images: ImageSet) -> dict[str, CodeSet]:
        extraction = Extraction(
            images,
            self.build,
            self.name,
            self.taps,
            self.store,
            self.settings,
            weights=self.backbone.weights,
        )
        return extraction.run()

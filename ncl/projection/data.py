"""Pairs of codes for learning the discriminative projection (paper section 5).

Positives are the mined pairs of matching photos (`ncl.pairs`, a `pairs.tsv`); negatives are
pairs of images of different classes, drawn afresh for every batch, `negatives_per_positive` of
them per positive. The codes are read from the code store: the code set of the mined image set
for one tap, extracted beforehand (`python extract.py`, or any `evaluate.py` run that fitted PCA
on that image set).

The class of an image is the first directory of its name, as in the class-folder layouts the
pairs are mined from. What W multiplies is prepared here once, for every image: L2-normalised
codes, or their PCA to `pre_pca_dim` dims when the projection is at least `pre_pca_from_dim`
dims (the paper: 4096-d codes projected directly to 16 and 32 dims, PCA-compressed to 1024 first
for 64 and 128).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from ncl.codes.pca import cached_pca_basis
from ncl.codes.store import CodeSet, read_codes
from ncl.compress.pca import PCA, PCABasis
from ncl.compress.projection import LearnedProjection, projection_file, projection_inputs
from ncl.io.names import class_of
from ncl.pairs import pairs_with_codes

PairBatch = tuple[Tensor, Tensor, Tensor]  # x_i, x_j, y in {+1, -1}


def image_classes(ids: list[str]) -> np.ndarray:
    """An integer class per image: the first directory of its name (`ncl.io.names.class_of`)."""
    names = [class_of(i) for i in ids]
    if None in names:
        bad = next(i for i, n in zip(ids, names, strict=True) if n is None)
        raise ValueError(f"image {bad!r} is in no class folder: pairs need <class>/<image> names")
    _, labels = np.unique(names, return_inverse=True)
    return labels


def different_class_pairs(labels: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """`count` random pairs (count x 2 indices) of images whose labels differ."""
    pairs = torch.randint(len(labels), (count, 2), generator=generator)
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    while same.any():  # redraw the second image of the pairs that fell in one class
        pairs[same, 1] = torch.randint(len(labels), (int(same.sum()),), generator=generator)
        same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    return pairs


class PairBatches(Dataset):
    """Indexed by a list of positive pairs (a whole batch at once, as the codes are in memory):
    returns those positives followed by freshly drawn negatives."""

    def __init__(
        self, inputs: Tensor, labels: Tensor, positives: Tensor, negatives_per_positive: int
    ) -> None:
        self.inputs = inputs
        self.labels = labels
        self.positives = positives
        self.negatives_per_positive = negatives_per_positive
        self.generator = torch.Generator().manual_seed(int(torch.initial_seed()) % 2**63)

    def __len__(self) -> int:
        return len(self.positives)

    def __getitem__(self, indices: list[int]) -> PairBatch:
        pos = self.positives[indices]
        neg = different_class_pairs(
            self.labels, len(indices) * self.negatives_per_positive, self.generator
        )
        pairs = torch.cat([pos, neg])
        y = torch.cat([torch.ones(len(pos)), -torch.ones(len(neg))])
        return self.inputs[pairs[:, 0]], self.inputs[pairs[:, 1]], y


class PairDataModule(pl.LightningDataModule):
    """Mined positive pairs and different-class negatives over one code set.

    `dim` is the projection's output dimension (it decides the PCA pre-step). A `val_fraction`
    of the positives is held out with fixed negatives to follow `val/loss` and `val/acc` (the
    share of pairs on the right side of the threshold).
    """

    def __init__(
        self,
        pairs_file: str,
        codes: str,
        dim: int,
        negatives_per_positive: int = 10,
        pre_pca_dim: int = 1024,
        pre_pca_from_dim: int = 64,
        val_fraction: float = 0.1,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.pairs_file = Path(pairs_file)
        self.codes_path = Path(codes)
        self.dim = int(dim)
        self.negatives_per_positive = int(negatives_per_positive)
        self.pre_pca_dim = int(pre_pca_dim) if self.dim >= pre_pca_from_dim else None
        self.val_fraction = float(val_fraction)
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    @cached_property
    def code_set(self) -> CodeSet:
        if not (self.codes_path / "codes.npy").is_file():
            raise FileNotFoundError(
                f"{self.codes_path}: no code set; extract the codes of the mined image set first "
                "(python extract.py images.root=<its folder> model=<model>)"
            )
        return read_codes(self.codes_path)

    @cached_property
    def pre_basis(self) -> PCABasis | None:
        if self.pre_pca_dim is None:
            return None
        return cached_pca_basis(self.code_set, self.pre_pca_dim)

    @cached_property
    def inputs(self) -> Tensor:
        """What W multiplies, for every image of the code set (float32, one row each)."""
        pre = None if self.pre_basis is None else PCA(self.pre_basis, self.pre_pca_dim)
        codes = np.asarray(self.code_set.codes, dtype=np.float32)
        return torch.from_numpy(projection_inputs(codes, pre))

    @property
    def input_dim(self) -> int:
        return self.inputs.shape[1]

    @cached_property
    def split(self) -> tuple[Tensor, Tensor, Tensor]:
        """Image labels, training positives and validation positives (index pairs)."""
        ids = list(self.code_set.ids)
        kept = pairs_with_codes(self.pairs_file, ids, self.codes_path)
        positives = torch.tensor(kept, dtype=torch.long)
        order = torch.randperm(len(positives), generator=torch.Generator().manual_seed(self.seed))
        n_val = round(len(positives) * self.val_fraction)
        labels = torch.from_numpy(image_classes(ids))
        return labels, positives[order[n_val:]], positives[order[:n_val]]

    def module_arguments(self) -> dict[str, Any]:
        """What sizes the module: the dimension of its inputs."""
        return {"input_dim": self.input_dim}

    def projection(self, weight: np.ndarray) -> LearnedProjection:
        """The compressor of a learned W, with this data's PCA pre-step."""
        return LearnedProjection(
            weight=weight,
            pre_basis=self.pre_basis,
            pre_dim=self.pre_pca_dim,
            info={"pairs": str(self.pairs_file), "codes": str(self.codes_path)},
        )

    @property
    def projection_path(self) -> Path:
        return projection_file(self.codes_path, self.dim)

    def initial_projection(self) -> tuple[Tensor, float]:
        """W from PCA-whitening of every image's inputs (paired or not: the whitening needs no
        labels, and a few hundred pairs would estimate it poorly), and the threshold b halfway
        between the mean squared distances of training positives and negatives under it."""
        labels, train, _ = self.split
        basis = PCABasis.fit(self.inputs.numpy(), self.dim)
        if basis.max_dim < self.dim:
            raise ValueError(
                f"{self.codes_path}: {len(self.inputs)} images support at most "
                f"{basis.max_dim} whitened dimensions, not {self.dim}"
            )
        weight = torch.from_numpy(PCA(basis, self.dim, whiten=True).projection_t.T.copy())
        generator = torch.Generator().manual_seed(self.seed)
        negatives = different_class_pairs(labels, len(train), generator)

        def mean_distance(pairs: Tensor) -> float:
            diff = (self.inputs[pairs[:, 0]] - self.inputs[pairs[:, 1]]) @ weight.T
            return float(diff.pow(2).sum(1).mean())

        return weight, 0.5 * (mean_distance(train) + mean_distance(negatives))

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        # batch_size=None: the dataset returns whole batches, indexed by the batch sampler
        return DataLoader(
            dataset, sampler=BatchSampler(sampler, self.batch_size, False), batch_size=None
        )

    def train_dataloader(self) -> DataLoader:
        labels, train, _ = self.split
        return self._loader(
            PairBatches(self.inputs, labels, train, self.negatives_per_positive), shuffle=True
        )

    def val_dataloader(self) -> DataLoader | list:
        labels, _, val = self.split
        if len(val) == 0:
            return []
        generator = torch.Generator().manual_seed(self.seed + 1)
        negatives = different_class_pairs(labels, len(val) * self.negatives_per_positive, generator)
        pairs = torch.cat([val, negatives])
        y = torch.cat([torch.ones(len(val)), -torch.ones(len(negatives))])
        batch = (self.inputs[pairs[:, 0]], self.inputs[pairs[:, 1]], y)
        return DataLoader([batch], batch_size=None)

"""Training tuples with hard negatives, re-mined every epoch (Radenović et al. 2016, cirtorch).

The data are a class-folder image set (`<root>/<class>/<image>`) and the pairs of matching
photos mined from it (`python mine_pairs.py`, a `pairs.tsv`). A tuple is (query, positive, n
negatives): the query and positive are a mined pair (both ways round when `symmetric`), the
negatives the query's hardest images of other classes under the network as it is at the start
of the epoch (`ncl.metric.mining`). So each epoch begins by describing the candidate pool
(all images, or `pool_size` of them drawn afresh) and the queries with the current network, in
eval mode and without gradients; the seconds this takes are logged as `mining/seconds`, beside
the pool's size, so its share of the epoch is visible.

Lightning asks for the training loader again every epoch only with
`trainer.reload_dataloaders_every_n_epochs=1`, which the siamese experiments set (anything else
is refused). Under DDP each process describes its `shard` of the images, the codes are gathered,
every process mines the same tuples from them (faiss on the CPU is deterministic, the draws are
seeded by seed and epoch) and Lightning's distributed sampler gives each its own part.

Images are resized whole to the network's input size and normalised as it was trained, the
extraction transform: training sees what retrieval will see. An image that cannot be read when
the pool is described is reported by name and left out of the pool and the pairs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ncl.data.images import ImageSet, ImageSetDataset, collate_skipping_failures, folder_image_set
from ncl.data.transforms import extraction_transform
from ncl.metric.mining import NO_NEGATIVE, gather_shards, hardest_negatives, shard
from ncl.pairs import pairs_with_codes
from ncl.projection.data import image_classes

log = logging.getLogger(__name__)

Describe = Callable[[Tensor], Tensor]
Transform = Callable[[Tensor], Tensor]


class TupleDataset(Dataset):
    """Item i: the images of tuple i, stacked ((2 + n) x 3 x H x W)."""

    def __init__(self, images: ImageSet, tuples: np.ndarray, transform: Transform) -> None:
        self.dataset = ImageSetDataset(images, transform)
        self.tuples = tuples

    def __len__(self) -> int:
        return len(self.tuples)

    def __getitem__(self, item: int) -> Tensor:
        views = []
        for index in self.tuples[item]:
            image, _ = self.dataset[int(index)]
            if image is None:
                raise ValueError(
                    f"{self.dataset.images.files[index]}: unreadable (it was read when the "
                    "epoch's pool was described; was it changed during training?)"
                )
            views.append(image)
        return torch.stack(views)


class TupleDataModule(pl.LightningDataModule):
    """Tuples of (query, positive, `negatives` hard negatives) over the pairs in `pairs_file` of
    the class-folder image set at `root`; `batch_size` tuples per batch and process.

    `queries`: how many pairs make queries each epoch (None: all); `pool_size`: how many images
    are candidates for negatives each epoch (None: all). Both are drawn afresh each epoch.
    """

    def __init__(
        self,
        pairs_file: str,
        root: str,
        negatives: int = 5,
        symmetric: bool = True,
        queries: int | None = None,
        pool_size: int | None = None,
        batch_size: int = 5,
        num_workers: int = 2,
        mining_batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if negatives < 1:
            raise ValueError(f"data.negatives must be at least 1, got {negatives}")
        self.pairs_file = Path(pairs_file)
        self.root = Path(root)
        self.negatives = int(negatives)
        self.symmetric = bool(symmetric)
        self.queries = queries
        self.pool_size = pool_size
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.mining_batch_size = int(mining_batch_size)
        self.seed = int(seed)
        self.transform: Transform | None = None
        self.unreadable: set[int] = set()
        self.mining_seconds: list[float] = []

    @cached_property
    def images(self) -> ImageSet:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.root}: no image set; tuples need the class-folder images the pairs were "
                "mined from (python mine_pairs.py builds and mines the demo's training split)"
            )
        return folder_image_set(self.root.name, self.root)

    @cached_property
    def classes(self) -> np.ndarray:
        """An integer class per image (its first folder)."""
        classes = image_classes(self.images.names)
        if len(np.unique(classes)) <= self.negatives:
            raise ValueError(
                f"{self.root}: {len(np.unique(classes))} classes, but {self.negatives} negatives "
                "of different classes (and the query's own) need more: lower data.negatives"
            )
        return classes

    @cached_property
    def pairs(self) -> np.ndarray:
        """P x 2 image indices of the mined pairs (both orders when `symmetric`)."""
        kept = np.asarray(pairs_with_codes(self.pairs_file, self.images.names, self.root))
        return np.concatenate([kept, kept[:, ::-1]]) if self.symmetric else kept

    def setup(self, stage: str) -> None:
        backbone = self.trainer.lightning_module.backbone
        self.transform = extraction_transform(backbone.mean, backbone.std, backbone.input_size)
        self.classes  # noqa: B018  (fails here, before any training, when there are too few)

    def draw(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The query pairs and the candidate pool of `epoch` (the same in every process)."""
        rng = np.random.default_rng([self.seed, epoch])
        readable = np.array([i not in self.unreadable for i in range(len(self.images))])
        pairs = self.pairs[readable[self.pairs].all(axis=1)]
        if self.queries is not None and self.queries < len(pairs):
            pairs = pairs[np.sort(rng.choice(len(pairs), self.queries, replace=False))]
        pool = np.flatnonzero(readable)
        if self.pool_size is not None and self.pool_size < len(pool):
            pool = np.sort(rng.choice(pool, self.pool_size, replace=False))
        return pairs, pool

    def describe(self, describe: Describe, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes of the images `indices` by `describe` (eval mode, no gradient), each process
        describing its shard, and which of them could be read; the same in every process."""
        trainer = self.trainer
        device = trainer.strategy.root_device
        local = shard(indices, trainer.global_rank, trainer.world_size)
        dataset = ImageSetDataset(self.images, self.transform, local)
        loader = DataLoader(
            dataset,
            batch_size=self.mining_batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_skipping_failures,
            pin_memory=device.type == "cuda",
        )
        found: dict[int, Tensor] = {}
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for images, index, failed in loader:
                self.unreadable.update(failed)
                if len(index):
                    codes = describe(images.to(device, memory_format=torch.channels_last))
                    found.update(zip(index.tolist(), codes.float(), strict=True))
        if not found:
            raise ValueError(f"{self.root}: none of {len(local)} images could be read")
        dim = next(iter(found.values())).shape[0]
        missing = torch.full((dim,), float("nan"), device=device)
        codes = torch.stack([found.get(int(i), missing) for i in local])
        codes = gather_shards(codes, len(indices), trainer.strategy.all_gather).cpu().numpy()
        readable = ~np.isnan(codes).any(axis=1)
        self.unreadable.update(int(i) for i in indices[~readable])
        return codes, readable

    def describe_in_eval_mode(
        self, net: torch.nn.Module, describe: Describe, indices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`describe` with `net` in eval mode (batch norm on its running statistics, no
        dropout), then back in the mode it was in."""
        was_training = net.training
        net.eval()
        try:
            return self.describe(describe, indices)
        finally:
            net.train(was_training)

    def mine(self, net: torch.nn.Module, describe: Describe, epoch: int) -> np.ndarray:
        """T x (2 + negatives) image indices: this epoch's tuples under the network as it is."""
        pairs, pool = self.draw(epoch)
        wanted = np.union1d(pool, pairs.ravel())
        codes, readable = self.describe_in_eval_mode(net, describe, wanted)
        row = {int(i): r for r, i in enumerate(wanted)}
        keep = [
            k for k, (q, p) in enumerate(pairs) if readable[row[int(q)]] and readable[row[int(p)]]
        ]
        pairs = pairs[keep]
        pool = pool[readable[[row[int(i)] for i in pool]]]
        query_rows = [row[int(q)] for q in pairs[:, 0]]
        negatives = hardest_negatives(
            codes[query_rows],
            codes[[row[int(i)] for i in pool]],
            self.classes[pairs[:, 0]],
            self.classes[pool],
            self.negatives,
        )
        if (negatives == NO_NEGATIVE).any():
            raise ValueError(
                f"the pool of {len(pool)} images holds fewer than {self.negatives} classes other "
                "than some query's: raise data.pool_size or lower data.negatives"
            )
        return np.concatenate([pairs, pool[negatives]], axis=1)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if trainer.reload_dataloaders_every_n_epochs != 1:
            raise ValueError(
                "hard negatives are re-mined every epoch: set "
                "trainer.reload_dataloaders_every_n_epochs=1"
            )
        net = trainer.lightning_module.backbone
        start = time.perf_counter()
        tuples = self.mine(net, net.describe, trainer.current_epoch)
        seconds = time.perf_counter() - start
        self.mining_seconds.append(seconds)
        log.info(
            "epoch %d: %d tuples mined in %.1f s (%d distinct images in them)",
            trainer.current_epoch,
            len(tuples),
            seconds,
            len(np.unique(tuples)),
        )
        for logger in trainer.loggers:
            logger.log_metrics({"mining/seconds": seconds}, step=trainer.global_step)
        return DataLoader(
            TupleDataset(self.images, tuples, self.transform),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=False,
            num_workers=self.num_workers,
            pin_memory=trainer.strategy.root_device.type == "cuda",
        )

    def whitening_fit(
        self, net: torch.nn.Module, describe: Describe
    ) -> tuple[np.ndarray, np.ndarray]:
        """Codes of the first epoch's images by `describe` and the pairs among them (rows into
        the codes): what the learned whitening that starts training is fitted on."""
        pairs, pool = self.draw(0)
        wanted = np.union1d(pool, pairs.ravel())
        codes, readable = self.describe_in_eval_mode(net, describe, wanted)
        row = {int(i): r for r, i in enumerate(wanted)}
        rows = np.array([[row[int(a)], row[int(b)]] for a, b in pairs])
        rows = rows[readable[rows].all(axis=1)]
        return codes[readable], _renumber(rows, readable)


def _renumber(rows: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Rows into an array, as rows into the same array with only its `kept` rows."""
    new = np.cumsum(kept) - 1
    return new[rows]

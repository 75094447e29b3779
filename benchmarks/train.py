"""Training throughput: the Lightning path of train.py against a raw PyTorch loop, same run.

python -m benchmarks.train [--batch-size 32] [--steps 8] [--rounds 3] [--no-jpeg]
python -m benchmarks.train --siamese [--tuples 5] [--pool 120]

Both train the paper's AlexNet at 224x224 with the module's SGD on the CPU: the raw loop is
forward, cross-entropy, backward, step on one batch of in-memory tensors; the Lightning path is
`ClassifierModule` under a `pl.Trainer` (metrics, logging to CSV, progress bar) fed by a
DataLoader over the same kind of in-memory tensors, so the ratio is the framework's overhead.
A third row trains from JPEG files through `LabelledDataModule` (decoding and augmentation
included), for scale. Each method runs `rounds` times, interleaved (this machine may be shared),
and the median images/s is reported; the first `warmup` steps of each run are not timed.

`--siamese` measures siamese fine-tuning instead (`ncl.metric`), EfficientNet-Lite0 with GeM:
a training step of `MetricLearningModule` under a Trainer on in-memory tuples (query, positive,
5 negatives) against the raw loop of the same network, loss and Adam (batch norm frozen and
channels_last in both); and an epoch's hard-negative re-mining (`TupleDataModule.mine`: the pool
described, faiss, the tuples) against one extraction of the same JPEG pool by `extract.py`'s
`Extraction` and by a bare no-grad loop over the same loader.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.datamodule import LabelledDataModule
from ncl.data.images import (
    ImageSetDataset,
    collate_skipping_failures,
)
from ncl.data.labelled import ClassFolderLayout
from ncl.data.transforms import extraction_transform
from ncl.metric.losses import ContrastiveLoss
from ncl.metric.module import MetricLearningModule, freeze_batchnorm
from ncl.metric.tuples import TupleDataModule
from ncl.models import create_backbone
from ncl.models.retrieval import GLOBAL_TAP
from ncl.modules.classifier import ClassifierModule
from ncl.pairs import Pair, write_pairs

NUM_CLASSES = 1000
SIZE = 224
SGD = partial(torch.optim.SGD, lr=0.01, momentum=0.9, weight_decay=5e-4)


def raw_loop(batch_size: int, steps: int, warmup: int) -> float:
    """Images/s of forward + backward + step on one in-memory batch."""
    torch.manual_seed(0)
    net = create_backbone("alexnet", pretrained=False, num_classes=NUM_CLASSES).train()
    optimizer = SGD(net.parameters())
    images = torch.randn(batch_size, 3, SIZE, SIZE)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,))
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(images), labels).backward()
        optimizer.step()
    return batch_size * steps / (time.perf_counter() - start)


class StepClock(Callback):
    """Wall time from the end of the warm-up steps to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.end = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def timed_trainer(clock: StepClock, max_steps: int, log_dir: Path) -> pl.Trainer:
    """A CPU Trainer for `max_steps` training steps, timed by `clock`, logging every step."""
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        limit_val_batches=0,
        logger=CSVLogger(log_dir, name="bench"),
        callbacks=[clock],
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )


def fit(loader_or_data, batch_size: int, steps: int, warmup: int, log_dir: Path) -> float:
    """Images/s of `ClassifierModule` under a Trainer on a DataLoader or a DataModule."""
    torch.manual_seed(0)
    module = ClassifierModule("alexnet", num_classes=NUM_CLASSES, optimizer=SGD)
    clock = StepClock(warmup)
    trainer = timed_trainer(clock, warmup + steps, log_dir)
    if isinstance(loader_or_data, LabelledDataModule):
        trainer.fit(module, datamodule=loader_or_data)
    else:
        trainer.fit(module, train_dataloaders=loader_or_data)
    return batch_size * steps / (clock.end - clock.start)


def tensor_loader(batch_size: int, steps: int, warmup: int) -> DataLoader:
    n = batch_size * (warmup + steps)
    data = TensorDataset(torch.randn(n, 3, SIZE, SIZE), torch.randint(0, NUM_CLASSES, (n,)))
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=lambda items: collate_skipping_failures([(x, int(y)) for x, y in items]),
    )


def jpeg_datamodule(root: Path, batch_size: int, steps: int, warmup: int) -> LabelledDataModule:
    """Enough 500x375 JPEGs (ImageNet's typical size) in 10 class folders for the run."""
    rng = np.random.default_rng(0)
    n = batch_size * (warmup + steps)
    for i in range(n):
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        image = cv2.GaussianBlur(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(folder / f"{i}.jpg"), image)
    layout = ClassFolderLayout(str(root), val_fraction=0.0)
    return LabelledDataModule(layout, batch_size=batch_size, num_workers=1)


TUPLE = 7  # query, positive, 5 negatives
ADAM = partial(torch.optim.Adam, lr=1e-6)


def siamese_module() -> MetricLearningModule:
    torch.manual_seed(0)
    return MetricLearningModule("efficientnet_lite0", ContrastiveLoss(), optimizer=ADAM)


def siamese_raw_loop(tuples: int, steps: int, warmup: int) -> float:
    """Images/s of the same network, loss and optimiser in a bare loop."""
    net = siamese_module().backbone.to(memory_format=torch.channels_last).train()
    freeze_batchnorm(net)
    loss_fn = ContrastiveLoss()
    body, head = list(net.body_parameters()), list(net.head_parameters())
    optimizer = ADAM([{"params": body}, {"params": head, "lr": 1e-5, "weight_decay": 0.0}])
    batch = torch.randn(tuples * TUPLE, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net.describe(batch).view(tuples, TUPLE, -1)).backward()
        optimizer.step()
    return tuples * TUPLE * steps / (time.perf_counter() - start)


def siamese_fit(tuples: int, steps: int, warmup: int, log_dir: Path) -> float:
    """Images/s of `MetricLearningModule` under a Trainer on in-memory tuples."""
    module = siamese_module()
    clock = StepClock(warmup)
    data = torch.randn(tuples * (warmup + steps), TUPLE, 3, SIZE, SIZE)
    trainer = timed_trainer(clock, warmup + steps, log_dir)
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=tuples))
    return tuples * TUPLE * steps / (clock.end - clock.start)


def jpeg_pool(root: Path, images: int) -> TupleDataModule:
    """`images` 500x375 JPEGs in 20 class folders, a pair per class, as tuple data."""
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "pool" / f"class_{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        image = cv2.GaussianBlur(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(folder / f"{i}.jpg"), image)
    pairs = [Pair(f"class_{c}/{c}", f"class_{c}/{c + 20}", f"class_{c}", 20) for c in range(20)]
    write_pairs(root / "pairs.tsv", pairs)
    return TupleDataModule(str(root / "pairs.tsv"), str(root / "pool"), num_workers=1)


def mining_seconds(data: TupleDataModule, module: MetricLearningModule) -> float:
    """One epoch's re-mining: the pool described, the hard negatives, the tuples."""
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False)
    data.trainer = trainer
    net = module.backbone
    data.transform = extraction_transform(net.mean, net.std, net.input_size)
    start = time.perf_counter()
    data.mine(net, net.describe, epoch=0)
    return time.perf_counter() - start


def extraction_seconds(data: TupleDataModule, module: MetricLearningModule, root: Path) -> float:
    """One extraction of the pool by `extract.py`'s `Extraction` (a fresh code store)."""
    settings = ExtractionSettings(batch_size=data.mining_batch_size, num_workers=1, progress=False)
    start = time.perf_counter()
    Extraction(data.images, module.backbone, "bench", [GLOBAL_TAP], CodeStore(root), settings).run()
    seconds = time.perf_counter() - start
    shutil.rmtree(root)
    return seconds


def bare_loop_seconds(data: TupleDataModule, module: MetricLearningModule) -> float:
    """One no-grad pass of the network over the pool, through the same loader as mining."""
    net = module.backbone.eval()
    dataset = ImageSetDataset(data.images, extraction_transform(net.mean, net.std, net.input_size))
    loader = DataLoader(
        dataset,
        batch_size=data.mining_batch_size,
        num_workers=1,
        collate_fn=collate_skipping_failures,
    )
    start = time.perf_counter()
    with torch.no_grad():
        for images, _, _ in loader:
            net.describe(images.contiguous(memory_format=torch.channels_last))
    return time.perf_counter() - start


def siamese_main(args: argparse.Namespace) -> None:
    t, steps, warmup = args.tuples, args.steps, args.warmup
    rates: dict[str, list[float]] = {"raw": [], "lightning": []}
    seconds: dict[str, list[float]] = {"mining": [], "extraction": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = jpeg_pool(tmp / "jpeg", args.pool)
        module = siamese_module().to(memory_format=torch.channels_last)
        for r in range(args.rounds):
            rates["raw"].append(siamese_raw_loop(t, steps, warmup))
            rates["lightning"].append(siamese_fit(t, steps, warmup, tmp))
            seconds["bare"].append(bare_loop_seconds(data, module))
            seconds["mining"].append(mining_seconds(data, module))
            seconds["extraction"].append(extraction_seconds(data, module, tmp / f"codes{r}"))
    raw = statistics.median(rates["raw"])
    print(
        f"\nEfficientNet-Lite0 + GeM, {SIZE}x{SIZE}, {t} tuples of {TUPLE} images a step, "
        f"{steps} timed steps, CPU ({torch.get_num_threads()} threads), median of "
        f"{args.rounds} interleaved rounds\n"
    )
    print("| siamese step | images/s (median) | runs | vs raw loop |")
    print("|---|---|---|---|")
    labels = {"raw": "raw loop", "lightning": "Lightning `MetricLearningModule`"}
    for key, label in labels.items():
        median = statistics.median(rates[key])
        runs = ", ".join(f"{r:.1f}" for r in rates[key])
        print(f"| {label}, in-memory tuples | {median:.1f} | {runs} | {median / raw:.2f}x |")
    extraction = statistics.median(seconds["extraction"])
    print(f"\nPool of {args.pool} JPEGs (500x375), batch {data.mining_batch_size}, 1 worker\n")
    print("| one pass over the pool | seconds (median) | runs | vs `Extraction` |")
    print("|---|---|---|---|")
    labels = {
        "extraction": "`Extraction` (extract.py), one code set",
        "bare": "bare no-grad loop, same loader",
        "mining": "re-mining an epoch (`TupleDataModule.mine`)",
    }
    for key, label in labels.items():
        median = statistics.median(seconds[key])
        runs = ", ".join(f"{s:.1f}" for s in seconds[key])
        print(f"| {label} | {median:.1f} | {runs} | {median / extraction:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-jpeg", action="store_true", help="leave out the JPEG row")
    parser.add_argument("--siamese", action="store_true", help="siamese steps and re-mining")
    parser.add_argument("--tuples", type=int, default=5, help="tuples a siamese step")
    parser.add_argument("--pool", type=int, default=120, help="images of the re-mined pool")
    args = parser.parse_args()
    if args.siamese:
        siamese_main(args)
        return
    b, steps, warmup = args.batch_size, args.steps, args.warmup
    rates: dict[str, list[float]] = {"raw": [], "lightning": [], "jpeg": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jpegs = None if args.no_jpeg else jpeg_datamodule(tmp / "jpeg", b, steps, warmup)
        for _ in range(args.rounds):
            rates["raw"].append(raw_loop(b, steps, warmup))
            rates["lightning"].append(fit(tensor_loader(b, steps, warmup), b, steps, warmup, tmp))
            if jpegs is not None:
                rates["jpeg"].append(fit(jpegs, b, steps, warmup, tmp))
    raw = statistics.median(rates["raw"])
    print(
        f"\nAlexNet (paper), {SIZE}x{SIZE}, batch {b}, {steps} timed steps, CPU "
        f"({torch.get_num_threads()} threads), median of {args.rounds} interleaved rounds\n"
    )
    print("| path | images/s (median) | runs | vs raw loop |")
    print("|---|---|---|---|")
    labels = {
        "raw": "raw loop, in-memory tensors",
        "lightning": "Lightning `ClassifierModule`, in-memory tensors",
        "jpeg": "Lightning + `LabelledDataModule`, JPEG files (1 worker)",
    }
    for key, label in labels.items():
        if rates[key]:
            median = statistics.median(rates[key])
            runs = ", ".join(f"{r:.1f}" for r in rates[key])
            print(f"| {label} | {median:.1f} | {runs} | {median / raw:.2f}x |")


if __name__ == "__main__":
    main()

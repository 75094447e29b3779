"""Training throughput: the Lightning path of train.py against a raw PyTorch loop, same run.

python -m benchmarks.train [--batch-size 32] [--steps 8] [--rounds 3] [--no-jpeg]

Both train the paper's AlexNet at 224x224 with the module's SGD on the CPU: the raw loop is
forward, cross-entropy, backward, step on one batch of in-memory tensors; the Lightning path is
`ClassifierModule` under a `pl.Trainer` (metrics, logging to CSV, progress bar) fed by a
DataLoader over the same kind of in-memory tensors, so the ratio is the framework's overhead.
A third row trains from JPEG files through `LabelledDataModule` (decoding and augmentation
included), for scale. Each method runs `rounds` times, interleaved (this machine may be shared),
and the median images/s is reported; the first `warmup` steps of each run are not timed.
"""

from __future__ import annotations

import argparse
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

from ncl.data.datamodule import LabelledDataModule
from ncl.data.images import collate_skipping_failures
from ncl.data.labelled import ClassFolderLayout
from ncl.models import create_backbone
from ncl.modules.classifier import ClassifierModule

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


def fit(loader_or_data, batch_size: int, steps: int, warmup: int, log_dir: Path) -> float:
    """Images/s of `ClassifierModule` under a Trainer on a DataLoader or a DataModule."""
    torch.manual_seed(0)
    module = ClassifierModule("alexnet", num_classes=NUM_CLASSES, optimizer=SGD)
    clock = StepClock(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=CSVLogger(log_dir, name="bench"),
        callbacks=[clock],
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-jpeg", action="store_true", help="leave out the JPEG row")
    args = parser.parse_args()
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

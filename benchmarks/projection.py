"""Training time of the discriminative projection to convergence, against a plain torch loop.

python -m benchmarks.projection [--pairs 100000] [--input-dim 1024] [--dim 32]

Generated data: `--pairs` positive pairs over twice as many 1024-d codes in classes of 4 images
(class centres in a 32-d subspace, noise of a third of their spread everywhere), written as a code set and a pairs.tsv, as
the miner and the extractor would. *ncl*: `ProjectionModule` + `PairDataModule` under a Lightning
Trainer (10 negatives per positive, batches of 1024 positives, early stopping on val/acc with
patience 2: "convergence"); *plain loop*: the same hinge loss, SGD and batches in a bare torch
loop for the same number of steps, from the same initialisation (PCA-whitening, timed in both),
without validation. Reported: epochs and wall time to convergence, and steps/s of
both in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping

from ncl.codes.store import write_codes
from ncl.pairs import Pair, write_pairs
from ncl.projection.data import PairDataModule
from ncl.projection.module import ProjectionModule, hinge_loss


def generate(root: Path, pairs: int, input_dim: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    images = 2 * pairs
    classes = images // 4
    centres = rng.normal(scale=0.5, size=(classes, 32)).astype(np.float32)
    codes = rng.normal(scale=0.3, size=(images, input_dim)).astype(np.float32)
    labels = np.repeat(np.arange(classes), 4)
    codes[:, :32] = centres[labels] + rng.normal(scale=0.1, size=(images, 32))
    ids = [f"c{c:06d}/{i}" for i, c in enumerate(labels)]
    write_codes(root / "codes", ids, codes)
    write_pairs(
        root / "pairs.tsv",
        (Pair(ids[i], ids[i + 1], ids[i].split("/")[0], 20) for i in range(0, images, 2)),
    )
    return root / "codes", root / "pairs.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--input-dim", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(2)
    pl.seed_everything(0)
    sgd = partial(torch.optim.SGD, lr=1.0, momentum=0.9)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        codes, pairs = generate(Path(tmp), args.pairs, args.input_dim)
        generated = time.perf_counter() - t
        data = PairDataModule(
            str(pairs),
            str(codes),
            dim=args.dim,
            pre_pca_from_dim=10**9,
            batch_size=args.batch_size,
            negatives_per_positive=10,
        )
        module = ProjectionModule(dim=args.dim, input_dim=data.input_dim, optimizer=sgd)
        trainer = pl.Trainer(
            accelerator="cpu",
            max_epochs=50,
            callbacks=[EarlyStopping("val/acc", mode="max", patience=2)],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        t = time.perf_counter()
        trainer.fit(module, datamodule=data)
        ncl_seconds = time.perf_counter() - t
        steps = trainer.global_step
        val_acc = float(trainer.callback_metrics["val/acc"])

        t, done = time.perf_counter(), 0
        initial_weight, initial_threshold = data.initial_projection()
        weight = initial_weight.clone().requires_grad_()
        threshold = torch.tensor(initial_threshold, requires_grad=True)
        optimizer = sgd(params=[weight, threshold])
        loader = data.train_dataloader()
        while done < steps:
            for x_i, x_j, y in loader:
                optimizer.zero_grad()
                hinge_loss(weight, threshold, x_i, x_j, y).backward()
                optimizer.step()
                done += 1
                if done == steps:
                    break
        plain_seconds = time.perf_counter() - t

    print(
        f"\n{args.pairs:,} positive pairs (+10 negatives each) of {args.input_dim}-d codes -> "
        f"{args.dim} dims, batches of {args.batch_size} positives, CPU, "
        f"{torch.get_num_threads()} threads; data generated in {generated:.1f}s\n"
    )
    print("| path | epochs | steps | seconds | steps/s | val/acc | vs plain |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| ncl (Lightning, early stopping) | {trainer.current_epoch} | {steps} | "
        f"{ncl_seconds:.1f} | {steps / ncl_seconds:.1f} | {val_acc:.3f} | "
        f"{(steps / ncl_seconds) / (steps / plain_seconds):.2f}x |"
    )
    print(
        f"| plain torch loop, same steps | - | {steps} | {plain_seconds:.1f} | "
        f"{steps / plain_seconds:.1f} | - | 1.00x |"
    )


if __name__ == "__main__":
    main()

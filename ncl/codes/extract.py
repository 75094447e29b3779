"""Extraction: images -> code sets, one forward pass for several taps.

Lightning's `predict` runs the backbone on one or many devices; `ShardWriter` saves each
process's codes in small shards as they come, atomically, so an interrupted run resumes with the
images it has not done yet. When every image is done the shards are merged, in image-set order
and de-duplicated by index (a DistributedSampler pads the last batch with repeats), into one
code set per tap. Unreadable images are left out and listed in each set's meta.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from ncl.atomic import save_npz_atomically
from ncl.codes.store import CodeSet, CodeStore, finish_code_set, read_codes, staging_dir
from ncl.data.images import ImageSet, ImageSetDataModule
from ncl.data.transforms import extraction_transform
from ncl.models import Backbone, create_backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionSettings:
    """How to run an extraction; none of these change the codes except `dtype`."""

    batch_size: int = 32
    num_workers: int = 2
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    dtype: str = "float32"
    shard_size: int = 1024
    progress: bool = True
    extra_rotation: int = 0


class CodeExtractor(pl.LightningModule):
    def __init__(self, backbone: Backbone, taps: Sequence[str]) -> None:
        super().__init__()
        # channels_last for weights and inputs: the faster convolution kernels on CPU and GPU
        self.backbone = backbone.to(memory_format=torch.channels_last)
        self.taps = list(taps)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, indices, failed = batch
        if images.numel() == 0:
            return {"index": indices, "failed": failed, "codes": {}}
        images = images.to(memory_format=torch.channels_last)
        codes = self.backbone.codes(images, self.taps)
        return {
            "index": indices,
            "failed": failed,
            "codes": {t: c.float().cpu() for t, c in codes.items()},
        }


class ShardWriter(BasePredictionWriter):
    """Buffers predictions and writes `shard-<rank>-<n>.npz` files every `shard_size` images."""

    def __init__(self, partial_dir: Path, taps: Sequence[str], shard_size: int, dtype: str) -> None:
        super().__init__(write_interval="batch")
        self.partial_dir = partial_dir
        self.taps = list(taps)
        self.shard_size = shard_size
        self.dtype = np.dtype(dtype)
        self.buffer: list[dict[str, Any]] = []
        self.buffered = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        self.buffer.append(prediction)
        self.buffered += len(prediction["index"]) + len(prediction["failed"])
        if self.buffered >= self.shard_size:
            self.flush(trainer.global_rank)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.flush(trainer.global_rank)

    def flush(self, rank: int) -> None:
        if not self.buffer:
            return
        index = np.concatenate([p["index"].numpy() for p in self.buffer]).astype(np.int64)
        failed = np.array([i for p in self.buffer for i in p["failed"]], dtype=np.int64)
        arrays = {"index": index, "failed": failed}
        for tap in self.taps:
            parts = [p["codes"][tap].numpy() for p in self.buffer if p["codes"]]
            arrays[f"tap_{tap}"] = (
                np.concatenate(parts).astype(self.dtype) if parts else np.empty((0, 0), self.dtype)
            )
        n = len(list(self.partial_dir.glob(f"shard-{rank}-*.npz")))
        target = self.partial_dir / f"shard-{rank}-{n:06d}.npz"
        save_npz_atomically(target, **arrays)
        self.buffer, self.buffered = [], 0


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Extraction is inference: Lightning's start-up banners and tips are noise there."""
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=".*persistent_workers.*")
            yield
    finally:
        logger.setLevel(level)


def _shards(partial_dir: Path) -> list[Path]:
    return sorted(partial_dir.glob("shard-*.npz"))


def _done_indices(partial_dir: Path) -> set[int]:
    done: set[int] = set()
    for shard in _shards(partial_dir):
        with np.load(shard) as f:
            done.update(f["index"].tolist())
            done.update(f["failed"].tolist())
    return done


def _source_key(images: ImageSet, model: str, settings: ExtractionSettings) -> str:
    """What the codes depend on: the images (content stand-ins), the network and its weights
    file where it is one, the extra rotation and the stored dtype."""
    weights = Path(model)
    stamp = f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}" if weights.is_file() else ""
    payload = json.dumps(
        [images.fingerprint(), model, stamp, settings.extra_rotation, settings.dtype]
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def stored_model_name(model: str, pretrained: bool = True) -> str:
    """The model's name in the code store and in results: a randomly initialised network's codes
    go under `<model>-random-init`, so they never mix with the trained network's."""
    return model if pretrained else f"{model}-random-init"


def extract_codes(
    images: ImageSet,
    model: str,
    taps: Sequence[str],
    store: CodeStore,
    settings: ExtractionSettings = ExtractionSettings(),
    backbone: Backbone | None = None,
    pretrained: bool = True,
) -> dict[str, CodeSet]:
    """Code sets of `images` for each tap, extracting only those not in `store` yet.

    `pretrained=False` extracts with a randomly initialised network (a baseline), stored under
    `stored_model_name(model, False)`; pass the same `backbone` for every image set, or the sets
    are extracted by different random networks.
    """
    if not pretrained:
        backbone = backbone or create_backbone(model, pretrained=False)
        model = stored_model_name(model, pretrained)
    image_set = (
        images.name
        if not settings.extra_rotation
        else f"{images.name}_rot{settings.extra_rotation}"
    )
    key = _source_key(images, model, settings)
    missing = [t for t in taps if not _current(store, model, image_set, t, key)]
    if missing:
        _extract(images, image_set, model, missing, store, settings, backbone, key)
    return {t: store.read(model, image_set, t) for t in taps}


def _current(store: CodeStore, model: str, image_set: str, tap: str, key: str) -> bool:
    if not store.exists(model, image_set, tap):
        return False
    if store.read(model, image_set, tap).meta.get("source_key") != key:
        log.info(
            "%s/%s/%s: images or weights changed since extraction; extracting again",
            model,
            image_set,
            tap,
        )
        return False
    return True


def _extract(
    images: ImageSet,
    image_set: str,
    model: str,
    taps: Sequence[str],
    store: CodeStore,
    settings: ExtractionSettings,
    backbone: Backbone | None,
    key: str,
) -> None:
    # published weights or a checkpoint: never silently a random network
    backbone = backbone if backbone is not None else create_backbone(model, pretrained=True)
    backbone.eval()
    taps_key = hashlib.sha1(" ".join(sorted(taps)).encode()).hexdigest()[:6]
    partial_dir = store.path(model, image_set, f".partial-{key}-{taps_key}")
    partial_dir.mkdir(parents=True, exist_ok=True)
    done = _done_indices(partial_dir)
    todo = [i for i in range(len(images)) if i not in done]
    if done:
        log.info(
            "resuming %s/%s: %d of %d images already done", model, image_set, len(done), len(images)
        )
    if todo:
        log.info(
            "extracting %s: %d images with %s, taps %s",
            image_set,
            len(todo),
            model,
            ", ".join(taps),
        )
        data = ImageSetDataModule(
            images,
            extraction_transform(backbone.mean, backbone.std, backbone.input_size),
            indices=todo,
            batch_size=settings.batch_size,
            num_workers=settings.num_workers,
            extra_rotation=settings.extra_rotation,
        )
        with quiet_lightning():
            trainer = pl.Trainer(
                accelerator=settings.accelerator,
                devices=settings.devices,
                strategy=settings.strategy,
                precision=settings.precision,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=settings.progress,
                enable_model_summary=False,
                callbacks=[ShardWriter(partial_dir, taps, settings.shard_size, settings.dtype)],
            )
            trainer.predict(
                CodeExtractor(backbone, taps), datamodule=data, return_predictions=False
            )
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            left = len(images) - len(_done_indices(partial_dir))
            if trainer.interrupted or left:
                raise RuntimeError(
                    f"extraction of {image_set} stopped with {left} images to go; "
                    f"run the same command again to resume from {partial_dir}"
                )
            _publish(partial_dir, images, image_set, model, taps, store, settings, backbone, key)
        # the other ranks read the code sets only once rank 0 has published them
        trainer.strategy.barrier()
    else:
        _publish(partial_dir, images, image_set, model, taps, store, settings, backbone, key)


def _publish(
    partial_dir: Path,
    images: ImageSet,
    image_set: str,
    model: str,
    taps: Sequence[str],
    store: CodeStore,
    settings: ExtractionSettings,
    backbone: Backbone,
    key: str,
) -> None:
    meta = {
        "model": model,
        "backbone": backbone.config,
        "image_set": image_set,
        "source_key": key,
        "transform": {
            "resize": [backbone.input_size, backbone.input_size],
            "crop": "none (aspect ratio not kept)",
            "mean": list(backbone.mean),
            "std": list(backbone.std),
            "query_boxes": images.boxes is not None and any(b is not None for b in images.boxes),
            "rotations": len(images.rotations),
            "extra_rotation": settings.extra_rotation,
        },
    }
    _merge(partial_dir, images, model, image_set, taps, store, settings.dtype, meta)
    shutil.rmtree(partial_dir, ignore_errors=True)


def _merge(
    partial_dir: Path,
    images: ImageSet,
    model: str,
    image_set: str,
    taps: Sequence[str],
    store: CodeStore,
    dtype: str,
    meta: dict[str, Any],
) -> None:
    """Shards -> one code set per tap, rows in image-set order, each image once."""
    shards = _shards(partial_dir)
    position = np.full(len(images), -1, dtype=np.int64)
    failed: set[int] = set()
    for shard in shards:
        with np.load(shard) as f:
            failed.update(f["failed"].tolist())
            position[f["index"]] = 0
    kept = np.flatnonzero(position >= 0)
    position[kept] = np.arange(len(kept))
    failed_names = sorted(images.names[i] for i in failed if position[i] < 0)
    ids = [images.names[i] for i in kept]
    if failed_names:
        log.warning(
            "%d unreadable image(s) left out of %s: %s",
            len(failed_names),
            image_set,
            failed_names[:10],
        )
    for tap in taps:
        with staging_dir(store.path(model, image_set, tap)) as tmp:
            dim = None
            out = None
            for shard in shards:
                with np.load(shard) as f:
                    codes = f[f"tap_{tap}"]
                    if codes.size == 0:
                        continue
                    if out is None:
                        dim = codes.shape[1]
                        out = np.lib.format.open_memmap(
                            tmp / "codes.npy", mode="w+", dtype=dtype, shape=(len(ids), dim)
                        )
                    out[position[f["index"]]] = codes
            if out is None:
                raise RuntimeError(f"{images.name}: no image could be read, nothing to write")
            out.flush()
            del out
            finish_code_set(tmp, ids, dim, dtype, {**meta, "tap": tap, "failed": failed_names})
        read_codes(store.path(model, image_set, tap))

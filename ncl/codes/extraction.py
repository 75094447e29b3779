"""Extraction: images -> code sets, one forward pass for several taps.

Lightning's `predict` runs the backbone on one or many devices; `ShardWriter` saves each
process's codes in small shards as they come, atomically, so an interrupted run resumes with the
images it has not done yet. When every image is done the shards are merged, in image-set order
and de-duplicated by index (a DistributedSampler pads the last batch with repeats), into one
code set per tap. Unreadable images are left out and listed in each set's meta.json. A stale
code set lends the codes of its unchanged images (`ncl.codes.incremental`): only new or changed
images are coded again.

The `conv` map tap is pooled before it is stored, at one scale or several (`extraction.scales`):
`ncl.models.descriptor` computes the codes and names their code sets (`conv-gem3`).
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter, RichProgressBar
from torch import nn

from ncl.atomic import save_npz_atomically
from ncl.cache import Artifact, digest, lock_for
from ncl.codes.engines import compute_dtype, engine_module, resolve_engine
from ncl.codes.incremental import carry_over, write_stamps
from ncl.codes.store import (
    CODE_DTYPES,
    CodeSet,
    CodeSetError,
    CodeStore,
    allocate_codes,
    code_set_meta,
    read_codes,
    write_ids,
)
from ncl.data.images import DECODES, ImageSet, ImageSetDataModule
from ncl.data.transforms import MultiScale, extraction_transform
from ncl.models import Backbone
from ncl.models.descriptor import Descriptor, check_scales
from ncl.models.pooling import Pooling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionSettings:
    """How to run an extraction; none of these change the codes except `dtype`, `scales` (the
    image sizes, relative to the network's input size, whose pooled `conv` codes are averaged:
    multi-scale, `ncl.models.descriptor`), a reduced `precision` (its codes are a code set of
    their own) and `decode` (`reduced`: JPEGs much larger than the network's input decoded at
    1/2, 1/4 or 1/8 of their size, `ncl.io.decode`). `engine` runs the forward pass
    (`ncl.codes.engines`: `auto`, `torch`, `compile`, `onnxruntime`), all within a tolerance."""

    batch_size: int = 32
    num_workers: int = 2
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    dtype: str = "float32"
    shard_size: int = 1024
    progress: bool = True
    scales: Sequence[float] = (1.0,)
    engine: str = "torch"
    decode: str = "full"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", check_scales(list(self.scales)))
        resolve_engine(self.engine, self.accelerator, self.precision)  # a bad value fails here
        if self.decode not in DECODES:
            raise ValueError(
                f"extraction.decode must be one of {', '.join(DECODES)}, got {self.decode!r}"
            )
        if self.dtype not in CODE_DTYPES:
            raise ValueError(
                f"extraction.dtype must be one of {', '.join(CODE_DTYPES)}, got {self.dtype!r}"
            )
        for option in ("batch_size", "shard_size", "num_nodes"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"extraction.{option} must be a positive integer, got {value!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int):
            raise ValueError(f"extraction.num_workers must be an integer, got {self.num_workers!r}")
        if self.num_workers < 0:
            raise ValueError(f"extraction.num_workers must be >= 0, got {self.num_workers}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"extraction.progress must be true or false, got {self.progress!r}")


class CodeExtractor(pl.LightningModule):
    """Codes of `taps` (keyed by their code names) of a batch, or of one batch per scale."""

    def __init__(self, engine: nn.Module, taps: Sequence[str], descriptor: Descriptor) -> None:
        super().__init__()
        self.engine = engine  # `ncl.codes.engines`: one scale's images -> codes of `taps`
        self.taps = list(taps)
        self.descriptor = descriptor

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, indices, failed = batch
        if len(indices) == 0:
            return {"index": indices, "failed": failed, "codes": {}}
        batches = [images] if isinstance(images, torch.Tensor) else list(images)
        codes = self.descriptor.combine(self.taps, [self.engine(x) for x in batches])
        return {
            "index": indices,
            "failed": failed,
            "codes": {t: c.float().cpu() for t, c in codes.items()},
        }


class ShardWriter(BasePredictionWriter):
    """Buffers predictions and writes `shard-<rank>-<n>.npz` files every `shard_size` images."""

    def __init__(
        self, partial_dir: Path, taps: Sequence[str], shard_size: int, dtype: str, engine: str
    ) -> None:
        super().__init__(write_interval="batch")
        self.partial_dir = partial_dir
        self.engine = engine
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

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Keep what was coded before an interruption or a crash: a rerun resumes after it."""
        self.flush(trainer.global_rank)

    def flush(self, rank: int) -> None:
        if not self.buffer:
            return
        index = np.concatenate([p["index"].numpy() for p in self.buffer]).astype(np.int64)
        failed = np.array([i for p in self.buffer for i in p["failed"]], dtype=np.int64)
        arrays = {"index": index, "failed": failed, "engine": np.array(self.engine)}
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
            warnings.filterwarnings("ignore", message=".*persistent_workers.*")
            yield
    finally:
        logger.setLevel(level)


def _shards(partial_dir: Path) -> list[Path]:
    return sorted(partial_dir.glob("shard-*.npz"))


def _engines(partial_dir: Path) -> list[str]:
    """The engines that computed the shards (one, unless a resumed run used another; rows a
    stale code set lent, `ncl.codes.incremental`, name none)."""
    engines: set[str] = set()
    for shard in _shards(partial_dir):
        with np.load(shard) as f:
            if "engine" in f.files:
                engines.add(str(f["engine"]))
    return sorted(engines) or ["torch"]


def _done_indices(partial_dir: Path) -> set[int]:
    done: set[int] = set()
    for shard in _shards(partial_dir):
        with np.load(shard) as f:
            done.update(f["index"].tolist())
            done.update(f["failed"].tolist())
    return done


def first_process() -> bool:
    """False in the extra processes a multi-device run launches (they re-run the job, with
    LOCAL_RANK or NODE_RANK set): only the first takes the extraction's lock, or a child would
    wait for the lock that its parent holds while the parent waits for it to join."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


@dataclass
class Extraction:
    """The code sets of `images` for `taps` of one network, stored as `model` in `store`.

    `backbone` is the network, or a function that builds it, called only when some tap's codes
    are missing or stale. Each tap's code set is an artifact of the cache made from the images
    (their files, boxes and rotations), the network (`model` and `weights`, a stamp of its weights
    file where there is one) and the stored dtype, and for the `conv` map the `pooling` and
    `settings.scales`: changing any of them extracts again. Code sets are stored, and `run`
    returns them, under their code names (`conv` pooled by GeM: `conv-gem3`).
    """

    images: ImageSet
    backbone: Backbone | Callable[[], Backbone]
    model: str
    taps: Sequence[str]
    store: CodeStore
    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    weights: str = ""
    pooling: Pooling | None = None

    def __post_init__(self) -> None:
        self.descriptor = Descriptor(self.pooling, self.settings.scales)
        self.code_names = self.descriptor.code_names(self.taps)

    def artifact(self, tap: str) -> Artifact:
        """The code set of `tap` (a network tap or its code name)."""
        inputs = {
            "images": self.images.fingerprint(),
            "model": self.model,
            "weights": self.weights,
            "dtype": self.settings.dtype,
            **self.descriptor.inputs(tap),
            **self.pixel_inputs(),
        }
        name = self.descriptor.code_name(tap)
        return self.store.artifact(self.model, self.images.name, name, inputs)

    def pixel_inputs(self) -> dict[str, Any]:
        """What the key adds for settings that change the codes beyond an engine's tolerance:
        a reduced compute dtype and a reduced decode (nothing for the defaults, whose codes
        keep the key they had before these settings existed)."""
        inputs: dict[str, Any] = {}
        dtype = compute_dtype(self.settings.precision)
        if dtype != "float32":
            inputs["compute_dtype"] = dtype
        if self.settings.decode != "full":
            inputs["decode"] = self.settings.decode
        return inputs

    def run(self) -> dict[str, CodeSet]:
        """Every tap's code set, extracting in one pass the taps that are not current."""
        lock = (
            lock_for(self.store.path(self.model, self.images.name, "extraction"))
            if first_process()
            else nullcontext()
        )
        with lock:
            missing = [t for t in self.taps if not self._usable(t)]
            if missing:
                self._extract(missing)
        return {t: self.store.read(self.model, self.images.name, t) for t in self.code_names}

    def _usable(self, tap: str) -> bool:
        """Whether the tap's stored codes are current and load; damaged ones are set aside."""
        artifact = self.artifact(tap)
        if not artifact.is_current():
            if artifact.path.exists():
                log.info("%s: extracting again (%s)", artifact.path, artifact.why_stale())
            return False
        try:
            read_codes(artifact.path)
        except CodeSetError as e:
            artifact.set_aside(f"damaged code set ({e})")
            return False
        return True

    def _network(self) -> Backbone:
        if not isinstance(self.backbone, Backbone):
            self.backbone = self.backbone()
        return self.backbone

    def _extract(self, taps: Sequence[str]) -> None:
        images, settings = self.images, self.settings
        backbone = self._network().eval()
        key = digest([self.artifact(t).key for t in sorted(taps)], 12)
        partial_dir = self.store.path(self.model, images.name, f".partial-{key}")
        partial_dir.mkdir(parents=True, exist_ok=True)
        if not _shards(partial_dir):
            artifacts = {self.descriptor.code_name(t): self.artifact(t) for t in taps}
            carry_over(artifacts, images, partial_dir, settings.shard_size)
        done = _done_indices(partial_dir)
        todo = [i for i in range(len(images)) if i not in done]
        if done:
            log.info(
                "resuming %s/%s: %d of %d images already done",
                self.model,
                images.name,
                len(done),
                len(images),
            )
        if not todo:
            self._publish(partial_dir, taps, backbone)
            return
        log.info(
            "extracting %s: %d images with %s, taps %s",
            images.name,
            len(todo),
            self.model,
            ", ".join(taps),
        )
        sizes = self.descriptor.sizes(backbone.input_size)
        data = ImageSetDataModule(
            images,
            extraction_transform(backbone.mean, backbone.std, sizes[0])
            if len(sizes) == 1
            else MultiScale(backbone.mean, backbone.std, sizes),
            indices=todo,
            batch_size=settings.batch_size,
            # starting worker processes costs more than decoding one batch in this one
            num_workers=settings.num_workers if len(todo) > settings.batch_size else 0,
            reduce_to=max(sizes) if settings.decode == "reduced" else None,
        )
        names = [self.descriptor.code_name(t) for t in taps]
        engine, engine_name = self._engine(backbone, taps, sizes)
        with quiet_lightning():
            trainer = pl.Trainer(
                # onnxruntime runs on the CPU, whatever Lightning would choose
                accelerator="cpu" if engine_name == "onnxruntime" else settings.accelerator,
                devices=settings.devices,
                num_nodes=settings.num_nodes,
                strategy=settings.strategy,
                precision=settings.precision,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=settings.progress,
                enable_model_summary=False,
                callbacks=[
                    ShardWriter(
                        partial_dir, names, settings.shard_size, settings.dtype, engine_name
                    ),
                    # on stderr: stdout is for results (search.py's ranked lists, --json)
                    *(
                        [RichProgressBar(console_kwargs={"stderr": True})]
                        if settings.progress
                        else []
                    ),
                ],
            )
            try:
                trainer.predict(
                    CodeExtractor(engine, taps, self.descriptor),
                    datamodule=data,
                    return_predictions=False,
                )
            except SystemExit:  # Lightning's answer to Ctrl-C: a graceful stop, then exit(1)
                if not trainer.interrupted:
                    raise
                log.error(
                    "interrupted: %d of %d images of %s done; run the same command again to "
                    "resume from %s",
                    len(_done_indices(partial_dir)),
                    len(images),
                    images.name,
                    partial_dir,
                )
                raise SystemExit(130) from None
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            left = len(images) - len(_done_indices(partial_dir))
            if trainer.interrupted or left:
                raise RuntimeError(
                    f"extraction of {images.name} stopped with {left} images to go; "
                    f"run the same command again to resume from {partial_dir}"
                )
            self._publish(partial_dir, taps, backbone)
        # the other ranks read the code sets only once rank 0 has published them
        trainer.strategy.barrier()

    def _engine(
        self, backbone: Backbone, taps: Sequence[str], sizes: Sequence[int]
    ) -> tuple[nn.Module, str]:
        """The module that computes one scale's codes of `taps` with the engine the settings
        ask for, and that engine's name (`torch` where onnxruntime cannot run the network)."""
        settings = self.settings
        engine = resolve_engine(settings.engine, settings.accelerator, settings.precision)
        module = self.descriptor.module(backbone, taps)
        names = [self.descriptor.code_name(t) for t in taps]
        cache_dir = self.store.path(self.model, ".onnxruntime", "+".join(sorted(names)))
        identity = {"model": self.model, "codes": names}
        return engine_module(engine, module, sizes, cache_dir, identity)

    def _publish(self, partial_dir: Path, taps: Sequence[str], backbone: Backbone) -> None:
        images = self.images
        sizes = self.descriptor.sizes(backbone.input_size)
        meta = {
            "model": self.model,
            "backbone": backbone.config,
            "image_set": images.name,
            "transform": {
                "resize": [backbone.input_size, backbone.input_size]
                if len(sizes) == 1
                else [[s, s] for s in sizes],
                "scales": list(self.descriptor.scales),
                "pooling": self.pooling.name if self.pooling is not None else None,
                "crop": "none (aspect ratio not kept)",
                "mean": list(backbone.mean),
                "std": list(backbone.std),
                "query_boxes": images.boxes is not None
                and any(b is not None for b in images.boxes),
                "rotations": len(images.rotations),
                "decode": self.settings.decode,
            },
            "extraction": {
                "engine": "+".join(_engines(partial_dir)),
                "precision": str(self.settings.precision),
                "compute_dtype": compute_dtype(self.settings.precision),
            },
        }
        artifacts = {self.descriptor.code_name(t): self.artifact(t) for t in taps}
        merge_shards(partial_dir, images, artifacts, self.settings.dtype, meta)
        shutil.rmtree(partial_dir, ignore_errors=True)


def merge_shards(
    partial_dir: Path,
    images: ImageSet,
    artifacts: Mapping[str, Artifact],
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
    stamps = images.stamps()
    ids = [images.names[i] for i in kept]
    if not ids:
        unread = [str(images.files[i]) for i in sorted(failed)[:3]]
        raise ValueError(f"{images.name}: none of its images could be read, e.g. {unread}")
    if failed_names:
        log.warning(
            "%d unreadable image(s) left out of %s: %s",
            len(failed_names),
            images.name,
            failed_names[:10],
        )
    for tap, artifact in artifacts.items():
        dim = _tap_dim(shards, tap, images.name)
        tap_meta = {**meta, "tap": tap, "failed": failed_names}
        with artifact.staging(code_set_meta(ids, dim, dtype, tap_meta)) as tmp:
            out = allocate_codes(tmp, len(ids), dim, dtype)
            for shard in shards:
                with np.load(shard) as f:
                    codes = f[f"tap_{tap}"]
                    if codes.size:
                        out[position[f["index"]]] = codes
            out.flush()
            del out
            write_ids(tmp, ids)
            write_stamps(tmp, [stamps[i] for i in kept])
        read_codes(artifact.path)


def _tap_dim(shards: Sequence[Path], tap: str, image_set: str) -> int:
    for shard in shards:
        with np.load(shard) as f:
            codes = f[f"tap_{tap}"]
            if codes.size:
                return int(codes.shape[1])
    raise AssertionError(f"{image_set}: no shard holds codes of {tap}")

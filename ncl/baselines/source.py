"""A holistic baseline as a code source: what `encoder=bovw|vlad|sparse` selects in the jobs.

For an image set: SIFT/RootSIFT descriptors (cached, resumable) -> the encoder, whose vocabulary
(and, for BoVW, idf) was fitted on a *separate* image set, `fit_on`, as the paper fits its PCA ->
one code set in the code store. The code sets are stored under a model name of their own,
``<encoder>-k<k>-<rootsift|sift>-<digest>`` (the digest covers every other setting, so variants
never overwrite each other and a sweep's report tells them apart), with one tap, the encoder's
name: evaluate.py then compresses, searches and scores them exactly like neural codes.

Working files live under `work_dir`:
  local_features/<sift-kp<n>[-side<s>]>/<image set>-<fingerprint>/   descriptor caches
  vocabularies/<fit set>-<fingerprint>/k<k>-<key>/                   vocabularies (+ idf.npy)
An image set's fingerprint changes when any of its files, crop boxes or rotations does, so
regenerated images are never described by stale descriptors or an old vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncl.atomic import save_npy_atomically
from ncl.baselines.encode import encode_image_set, fit_bovw_idf
from ncl.baselines.encoders import BoVW, VocabularyEncoder, build_encoder
from ncl.baselines.vocabulary import Vocabulary, build_vocabulary
from ncl.codes.store import CodeSet, CodeStore
from ncl.data.images import ImageSet
from ncl.features.descriptors import LocalFeatureCache, extract_local_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalFeatureSettings:
    """SIFT extraction (see `extract_local_features`); `workers=None` uses every core."""

    rootsift: bool = True
    max_keypoints: int = 2000
    max_side: int | None = None
    workers: int | None = None

    @property
    def cache_key(self) -> str:
        """What the stored descriptors depend on (RootSIFT is computed when they are read)."""
        side = f"-side{self.max_side}" if self.max_side else ""
        return f"sift-kp{self.max_keypoints}{side}"


@dataclass(frozen=True)
class VocabularySettings:
    """k-means on a seeded sample of the fit set's descriptors (see `build_vocabulary`)."""

    max_descriptors: int = 1_000_000
    niter: int = 20
    seed: int = 0


@dataclass
class BaselineCodes:
    """Code sets of a local-feature encoder ("bovw", "vlad", "sparse") with a `k`-word vocabulary
    fitted on `fit_on`; `params` are the encoder's options (e.g. VLAD's `alpha`)."""

    encoder: str
    k: int
    fit_on: ImageSet
    store: CodeStore
    work_dir: Path
    params: Mapping[str, Any] = field(default_factory=dict)
    local_features: LocalFeatureSettings = field(default_factory=LocalFeatureSettings)
    vocabulary: VocabularySettings = field(default_factory=VocabularySettings)
    batch_size: int = 64
    _fitted: tuple[Vocabulary, VocabularyEncoder] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        if not isinstance(self.fit_on, ImageSet):
            raise ValueError(
                f"encoder={self.encoder} needs a separate image set to fit its vocabulary on "
                "(encoder.fit_on; by default the benchmark's fit_on)"
            )

    @property
    def tap(self) -> str:
        return self.encoder

    @property
    def taps(self) -> list[str]:
        return [self.tap]

    @property
    def name(self) -> str:
        features = "rootsift" if self.local_features.rootsift else "sift"
        settings = {
            "params": dict(sorted(self.params.items())),
            "max_keypoints": self.local_features.max_keypoints,
            "max_side": self.local_features.max_side,
            "vocabulary": asdict(self.vocabulary),
            "fit_on": self.fit_on.name,
        }
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
        return f"{self.encoder}-k{self.k}-{features}-{digest}"

    def descriptors(self, images: ImageSet) -> LocalFeatureCache:
        """The local features of `images` (cropped to their boxes, turned upright), extracting
        only those not cached yet."""
        lf = self.local_features
        cache_dir = (
            self.work_dir
            / "local_features"
            / lf.cache_key
            / f"{images.name}-{images.fingerprint()}"
        )
        return extract_local_features(
            images.files,
            images.names,
            cache_dir,
            boxes=images.boxes,
            rotations=[images.rotations.get(n, 0) for n in images.names],
            rootsift=lf.rootsift,
            max_keypoints=lf.max_keypoints,
            max_side=lf.max_side,
            workers=lf.workers or os.cpu_count() or 1,
        )

    def fitted_encoder(self) -> tuple[Vocabulary, VocabularyEncoder]:
        """The vocabulary of the fit set and the encoder on it (BoVW: idf fitted on the fit set
        too), built on first use and then loaded from `work_dir`."""
        if self._fitted is None:
            fit = self.descriptors(self.fit_on)
            vocabulary = build_vocabulary(
                fit,
                self.k,
                self.work_dir / "vocabularies" / f"{self.fit_on.name}-{self.fit_on.fingerprint()}",
                max_descriptors=self.vocabulary.max_descriptors,
                niter=self.vocabulary.niter,
                seed=self.vocabulary.seed,
            )
            encoder = build_encoder(self.encoder, vocabulary.centroids, **self.params)
            if isinstance(encoder, BoVW) and encoder.tfidf:
                encoder.idf = _cached_idf(encoder, fit, vocabulary, self.batch_size)
            self._fitted = (vocabulary, encoder)
        return self._fitted

    def codes(self, images: ImageSet) -> dict[str, CodeSet]:
        cache = self.descriptors(images)
        vocabulary, encoder = self.fitted_encoder()
        meta = {
            "model": self.name,
            "tap": self.tap,
            "image_set": images.name,
            "source_key": images.fingerprint(),
            "vocabulary_fit_on": self.fit_on.name,
            "vocabulary_key": vocabulary.key,
        }
        path = self.store.path(self.name, images.name, self.tap)
        codes = encode_image_set(cache, encoder, path, meta, batch_size=self.batch_size)
        return {self.tap: codes}


def _cached_idf(
    encoder: BoVW, fit: LocalFeatureCache, vocabulary: Vocabulary, batch_size: int
) -> np.ndarray:
    """BoVW's idf over the fit set's images, kept beside the vocabulary it belongs to (the
    vocabulary's key already covers the fit set's image list and local features)."""
    path = vocabulary.path / "idf.npy"
    if path.is_file():
        idf = np.load(path, allow_pickle=False)
        if idf.shape == (encoder.k,):
            return idf
    idf = fit_bovw_idf(encoder, fit, batch_size=batch_size)
    save_npy_atomically(path, idf)
    return idf

"""Encode a whole image set into a code set, the format evaluation reads for neural codes too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ncl.baselines.encoders import BoVW, Encoder
from ncl.cache import Artifact
from ncl.codes.store import CodeSet, allocate_codes, code_set_meta, read_codes, write_ids
from ncl.features.descriptors import LocalFeatureCache
from ncl.io.progress import progress_bar


def iter_batches(
    cache: LocalFeatureCache, batch_size: int
) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """(names, descriptor arrays) of the cache's images, `batch_size` images at a time, in order."""
    for start in range(0, len(cache.names), batch_size):
        names = list(cache.names[start : start + batch_size])
        yield names, [cache.descriptors(n) for n in names]


def fit_bovw_idf(encoder: BoVW, cache: LocalFeatureCache, *, batch_size: int = 64) -> np.ndarray:
    """Fit `encoder`'s idf on the visual-word counts of every image in `cache`."""
    counts = [encoder.counts(sets) for _, sets in iter_batches(cache, batch_size)]
    return encoder.fit_idf(np.concatenate(counts) if counts else np.zeros((0, encoder.k)))


def encode_image_set(
    cache: LocalFeatureCache,
    encoder: Encoder,
    out_path: str | Path,
    meta: dict[str, Any] | None = None,
    *,
    batch_size: int = 64,
) -> CodeSet:
    """Encode every image of `cache` into a float32 code set at `out_path`, published atomically.

    The meta records the encoder, the local features and, under `failed` as for neural codes, the
    images that could not be read (they have no row: evaluation counts them as never retrieved
    instead of ranking a fake code). The code set is an artifact of the cache made from all of
    these and the image list: a current one at `out_path` is returned as it is.
    """
    out_path = Path(out_path)
    ids = list(cache.names)
    # Through JSON so that tuples, paths etc. compare equal to what meta.json gives back.
    inputs = json.loads(
        json.dumps(
            {
                **(meta or {}),
                **encoder.config(),
                **cache.config(),
                "images": ids,
                "failed": sorted(cache.failed),
            },
            default=str,
        )
    )
    artifact = Artifact(out_path, inputs)
    with artifact.lock():
        if artifact.is_current():
            return read_codes(out_path)
        recorded = {k: v for k, v in inputs.items() if k != "images"}
        with artifact.staging(code_set_meta(ids, encoder.dim, "float32", recorded)) as tmp:
            codes = allocate_codes(tmp, len(ids), encoder.dim, "float32")
            row = 0
            with progress_bar(f"{encoder.name} → {out_path.name}", len(ids)) as advance:
                for names, descriptor_sets in iter_batches(cache, batch_size):
                    codes[row : row + len(names)] = encoder.encode_batch(descriptor_sets)
                    row += len(names)
                    advance(len(names))
            codes.flush()
            del codes
            write_ids(tmp, ids)
    return read_codes(out_path)

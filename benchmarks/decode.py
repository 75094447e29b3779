"""Reduced JPEG decode against full decode: python -m benchmarks.decode [--shared DIR]

On the real samples (the UKB sample, Paris-278 with cropped queries), EfficientNet-Lite0's
ImageNet codes (`pool`, and `conv` pooled by GeM) extracted with `extraction.decode=full` and
`reduced`: how far the codes move (cosine of each image's two codes) and the paired difference
of the benchmark's figure (N-S, mAP) with its standard error over queries.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from ncl.codes.extraction import ExtractionSettings
from ncl.codes.neural import NeuralCodes
from ncl.codes.store import CodeStore
from ncl.data.benchmarks import read_oxford, read_ukb
from ncl.data.images import database_image_set, query_image_set
from ncl.eval.compression import Compression
from ncl.eval.run import evaluate
from ncl.io.decode import reduction
from ncl.models import BackboneSpec
from ncl.models.pooling import GeM
from ncl.report.stats import estimate, paired_difference
from ncl.search.search import Search

TAPS = ["pool", "conv"]


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def compare(benchmark, key: str, store: CodeStore) -> None:
    sources = {
        decode: NeuralCodes(
            BackboneSpec("efficientnet_lite0"),
            TAPS,
            store,
            ExtractionSettings(num_workers=2, progress=False, decode=decode),
            pooling=GeM(),
        )
        for decode in ("full", "reduced")
    }
    rows = {d: evaluate(benchmark, s, Compression(), Search()) for d, s in sources.items()}
    sets = [database_image_set(benchmark)]
    if not benchmark.queries_in_database:
        sets.append(query_image_set(benchmark))
    for i, tap in enumerate(sources["full"].taps):
        cosines = np.concatenate(
            [
                np.sum(
                    unit(sources["full"].codes(s)[tap].codes)
                    * unit(sources["reduced"].codes(s)[tap].codes),
                    axis=1,
                )
                for s in sets
            ]
        )
        full, reduced = rows["full"][i], rows["reduced"][i]
        per_query = "AP" if key == "mAP" else "N-S"
        a, b = full.per_query[per_query], reduced.per_query[per_query]
        print(
            f"| {benchmark.name} | {tap} | {estimate(a).mean:.4f} ± {estimate(a).se:.4f} | "
            f"{estimate(b).mean:.4f} ± {estimate(b).se:.4f} | {paired_difference(a, b)} | "
            f"{np.median(cosines):.5f} | {cosines.min():.5f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[2] / "shared/data")
    args = parser.parse_args()
    store = CodeStore(tempfile.mkdtemp())
    ukb = read_ukb(args.shared / "ukbench-1000", name="ukb_sample")
    paris = read_oxford(args.shared / "paris6k-278", name="paris278", partial=True)
    for benchmark in (ukb, paris):
        files = database_image_set(benchmark).files
        factors = [reduction(*_size(f), 224) for f in files]
        print(f"{benchmark.name}: images per reduction factor {dict(Counter(factors))}")
    print(
        "\n| benchmark | codes | full decode | reduced decode | reduced - full (paired) "
        "| median cosine | min cosine |"
    )
    print("|---|---|---|---|---|---|---|")
    compare(ukb, "N-S", store)
    compare(paris, "mAP", store)


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


if __name__ == "__main__":
    main()

"""Multi-scale pooled codes cost about their scales' forward passes: python -m benchmarks.pooling

For each network, `Extraction` end to end (JPEG files -> code sets on disk) of the `conv` tap
pooled by GeM, once per single scale (1, 1/sqrt 2, 1/2) and once with the three scales together.
Multi-scale decodes each image once and runs one forward pass per scale, so it must take at most
about the sum of the single-scale runs (each of which decodes too). Also the forward pass alone
per scale on tensors in memory, the ceiling.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.extraction import BATCH, demo_images
from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.images import ImageSet
from ncl.models import Backbone, create_backbone
from ncl.models.descriptor import Descriptor
from ncl.models.pooling import GeM

SCALES = (1.0, 0.7071, 0.5)
NETWORKS = ("alexnet", "efficientnet_lite0")


def extract_seconds(
    net: Backbone, images: ImageSet, scales: tuple[float, ...], workers: int
) -> float:
    root = Path(tempfile.mkdtemp())
    settings = ExtractionSettings(
        batch_size=BATCH, num_workers=workers, progress=False, scales=scales
    )
    start = time.perf_counter()
    Extraction(images, net, "net", ["conv"], CodeStore(root), settings, pooling=GeM()).run()
    seconds = time.perf_counter() - start
    shutil.rmtree(root)
    return seconds


def forward_seconds(net: Backbone, n: int, scale: float) -> float:
    size = Descriptor(GeM(), (scale,)).sizes(net.input_size)[0]
    x = torch.randn(BATCH, 3, size, size).to(memory_format=torch.channels_last)
    net = net.to(memory_format=torch.channels_last)
    descriptor = Descriptor(GeM(), (scale,))
    with torch.inference_mode():
        descriptor.codes(net, x, ["conv"])
        start = time.perf_counter()
        for _ in range(max(1, n // BATCH)):
            descriptor.codes(net, x, ["conv"])
    return (time.perf_counter() - start) * n / (max(1, n // BATCH) * BATCH)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    images = demo_images(args.images)
    print(
        f"{len(images)} JPEGs, batch {BATCH}, {args.workers} loader workers, "
        f"{torch.get_num_threads()} torch threads, GeM (p=3) of the conv tap"
    )
    header = " | ".join(f"scale {s:g} s" for s in SCALES)
    print(
        f"| network | {header} | sum s | scales {list(SCALES)} s | multi / sum | forward alone s (per scale) |"
    )
    print("|---|" + "---|" * (len(SCALES) + 4))
    for name in NETWORKS:
        net = create_backbone(name, pretrained=False).eval()
        single = [extract_seconds(net, images, (s,), args.workers) for s in SCALES]
        multi = extract_seconds(net, images, SCALES, args.workers)
        forward = [forward_seconds(net, len(images), s) for s in SCALES]
        cells = " | ".join(f"{s:.1f}" for s in single)
        print(
            f"| {name} | {cells} | {sum(single):.1f} | {multi:.1f} | {multi / sum(single):.2f} "
            f"| {' + '.join(f'{f:.1f}' for f in forward)} = {sum(forward):.1f} |"
        )


if __name__ == "__main__":
    main()

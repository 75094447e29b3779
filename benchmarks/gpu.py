"""GPU figures in one run: python -m benchmarks.gpu --out DIR [--images N]

Writes one markdown table per figure into DIR (and prints it):
  extraction.md  per network: the forward pass alone on tensors in GPU memory (fp32, and bf16 /
                 fp16 under autocast), and `Extraction` end to end from JPEG files (32-true and
                 16-mixed), images/s, with the CPU's end-to-end rate as the plain baseline
  search.md      exact search of 100k x 256 codes for 1,000 queries, faiss on the CPU and, where
                 faiss has GPU support, on the GPU
Runs where CUDA is; `--device cpu` runs the same code paths on the CPU (to check the script).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.extraction import demo_images
from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.images import ImageSet
from ncl.models import create_backbone
from ncl.search.flat import gpu_available, rank

NETWORKS = {"alexnet": "l7", "efficientnet_lite0": "pool", "mobilenet_v2": "pool"}


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def forward_rate(net, tap: str, device: str, dtype: torch.dtype | None, batch: int) -> float:
    x = torch.randn(batch, 3, 224, 224, device=device).to(memory_format=torch.channels_last)
    net = net.to(device, memory_format=torch.channels_last)
    autocast = (
        torch.autocast(device, dtype=dtype) if dtype else torch.autocast(device, enabled=False)
    )
    with torch.inference_mode(), autocast:
        for _ in range(3):
            net.codes(x, [tap])
        if device == "cuda":
            torch.cuda.synchronize()
        start, steps = time.perf_counter(), 20
        for _ in range(steps):
            net.codes(x, [tap])
        if device == "cuda":
            torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def extraction_rate(
    net, name: str, images: ImageSet, tap: str, settings: ExtractionSettings
) -> float:
    root = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    Extraction(images, net, name, [tap], CodeStore(root), settings).run()
    seconds = time.perf_counter() - start
    shutil.rmtree(root)
    return len(images) / seconds


def extraction_table(device: str, n: int, workers: int) -> str:
    images = demo_images(n)
    accelerator = "gpu" if device == "cuda" else "cpu"
    rows = []
    for name, tap in NETWORKS.items():
        net = create_backbone(name, pretrained=False).eval()
        fp32 = forward_rate(net, tap, device, None, 128)
        half = forward_rate(net, tap, device, torch.bfloat16, 128)
        fp16 = (
            forward_rate(net, tap, device, torch.float16, 128) if device == "cuda" else float("nan")
        )
        end_to_end = {
            precision: extraction_rate(
                net.cpu(),
                name,
                images,
                tap,
                ExtractionSettings(
                    batch_size=128,
                    num_workers=workers,
                    progress=False,
                    accelerator=accelerator,
                    precision=precision,
                ),
            )
            for precision in (("32-true", "16-mixed") if device == "cuda" else ("32-true",))
        }
        cpu = extraction_rate(
            net.cpu(),
            name,
            demo_images(min(n, 256)),
            tap,
            ExtractionSettings(
                batch_size=32, num_workers=workers, progress=False, accelerator="cpu"
            ),
        )
        rows.append(
            (
                name,
                f"{fp32:.0f}",
                f"{half:.0f}",
                f"{fp16:.0f}",
                *(f"{v:.0f}" for v in end_to_end.values()),
                f"{cpu:.0f}",
                f"{end_to_end['32-true'] / cpu:.1f}x",
            )
        )
    precisions = ("32-true", "16-mixed") if device == "cuda" else ("32-true",)
    header = (
        "network",
        "forward fp32",
        "forward bf16",
        "forward fp16",
        *(f"Extraction {p}" for p in precisions),
        "Extraction on the CPU (baseline)",
        f"{device} / CPU",
    )
    return f"images/s, {n} demo JPEGs, batch 128 ({device})\n\n" + table(header, rows)


def search_table() -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100_000, 256)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(len(x), 1000, replace=False)] + 0.01
    rows = []
    for use_gpu in (False, True) if gpu_available() else (False,):
        start = time.perf_counter()
        ranking = rank(x, q, 100, use_gpu=use_gpu)
        rows.append((ranking.device, f"{time.perf_counter() - start:.2f}"))
    note = "" if gpu_available() else "\nfaiss has no GPU support here (FAISS=gpu installs it).\n"
    return (
        "100k x 256 codes, 1,000 queries, top 100\n\n" + table(("faiss on", "seconds"), rows) + note
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("gpu_results"))
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device: run on a GPU machine (or --device cpu to check the script)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    for file, text in (
        ("extraction.md", extraction_table(args.device, args.images, args.workers)),
        ("search.md", search_table()),
    ):
        text = f"# {file[:-3]} on {name}\n\n{text}"
        (args.out / file).write_text(text)
        print(text)


if __name__ == "__main__":
    main()

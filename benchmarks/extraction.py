"""Extraction throughput: python -m benchmarks.extraction [--images N] [--repeats R] [--memory]

For each network at batch 32, in the same run, on the demo benchmark's JPEGs (384 px):
  forward   the forward pass alone on tensors already in memory (the ceiling)
  ncl       Extraction end to end: JPEG files -> code sets on disk (Lightning predict)
  plain     torchvision ImageFolder + DataLoader + forward loop (PIL decode, same resize)
--engines: the same, per inference engine (`extraction.engine`: torch, compile, onnxruntime),
repeats interleaved (engine after engine, R rounds, best of R), ratios against torch end to end
(today's); the one-off costs (ONNX export, compilation) apart. --spinning: onnxruntime with its
idle threads spinning (its default) and sleeping (ncl's), interleaved, best of R. Then, on Paris-278's JPEGs when
--paris names them, end to end with full and reduced decode (`extraction.decode`).
--transform: a loader worker's transform alone, ncl's against the plain torchvision chain.
--cpu: onnxruntime's forward alone and end to end in CPU time (main process, loader workers).
--loaders 0,1,2: onnxruntime end to end per number of loader workers (0: decode in the main
process, between batches), interleaved with its forward alone, best of R.
--memory also extracts N and 4N images in fresh processes and prints their peak RSS: it must
not grow with the number of images (codes go to disk shard by shard).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets.folder import pil_loader

from ncl.codes import engines
from ncl.codes.engines import engine_module
from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.images import ImageSet, folder_image_set
from ncl.demo import build_demo
from ncl.models import create_backbone
from ncl.models.descriptor import Descriptor

BATCH = 32
TAP = {"alexnet": "l7", "efficientnet_lite0": "pool"}


class PlainFiles(Dataset):
    def __init__(self, files: list[Path], tf) -> None:
        self.files, self.tf = files, tf

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return self.tf(pil_loader(str(self.files[i])))


def forward_alone(net, n: int, tap: str) -> float:
    x = torch.randn(BATCH, 3, 224, 224).to(memory_format=torch.channels_last)
    net = net.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        net.codes(x, [tap])
        start = time.perf_counter()
        for _ in range(max(1, n // BATCH)):
            net.codes(x, [tap])
    return max(1, n // BATCH) * BATCH / (time.perf_counter() - start)


def plain_loop(net, files: list[Path], tap: str, workers: int) -> float:
    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize(net.mean, net.std),
        ]
    )
    loader = DataLoader(PlainFiles(files, tf), batch_size=BATCH, num_workers=workers)
    start = time.perf_counter()
    with torch.inference_mode():
        for x in loader:
            net.codes(x, [tap])
    return len(files) / (time.perf_counter() - start)


def ncl_extract(
    net, name: str, images: ImageSet, tap: str, workers: int, root: Path | None = None, **options
) -> float:
    """img/s of `Extraction` end to end; in `root` (kept: an exported model stays cached there,
    the code sets are removed) or a fresh folder."""
    fresh = root is None
    root = Path(tempfile.mkdtemp()) if root is None else root
    settings = ExtractionSettings(batch_size=BATCH, num_workers=workers, progress=False, **options)
    start = time.perf_counter()
    Extraction(images, net, name, [tap], CodeStore(root), settings).run()
    seconds = time.perf_counter() - start
    shutil.rmtree(root if fresh else CodeStore(root).path(name, images.name, tap).parent)
    return len(images) / seconds


def engine_forward(net, engine: str, tap: str, cache: Path):
    """`engine`'s module for `net`'s `tap` (exported / compiled here, before any timing)."""
    module, used = engine_module(
        engine, Descriptor().module(net, [tap]), [224], cache, {"model": "bench"}
    )
    assert used == engine, f"{engine} fell back to {used}"
    x = torch.randn(BATCH, 3, 224, 224)
    with torch.inference_mode():
        module(x)
        module(x[:7])  # a smaller last batch: compile's second shape
    return module


def forward_rate(module, n: int) -> float:
    x = torch.randn(BATCH, 3, 224, 224)
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(max(1, n // BATCH)):
            module(x)
    return max(1, n // BATCH) * BATCH / (time.perf_counter() - start)


def networks() -> Iterator[tuple[str, str, torch.nn.Module, Path]]:
    """Each network of `TAP` with its tap, fresh, and a scratch folder removed after its rows."""
    for name, tap in TAP.items():
        root = Path(tempfile.mkdtemp())
        yield name, tap, create_backbone(name, pretrained=False).eval(), root
        shutil.rmtree(root)


ENGINES = ("torch", "compile", "onnxruntime")


def engines_table(
    images: ImageSet, workers: int, repeats: int, engines: tuple[str, ...] = ENGINES
) -> None:
    """Forward alone and end to end per engine (torch, the baseline, always among them),
    interleaved rounds, best of `repeats`."""
    engines = ("torch", *(e for e in engines if e != "torch"))
    print(
        "\n| network | engine | forward alone img/s | ncl end to end img/s | end to end / forward "
        "| end to end / torch end to end | one-off s (export, compile) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, tap, net, root in networks():
        once, fwd, e2e = {}, {e: 0.0 for e in engines}, {e: 0.0 for e in engines}
        modules = {}
        for engine in engines:
            start = time.perf_counter()
            modules[engine] = engine_forward(net, engine, tap, root / "forward" / engine)
            once[engine] = time.perf_counter() - start
        for engine in engines:  # the first end to end run (pays the export) is not timed
            ncl_extract(net, name, images, tap, workers, root / engine, engine=engine)
        for _ in range(repeats):
            for engine in engines:
                fwd[engine] = max(fwd[engine], forward_rate(modules[engine], len(images)))
                rate = ncl_extract(net, name, images, tap, workers, root / engine, engine=engine)
                e2e[engine] = max(e2e[engine], rate)
        for engine in engines:
            print(
                f"| {name} | {engine} | {fwd[engine]:.1f} | {e2e[engine]:.1f} | "
                f"{e2e[engine] / fwd[engine]:.2f} | {e2e[engine] / e2e['torch']:.2f} | "
                f"{once[engine] if engine != 'torch' else 0:.1f} |"
            )


def spinning_table(images: ImageSet, workers: int, repeats: int) -> None:
    """onnxruntime's forward alone and end to end with its idle threads spinning (onnxruntime's
    default) and sleeping (`engines.SPINNING = False`, ncl's), interleaved rounds, best of n."""
    print(
        "\n| network | idle onnxruntime threads | forward alone img/s | ncl end to end img/s "
        "| end to end / forward | end to end / spinning end to end |"
    )
    print("|---|---|---|---|---|---|")
    settings = (True, False)
    for name, tap, net, root in networks():
        fwd, e2e = dict.fromkeys(settings, 0.0), dict.fromkeys(settings, 0.0)
        ncl_extract(net, name, images, tap, workers, root, engine="onnxruntime")  # the export
        for _ in range(repeats):
            for spinning in settings:
                engines.SPINNING = spinning
                module = engine_forward(net, "onnxruntime", tap, root / "forward")
                fwd[spinning] = max(fwd[spinning], forward_rate(module, len(images)))
                rate = ncl_extract(net, name, images, tap, workers, root, engine="onnxruntime")
                e2e[spinning] = max(e2e[spinning], rate)
        engines.SPINNING = False
        for spinning in settings:
            print(
                f"| {name} | {'spin' if spinning else 'sleep'} | {fwd[spinning]:.1f} | "
                f"{e2e[spinning]:.1f} | {e2e[spinning] / fwd[spinning]:.2f} | "
                f"{e2e[spinning] / e2e[True]:.2f} |"
            )


def decode_table(images: ImageSet, workers: int, repeats: int) -> None:
    """End to end with full and reduced JPEG decode, onnxruntime, interleaved, best of n."""
    print(
        "\n| network | images | engine | full decode img/s | reduced decode img/s | reduced / full |"
    )
    print("|---|---|---|---|---|---|")
    for name, tap, net, root in networks():
        ncl_extract(net, name, images, tap, workers, root, engine="onnxruntime")  # the export
        rates = {"full": 0.0, "reduced": 0.0}
        for _ in range(repeats):
            for decode in rates:
                rate = ncl_extract(
                    net, name, images, tap, workers, root, engine="onnxruntime", decode=decode
                )
                rates[decode] = max(rates[decode], rate)
        print(
            f"| {name} | {images.name} ({len(images)}) | onnxruntime | {rates['full']:.1f} | "
            f"{rates['reduced']:.1f} | {rates['reduced'] / rates['full']:.2f} |"
        )


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def cpu_table(images: ImageSet, workers: int) -> None:
    """Where the CPU goes with onnxruntime: its forward alone against end to end (the main
    process, and the loader workers, which have ended when `Extraction.run` returns), in CPU
    milliseconds an image. With every core busy, end to end / forward alone can be no more
    than the forward's CPU over end to end's (the last column)."""
    print(
        "\n| network | forward alone img/s | its CPU ms/img (cores) | end to end img/s "
        "| main CPU ms/img | workers CPU ms/img | cores busy | end to end / forward "
        "| forward CPU / end-to-end CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, tap, net, root in networks():
        module = engine_forward(net, "onnxruntime", tap, root / "forward")
        before, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        fwd = forward_rate(module, len(images))
        alone = (cpu_seconds(resource.RUSAGE_SELF) - before) / (time.perf_counter() - start)
        ncl_extract(net, name, images, tap, workers, root, engine="onnxruntime")  # the export
        main, kids = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        e2e = ncl_extract(net, name, images, tap, workers, root, engine="onnxruntime")
        wall = time.perf_counter() - start
        main = (cpu_seconds(resource.RUSAGE_SELF) - main) / len(images)
        kids = (cpu_seconds(resource.RUSAGE_CHILDREN) - kids) / len(images)
        per_image = alone / fwd
        print(
            f"| {name} | {fwd:.1f} | {1e3 * per_image:.2f} ({alone:.2f}) | {e2e:.1f} | "
            f"{1e3 * main:.2f} | {1e3 * kids:.2f} | {(main + kids) * len(images) / wall:.2f} | "
            f"{e2e / fwd:.2f} | {per_image / (main + kids):.2f} |",
            flush=True,
        )


def loaders_table(images: ImageSet, counts: list[int], repeats: int) -> None:
    """onnxruntime end to end with each number of loader workers, and its forward alone, in
    interleaved rounds (best of `repeats`): whether decoding beside the forward, in worker
    processes on the same cores, beats decoding between batches."""
    print(
        "\n| network | loader workers | forward alone img/s | end to end img/s "
        "| end to end / forward | vs default workers |"
    )
    print("|---|---|---|---|---|---|")
    default = ExtractionSettings().num_workers
    for name, tap, net, root in networks():
        module = engine_forward(net, "onnxruntime", tap, root / "forward")
        ncl_extract(net, name, images, tap, counts[0], root, engine="onnxruntime")  # the export
        fwd, e2e = 0.0, dict.fromkeys(counts, 0.0)
        for _ in range(repeats):
            fwd = max(fwd, forward_rate(module, len(images)))
            for n in counts:
                rate = ncl_extract(net, name, images, tap, n, root, engine="onnxruntime")
                e2e[n] = max(e2e[n], rate)
        for n in counts:
            versus = f"{e2e[n] / e2e[default]:.2f}x" if default in e2e else ""
            print(
                f"| {name} | {n} | {fwd:.1f} | {e2e[n]:.1f} | {e2e[n] / fwd:.2f} | {versus} |",
                flush=True,
            )


def transform_table(images: ImageSet, rounds: int = 6) -> None:
    """A loader worker's transform, ncl's against the plain torchvision chain (resize, convert,
    normalise) on the same decoded images, one thread, best of `rounds`, interleaved."""
    from torchvision.transforms import v2

    from ncl.data.images import read_image_reduced
    from ncl.data.transforms import extraction_transform

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    decoded = [read_image_reduced(f)[0] for f in images.files]
    plain = v2.Compose(
        [
            v2.Resize((224, 224), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
    chains = {"plain torchvision": plain, "ncl": extraction_transform(mean, std)}
    best = dict.fromkeys(chains, float("inf"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    for _ in range(rounds):
        for name, chain in chains.items():
            start = time.perf_counter()
            for image in decoded:
                chain(image)
            best[name] = min(best[name], (time.perf_counter() - start) / len(decoded))
    torch.set_num_threads(threads)
    same = all(torch.equal(plain(x), chains["ncl"](x)) for x in decoded)
    print("\n| transform (decoded uint8 -> normalised 224 x 224) | ms an image | vs plain |")
    print("|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {1e3 * seconds:.2f} | {best['plain torchvision'] / seconds:.2f}x |")
    print(f"identical outputs: {same}")


def peak_rss_child(images: ImageSet, workers: int, conn) -> None:
    net = create_backbone("efficientnet_lite0", pretrained=False).eval()
    ncl_extract(net, "efficientnet_lite0", images, "pool", workers)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    conn.send((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, children / 1024))


def peak_rss(images: ImageSet, workers: int) -> tuple[float, float]:
    parent, child = mp.Pipe()
    p = mp.get_context("spawn").Process(target=peak_rss_child, args=(images, workers, child))
    p.start()
    out = parent.recv()
    p.join()
    return out


def repeated(images: ImageSet, times: int) -> ImageSet:
    return ImageSet(
        f"{images.name}x{times}",
        [f"{n}#{k}" for k in range(times) for n in images.names],
        [f for _ in range(times) for f in images.files],
    )


def demo_images(n: int) -> ImageSet:
    """`n` JPEGs of the demo benchmark (built once in the temporary folder), repeated as needed."""
    os.environ.setdefault("NCL_DEMO_OPENCV_DIR", "")
    demo = Path(tempfile.gettempdir()) / "ncl-bench-demo"
    build_demo(demo)
    files = sorted((demo / "jpg").glob("*.jpg"))
    files = (files * (n // len(files) + 1))[:n]
    return ImageSet("bench", [f"{i:06d}" for i in range(len(files))], files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--engines", action="store_true")
    parser.add_argument(
        "--engine", action="append", choices=ENGINES, help="with --engines: only these (+ torch)"
    )
    parser.add_argument("--spinning", action="store_true")
    parser.add_argument("--transform", action="store_true", help="the loader's transform alone")
    parser.add_argument("--cpu", action="store_true", help="CPU time of onnxruntime end to end")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--loaders", type=lambda t: [int(v) for v in t.split(",")], help="e.g. 0,1,2 workers"
    )
    parser.add_argument("--paris", type=Path, default=None, help="Paris-278's jpg/ folder")
    args = parser.parse_args()
    images = demo_images(args.images)
    files = list(images.files)
    print(
        f"{len(files)} JPEGs, batch {BATCH}, {args.workers} loader workers, {torch.get_num_threads()} torch threads"
    )
    print(
        "| network | forward alone img/s | ncl end to end img/s | plain ImageFolder loop img/s | ncl / forward | ncl / plain |"
    )
    print("|---|---|---|---|---|---|")
    for name, tap in TAP.items():
        net = create_backbone(name, pretrained=False).eval()
        fwd = forward_alone(net, len(files), tap)
        ours = ncl_extract(net, name, images, tap, args.workers, engine="torch")
        plain = plain_loop(net, files, tap, args.workers)
        print(
            f"| {name} | {fwd:.1f} | {ours:.1f} | {plain:.1f} | {ours / fwd:.2f} | {ours / plain:.2f} |"
        )
    if args.engines:
        engines_table(images, args.workers, args.repeats, tuple(args.engine or ENGINES))
    if args.spinning:
        spinning_table(images, args.workers, args.repeats)
    if args.transform:
        transform_table(images)
    if args.cpu:
        cpu_table(images, args.workers)
    if args.loaders:
        loaders_table(images, args.loaders, args.repeats)
    if args.paris:
        decode_table(folder_image_set("paris278", args.paris), args.workers, args.repeats)
    if args.memory:
        print(
            "\n| images extracted (efficientnet_lite0) | peak RSS main MB | peak RSS loader workers MB |"
        )
        print("|---|---|---|")
        for times in (1, 4):
            main_mb, workers_mb = peak_rss(repeated(images, times), args.workers)
            print(f"| {len(images) * times} | {main_mb:.0f} | {workers_mb:.0f} |")


if __name__ == "__main__":
    main()

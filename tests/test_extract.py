"""Extraction: one pass for several taps, resumable shards, unreadable images, DDP de-duplication."""

import gc
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.images import write_jpeg
from helpers.paths import ROOT

from ncl.codes.extraction import CodeExtractor, Extraction, ExtractionSettings, merge_shards
from ncl.codes.store import CodeStore
from ncl.data.images import ImageSet, ImageSetDataModule, folder_image_set
from ncl.data.transforms import extraction_transform

SETTINGS = ExtractionSettings(batch_size=4, num_workers=0, shard_size=4, progress=False)


def direct_codes(backbone, images: ImageSet, tap: str) -> np.ndarray:
    """The same codes computed by hand: decode, transform, forward, no Lightning."""
    import cv2

    t = extraction_transform(backbone.mean, backbone.std, 224)
    x = torch.stack(
        [
            t(torch.from_numpy(cv2.imread(str(f), cv2.IMREAD_COLOR_RGB)).permute(2, 0, 1))
            for f in images.files
        ]
    )
    with torch.inference_mode():
        return backbone.codes(x, [tap])[tap].numpy()


def assert_same_codes(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float noise, on unit rows (a random network's raw codes are tiny)."""
    unit = lambda x: np.asarray(x) / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(a), unit(b), atol=1e-4)
    assert np.abs(unit(a)).max() > 1e-2


def test_codes_match_a_plain_forward_and_taps_share_one_pass(
    backbone, images, tmp_path, monkeypatch
):
    calls = []
    codes = backbone.codes
    monkeypatch.setattr(
        backbone, "codes", lambda x, taps: (calls.append(list(taps)), codes(x, taps))[1]
    )
    store = CodeStore(tmp_path / "codes")
    sets = Extraction(images, backbone, "mnv2", ["pool", "logits"], store, SETTINGS).run()
    assert calls == [["pool", "logits"]] * 3  # 10 images in batches of 4: one pass per batch
    # a second call finds the codes and extracts nothing
    Extraction(images, backbone, "mnv2", ["pool", "logits"], store, SETTINGS).run()
    assert len(calls) == 3
    assert sets["pool"].ids == images.names
    assert (sets["pool"].dim, sets["logits"].dim) == (1280, 1000)
    assert_same_codes(sets["pool"].codes, direct_codes(backbone, images, "pool"))
    assert sets["pool"].meta["transform"]["crop"].startswith("none")
    assert not list((tmp_path / "codes" / "mnv2" / "toy").glob(".partial*"))
    # an image rewritten since (a regenerated benchmark): the stored codes are stale, and only
    # that image is coded again
    write_jpeg(images.files[0], size=(50, 50), seed=99)
    before = len(calls)
    again = Extraction(images, backbone, "mnv2", ["pool", "logits"], store, SETTINGS).run()
    assert len(calls) == before + 1
    assert_same_codes(again["pool"].codes, direct_codes(backbone, images, "pool"))


def test_a_changed_folder_codes_only_its_new_and_changed_images(backbone, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    for i in range(6):
        write_jpeg(folder / f"p{i}.jpg", size=(40, 30 + i), seed=i)
    store = CodeStore(tmp_path / "codes")
    coded: list[int] = []
    original = CodeExtractor.predict_step

    def counting(self, batch, batch_idx):
        coded.extend(batch[1].tolist())
        return original(self, batch, batch_idx)

    def run(settings=SETTINGS, weights=""):
        images = folder_image_set("photos", folder)
        sets = Extraction(images, backbone, "m", ["pool"], store, settings, weights=weights).run()
        return images, sets["pool"]

    monkeypatch.setattr(CodeExtractor, "predict_step", counting)
    run()
    assert len(coded) == 6
    coded.clear()
    write_jpeg(folder / "p9.jpg", size=(33, 44), seed=9)  # a new photo
    write_jpeg(folder / "p2.jpg", size=(50, 50), seed=42)  # an edited one
    (folder / "p4.jpg").unlink()  # a removed one
    images, codes = run()
    assert sorted(images.names[i] for i in coded) == ["p2", "p9"]
    assert codes.ids == images.names == ["p0", "p1", "p2", "p3", "p5", "p9"]
    assert_same_codes(codes.codes, direct_codes(backbone, images, "pool"))
    assert (codes.path / "stamps.txt").read_text().splitlines() == images.stamps()
    # other weights or another dtype lend nothing: every image is coded again
    coded.clear()
    run(weights="other")
    assert len(coded) == 6
    coded.clear()
    half = ExtractionSettings(batch_size=4, num_workers=0, progress=False, dtype="float16")
    run(half, weights="other")
    assert len(coded) == 6


def test_interrupted_run_resumes_with_the_images_left(backbone, images, tmp_path, monkeypatch):
    store = CodeStore(tmp_path / "codes")
    original = CodeExtractor.predict_step
    seen: list[int] = []

    def failing(self, batch, batch_idx):
        if batch_idx == 2:
            raise RuntimeError("power cut")
        seen.extend(batch[1].tolist())
        return original(self, batch, batch_idx)

    monkeypatch.setattr(CodeExtractor, "predict_step", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        Extraction(images, backbone, "mnv2", ["pool"], store, SETTINGS).run()
    assert not store.exists("mnv2", "toy", "pool")
    assert sorted(seen) == list(range(8))

    seen.clear()
    monkeypatch.setattr(
        CodeExtractor,
        "predict_step",
        lambda self, b, i: (seen.extend(b[1].tolist()), original(self, b, i))[1],
    )
    sets = Extraction(images, backbone, "mnv2", ["pool"], store, SETTINGS).run()
    assert sorted(seen) == [8, 9]  # only what the first run had not written
    assert_same_codes(sets["pool"].codes, direct_codes(backbone, images, "pool"))


def test_unreadable_image_is_reported_skipped_and_recorded(backbone, images, tmp_path, caplog):
    images.files[3].write_bytes(b"not a jpeg at all")
    store = CodeStore(tmp_path / "codes")
    sets = Extraction(images, backbone, "mnv2", ["pool"], store, SETTINGS).run()
    assert "im03" not in sets["pool"].ids and len(sets["pool"]) == 9
    assert sets["pool"].meta["failed"] == ["im03"]
    assert "im03.jpg" in caplog.text
    # no zero-filled row stands in for it
    assert np.all(np.linalg.norm(sets["pool"].codes, axis=1) > 0)


def test_merge_deduplicates_padded_ranks_in_image_set_order(tmp_path):
    """A DistributedSampler pads with repeats: rank 1 sees image 0 again."""
    images = ImageSet("s", [f"n{i}" for i in range(5)], [tmp_path / f"n{i}.jpg" for i in range(5)])
    partial = tmp_path / "partial"
    partial.mkdir()
    codes = np.arange(5, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    for rank, idx in ((0, [0, 2, 4]), (1, [1, 3, 0])):
        np.savez(
            partial / f"shard-{rank}-000000.npz",
            index=np.array(idx),
            failed=np.array([], np.int64),
            tap_t=codes[idx],
        )
    store = CodeStore(tmp_path / "codes")
    merge_shards(
        partial, images, {"t": store.artifact("m", "s", "t", {})}, "float16", {"model": "m"}
    )
    out = store.read("m", "s", "t")
    assert out.ids == images.names and out.codes.dtype == np.float16
    np.testing.assert_array_equal(out.codes[:, 0], [0, 1, 2, 3, 4])


def test_query_boxes_crop_before_resizing(backbone, tmp_path):
    img = tmp_path / "q.jpg"
    write_jpeg(img, size=(64, 48), seed=1)
    full = ImageSet("q_full", ["q"], [img])
    boxed = ImageSet("q_box", ["q"], [img], boxes=[(0.0, 0.0, 32.0, 24.0)])
    store = CodeStore(tmp_path / "codes")
    a = Extraction(full, backbone, "m", ["pool"], store, SETTINGS).run()["pool"]
    b = Extraction(boxed, backbone, "m", ["pool"], store, SETTINGS).run()["pool"]
    assert b.meta["transform"]["query_boxes"] and not a.meta["transform"]["query_boxes"]
    a_unit, b_unit = (np.asarray(c.codes) / np.linalg.norm(c.codes) for c in (a, b))
    assert np.abs(a_unit - b_unit).max() > 1e-3


def toy_extraction(images, tmp_path: Path, *groups: str) -> list[str]:
    """`python extract.py` of the toy images by a random MobileNetV2 on CPU processes, codes in
    `tmp_path`/codes; `groups` (e.g. `extraction=ddp`) come before the overrides."""
    import sys

    return [
        sys.executable,
        str(ROOT / "extract.py"),
        *groups,
        f"images.root={images.files[0].parent}",
        "images.name=toy",
        "model=mobilenet_v2",
        "model.pretrained=false",
        "taps=[pool]",
        f"paths.codes_dir={tmp_path / 'codes'}",
        "extraction.accelerator=cpu",
        "extraction.batch_size=3",
        "extraction.num_workers=0",
        "extraction.progress=false",
    ]


def test_ddp_on_two_cpu_processes_gathers_every_image_once(images, tmp_path):
    """Two gloo ranks share the images through Lightning's DistributedSampler; rank 0 publishes
    one set in image order, rank 1 waits for it (padding itself is covered by the merge test)."""
    import subprocess

    cmd = [
        *toy_extraction(images, tmp_path),
        "extraction.devices=2",
        "extraction.strategy=ddp",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    store = CodeStore(tmp_path / "codes")
    out = store.read("mobilenet_v2-random-init", "toy", "pool")
    assert out.ids == images.names and out.codes.shape == (10, 1280)
    assert not list(out.path.parent.glob(".partial*"))


def test_two_nodes_share_an_extraction_through_the_code_store(images, tmp_path):
    """Multi-node DDP as a cluster runs it, with two processes standing for two machines (one
    device each, NODE_RANK 0 and 1, one rendezvous, a code store both see): each joins as its own
    node, and rank 0 publishes one set with every image once."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        *toy_extraction(images, tmp_path, "extraction=ddp"),
        "extraction.devices=1",
        "extraction.num_nodes=2",
    ]
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    nodes = [
        subprocess.Popen(
            [*cmd, f"hydra.run.dir={tmp_path / f'run{rank}'}"],
            cwd=tmp_path,
            env={**os.environ, **rendezvous, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]
    out = CodeStore(tmp_path / "codes").read("mobilenet_v2-random-init", "toy", "pool")
    assert out.ids == images.names and out.codes.shape == (10, 1280)
    assert not list(out.path.parent.glob(".partial*"))


class _Leftover:
    """Garbage in a reference cycle whose destructor says which process ran it."""

    def __init__(self, log: Path) -> None:
        self.log, self.me = log, self

    def __del__(self) -> None:
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")


class _CollectingTransform:
    """Runs the garbage collector in the loader worker, as an allocation there may."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        gc.collect()
        return image.float()[:, :8, :8]


def test_loader_workers_never_destroy_what_they_inherit(images, tmp_path):
    """A forked worker that collected the parent's garbage would run its destructors without
    their threads: an onnxruntime session's hangs the extraction."""
    log = tmp_path / "destroyed.txt"
    gc.disable()  # keep the cycle uncollected in this process until the worker has forked
    try:
        _Leftover(log)
        data = ImageSetDataModule(images, _CollectingTransform(), batch_size=5, num_workers=1)
        batches = list(data.predict_dataloader())
    finally:
        gc.enable()
    gc.collect()
    assert sum(len(b[1]) for b in batches) == len(images)
    assert log.read_text().split() == [str(os.getpid())]  # destroyed here, never in a worker

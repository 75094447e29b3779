"""Reduced JPEG decode (`extraction.decode=reduced`): large JPEGs decoded at 1/2, 1/4 or 1/8 of
their size while what is extracted stays at least the network's input size; its codes are a
code set of their own, and close to the full decode's."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.images import ImageSet, ImageSetDataset
from ncl.io.decode import UnreadableImage, read_rgb, read_rgb_reduced, reduction

FAST = {"batch_size": 4, "num_workers": 0, "progress": False, "engine": "torch"}


def smooth_photo(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A JPEG of smooth shapes (a photo's spectrum, unlike noise, survives a reduced decode)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    image = np.stack([128 + 100 * np.sin(6 * x + k + seed) * np.cos(4 * y) for k in range(3)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        image[(x - cx) ** 2 + (y - cy) ** 2 < r**2] = rng.uniform(0, 255, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def test_the_largest_reduction_that_keeps_the_input_size():
    assert reduction(1024, 768, 224) == 2  # Paris: 512 x 384, a quarter would be 192 high
    assert reduction(2000, 1800, 224) == 8
    assert reduction(640, 480, 224) == 2  # UKB
    assert reduction(384, 384, 224) == 1  # the demo: nothing to gain
    assert reduction(900, 300, 224) == 1  # the short side decides


def test_a_large_jpeg_decodes_reduced_and_agrees_with_the_full_decode(tmp_path):
    path = smooth_photo(tmp_path / "big.jpg", 1000, 920)
    image, factor = read_rgb_reduced(path, 224)
    assert factor == 4 and image.shape == (230, 250, 3)
    full = cv2.resize(read_rgb(path), (250, 230), interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(float) - full).mean() < 3


def test_other_formats_and_small_images_decode_whole(tmp_path):
    png = tmp_path / "big.png"
    cv2.imwrite(str(png), np.zeros((900, 900, 3), np.uint8))
    assert read_rgb_reduced(png, 224)[1] == 1 and read_rgb_reduced(png, 224)[0].shape[0] == 900
    small = smooth_photo(tmp_path / "small.jpg", 300, 300)
    assert read_rgb_reduced(small, 224)[0].shape == (300, 300, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8garbage\xff\xd9")
    with pytest.raises(UnreadableImage, match=r"broken\.jpg"):
        read_rgb_reduced(broken, 224)


def test_a_query_box_is_what_must_stay_large_and_is_cropped_in_reduced_pixels(tmp_path):
    path = smooth_photo(tmp_path / "q.jpg", 1200, 1000)
    box = (100.0, 60.0, 1100.0, 560.0)  # 1000 x 500: half of it stays above 224, a quarter not
    images = ImageSet("q", ["q"], [path], boxes=[box])
    reduced, _ = ImageSetDataset(images, lambda x: x, reduce_to=224)[0]
    full, _ = ImageSetDataset(images, lambda x: x)[0]
    assert tuple(full.shape[1:]) == (500, 1000) and tuple(reduced.shape[1:]) == (250, 500)
    full_small = cv2.resize(full.permute(1, 2, 0).numpy(), (500, 250), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.permute(1, 2, 0).numpy().astype(float) - full_small).mean() < 3


def test_reduced_decode_is_a_code_set_of_its_own_close_to_the_full_decode(backbone, tmp_path):
    files = [smooth_photo(tmp_path / "imgs" / f"{i}.jpg", 900, 700, seed=i) for i in range(6)]
    images = ImageSet("big", [f.stem for f in files], files)
    store = CodeStore(tmp_path / "codes")
    full = Extraction(images, backbone, "m", ["pool"], store, ExtractionSettings(**FAST)).run()
    settings = ExtractionSettings(decode="reduced", **FAST)
    reduced = Extraction(images, backbone, "m", ["pool"], store, settings).run()
    assert reduced["pool"].meta["key"] != full["pool"].meta["key"]
    assert reduced["pool"].meta["inputs"]["decode"] == "reduced"
    assert reduced["pool"].meta["transform"]["decode"] == "reduced"
    assert "decode" not in full["pool"].meta["inputs"]  # full decode keeps the key it had
    a, b = (np.asarray(s["pool"].codes, dtype=np.float64) for s in (full, reduced))
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.98, cosine
    with pytest.raises(ValueError, match=r"extraction\.decode must be one of"):
        ExtractionSettings(decode="half")

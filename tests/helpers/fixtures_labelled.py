"""Tiny training sets in the labelled on-disk layouts the data configs read: class folders,
ImageNet (`train/`, `val/` of wnid folders), Google landmarks (`images/` + `train.txt`) and the
RGB-D object dataset. Images are small plain colours with noise, one colour per seed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = 64


def write_image(path: Path, seed: int) -> Path:
    """A small colour image: a plain colour per seed with some noise."""
    rng = np.random.default_rng(seed)
    image = np.full((SIZE, SIZE + 8, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def write_class_folders(root: Path, classes: list[str], per_class: int, ext: str = ".jpg") -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{name}_{i}{ext}", seed=100 * c + i)
    return root


def write_imagenet(root: Path, n_classes: int = 3, per_class: int = 4, val_per_class: int = 2):
    wnids = [f"n{i:08d}" for i in range(n_classes)]
    write_class_folders(root / "train", wnids, per_class, ".JPEG")
    write_class_folders(root / "val", wnids, val_per_class, ".JPEG")
    return root


def write_landmarks(root: Path, n_classes: int = 3, per_class: int = 5) -> Path:
    """Downloaded images below `images/`, `train.txt` listing them plus two failed downloads
    (one of a class with no image at all)."""
    lines = []
    for c in range(n_classes):
        name = f"landmark_{c}"
        for i in range(per_class):
            write_image(root / "images" / name / f"{i}.jpg", seed=c * 10 + i)
            lines.append(f"images/{name}/{i}.jpg {name}")
    lines += ["images/landmark_0/lost.jpg landmark_0", "images/gone/0.jpg gone_landmark"]
    (root / "train.txt").write_text("# path class\n" + "\n".join(lines) + "\n")
    return root


def write_rgbd(root: Path, instances: dict[str, int] | None = None, frames: int = 6) -> Path:
    """rgbd-dataset/<category>/<instance>/<instance>_<video>_<frame>_{crop,depthcrop,maskcrop}.png"""
    instances = instances or {"apple": 2, "bowl": 1}
    for c, (category, count) in enumerate(instances.items()):
        for k in range(1, count + 1):
            instance = f"{category}_{k}"
            folder = root / category / instance
            for f in range(frames):
                stem = f"{instance}_1_{f + 1}"
                write_image(folder / f"{stem}_crop.png", seed=c * 100 + k * 10 + f)
                write_image(folder / f"{stem}_depthcrop.png", seed=1)
                write_image(folder / f"{stem}_maskcrop.png", seed=2)
            (folder / f"{instance}_1_1_loc.txt").write_text("0,0\n")
    return root

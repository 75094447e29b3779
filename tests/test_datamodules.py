"""Training data: each on-disk layout read into labelled samples, the validation splits, the
errors and warnings that name their path, and the DataModule's batches.

The tiny datasets in the real layouts come from `helpers.fixtures_labelled` (`test_train.py`
trains on them too).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from helpers.fixtures_labelled import (
    write_class_folders,
    write_image,
    write_imagenet,
    write_landmarks,
    write_rgbd,
)

from ncl.data.datamodule import LabelledDataModule
from ncl.data.labelled import (
    ClassFolderLayout,
    ImageNetLayout,
    LandmarksLayout,
    RGBDLayout,
    class_folders,
    hold_out,
)
from ncl.demo.layout import DemoLayout


def test_imagenet_val_labels_follow_the_train_classes(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    for f in (root / "val" / "n00000001").iterdir():  # val lacks a class ...
        f.unlink()
    (root / "val" / "n00000001").rmdir()
    splits = ImageNetLayout(str(root)).load()
    assert splits.classes == ["n00000000", "n00000001", "n00000002"]
    assert len(splits.train) == 12
    assert sorted(set(splits.val.labels)) == [0, 2]  # ... and keeps the train indices
    for path, label in zip(splits.val.files, splits.val.labels, strict=True):
        assert path.parent.name == splits.classes[label]


def test_imagenet_unknown_val_class_is_an_error_naming_the_folder(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    write_image(root / "val" / "n99999999" / "x.JPEG", seed=0)
    with pytest.raises(ValueError, match="n99999999"):
        ImageNetLayout(str(root)).load()


def test_training_class_folder_without_images_is_an_error_naming_it(tmp_path):
    root = write_class_folders(tmp_path / "data", ["a", "b"], 2)
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match=str(root / "empty")):
        ClassFolderLayout(str(root)).load()


@pytest.mark.parametrize(
    "layout",
    [ImageNetLayout, LandmarksLayout, RGBDLayout, ClassFolderLayout],
    ids=lambda c: c.__name__,
)
def test_missing_root_fails_at_once_naming_it(tmp_path, layout):
    missing = tmp_path / "not_downloaded"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        layout(str(missing)).load()


def test_landmarks_list_file_skips_missing_downloads_and_holds_out_per_class(tmp_path, caplog):
    root = write_landmarks(tmp_path / "landmarks")
    layout = LandmarksLayout(str(root), list_file="train.txt", val_fraction=0.2, seed=3)
    with caplog.at_level(logging.WARNING):
        splits = layout.load()
    assert "lost.jpg" in caplog.text  # the failed download is named ...
    assert "gone_landmark" in caplog.text  # ... and the class left without images
    assert splits.classes == ["landmark_0", "landmark_1", "landmark_2"]
    assert len(splits.train) == 12 and len(splits.val) == 3  # one of five per class held out
    assert sorted(splits.val.labels) == [0, 1, 2]
    assert not set(splits.train.files) & set(splits.val.files)
    again = layout.load()
    assert again.val.files == splits.val.files  # seeded
    other = LandmarksLayout(str(root), list_file="train.txt", val_fraction=0.2, seed=4).load()
    assert other.val.files != splits.val.files


def test_landmarks_val_list_and_class_folders(tmp_path):
    root = write_landmarks(tmp_path / "landmarks")
    (root / "val.txt").write_text("images/landmark_2/0.jpg landmark_2\n")
    splits = LandmarksLayout(str(root), list_file="train.txt", val_list="val.txt").load()
    assert splits.val.labels == [2] and len(splits.train) == 15
    folders = LandmarksLayout(str(root / "images"), val_fraction=0.2).load()
    assert folders.classes == ["landmark_0", "landmark_1", "landmark_2"]
    assert len(folders.train) + len(folders.val) == 15


def test_rgbd_colour_crops_only_class_per_instance_sampled_with_seed(tmp_path):
    root = write_rgbd(tmp_path / "rgbd-dataset")
    splits = RGBDLayout(str(root), per_class=4, val_per_class=1, seed=0).load()
    assert splits.classes == ["apple_1", "apple_2", "bowl_1"]
    assert len(splits.train) == 12 and len(splits.val) == 3
    files = splits.train.files + splits.val.files
    assert all(f.name.endswith("_crop.png") for f in files)
    assert not set(splits.train.files) & set(splits.val.files)
    for path, label in zip(splits.train.files, splits.train.labels, strict=True):
        assert path.parent.name == splits.classes[label]
    assert RGBDLayout(str(root), per_class=4, val_per_class=1, seed=0).load() == splits
    assert RGBDLayout(str(root), per_class=4, val_per_class=1, seed=1).load() != splits


def test_rgbd_instance_with_few_crops_warns_and_keeps_them(tmp_path, caplog):
    root = write_rgbd(tmp_path / "rgbd-dataset", frames=3)
    with caplog.at_level(logging.WARNING):
        splits = RGBDLayout(str(root), per_class=200).load()
    assert "fewer than 200" in caplog.text and len(splits.train) == 9 and splits.val is None


def test_hold_out_keeps_a_training_image_of_every_class(tmp_path):
    root = write_class_folders(tmp_path / "data", ["one", "two"], 1)
    write_image(root / "two" / "extra.jpg", seed=9)
    splits = hold_out(class_folders(root), 0.5, seed=0)
    assert sorted(splits.train.labels) == [0, 1] and splits.val.labels == [1]


def test_demo_layout_takes_a_supplied_train_folder_as_it_is(tmp_path):
    root = tmp_path / "demo"
    write_class_folders(root / "train", ["inst_a", "inst_b"], 4)
    splits = DemoLayout(str(root), val_fraction=0.25).load()
    assert splits.classes == ["inst_a", "inst_b"]
    assert len(splits.train) == 6 and len(splits.val) == 2
    assert not (root / "demo.json").exists()  # nothing was generated


def attach(datamodule: LabelledDataModule, size: int = 32) -> None:
    """What Lightning gives `setup`: a trainer whose module has a backbone."""
    backbone = SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=size)
    datamodule.trainer = SimpleNamespace(lightning_module=SimpleNamespace(backbone=backbone))


def test_datamodule_batches_follow_the_backbone_and_skip_unreadable_images(tmp_path, caplog):
    root = write_class_folders(tmp_path / "data", ["a", "b"], 4)
    corrupt = root / "b" / "b_1.jpg"
    corrupt.write_bytes(b"not a jpeg")
    layout = ClassFolderLayout(str(root), val_fraction=0.25, seed=0)
    dm = LabelledDataModule(layout, batch_size=2, num_workers=0, crop_scale=(0.5, 1.0))
    assert dm.num_classes == 2
    attach(dm, size=32)
    dm.setup("fit")
    with caplog.at_level(logging.WARNING):
        batches = [*dm.train_dataloader(), *dm.val_dataloader()]
    assert str(corrupt) in caplog.text
    images = [b[0] for b in batches]
    labels = [b[1] for b in batches]
    assert sum(len(x) for x in images) == 7  # eight images, one unreadable and left out
    assert sum(len(b[2]) for b in batches) == 1
    assert all(x.shape[1:] == (3, 32, 32) for x in images)
    assert {int(label) for batch in labels for label in batch} == {0, 1}
    # the validation transform is the extraction one: the whole image, normalised
    val = next(iter(dm.val_dataloader()))[0]
    assert val.min() >= (0 - 0.5) / 0.25 and val.max() <= (1 - 0.5) / 0.25

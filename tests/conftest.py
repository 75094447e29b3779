"""Shared test set-up: entry points find the repo root, wandb never goes online, and the jobs'
configs come from fixtures, as in ashleve/lightning-hydra-template.

`backbone` (a seeded random MobileNetV2) and `images` (ten small JPEGs) serve the extraction tests;
`cfg_evaluate`, `cfg_extract`, `cfg_search`, `cfg_train` and `cfg_mine_pairs` each return a factory
`make(overrides) -> DictConfig` composing `conf/<job>.yaml` (see `helpers.configs`) with
`paths.data_dir=<tmp_path>/data` and `paths.output_dir=<tmp_path>/out` (overrides may set
either), HydraConfig set as in a run. Evaluate, extract and search also extract in process without
progress bars (`extraction.num_workers=0`, `extraction.progress=false`).
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from helpers.configs import QUIET_EXTRACTION, clear_hydra_config, compose_job
from helpers.images import write_jpeg
from helpers.paths import ROOT
from omegaconf import DictConfig

from ncl.data.images import ImageSet, folder_image_set
from ncl.models import Backbone, create_backbone

os.environ.setdefault("PROJECT_ROOT", str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")

ConfigFactory = Callable[[list[str]], DictConfig]


def _factory(job: str, tmp_path: Path, defaults: list[str]) -> Iterator[ConfigFactory]:
    def make(overrides: list[str]) -> DictConfig:
        return compose_job(
            job,
            [*defaults, *overrides],
            data_dir=tmp_path / "data",
            output_dir=tmp_path / "out",
        )

    yield make
    clear_hydra_config()


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    """A randomly initialised MobileNetV2, the same in every test module (seeded)."""
    torch.manual_seed(0)
    return create_backbone("mobilenet_v2", pretrained=False).eval()


@pytest.fixture
def images(tmp_path: Path) -> ImageSet:
    """Ten small JPEGs of different sizes, as the image set `toy`."""
    for i in range(10):
        write_jpeg(tmp_path / "imgs" / f"im{i:02d}.jpg", size=(40 + i, 30), seed=i)
    return folder_image_set("toy", tmp_path / "imgs")


@pytest.fixture
def cfg_evaluate(tmp_path: Path) -> Iterator[ConfigFactory]:
    yield from _factory("evaluate", tmp_path, QUIET_EXTRACTION)


@pytest.fixture
def cfg_extract(tmp_path: Path) -> Iterator[ConfigFactory]:
    yield from _factory("extract", tmp_path, QUIET_EXTRACTION)


@pytest.fixture
def cfg_search(tmp_path: Path) -> Iterator[ConfigFactory]:
    yield from _factory("search", tmp_path, QUIET_EXTRACTION)


@pytest.fixture
def cfg_train(tmp_path: Path) -> Iterator[ConfigFactory]:
    yield from _factory("train", tmp_path, [])


@pytest.fixture
def cfg_mine_pairs(tmp_path: Path) -> Iterator[ConfigFactory]:
    yield from _factory("mine_pairs", tmp_path, [])

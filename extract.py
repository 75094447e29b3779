"""Extract neural codes of a benchmark or an image folder: python extract.py [overrides]. See README."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from ncl.jobs.extract import run_extraction


@hydra.main(version_base="1.3", config_path="conf", config_name="extract")
def main(cfg: DictConfig) -> None:
    run_extraction(cfg)


if __name__ == "__main__":
    main()

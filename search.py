"""Search a folder of your own photos: python search.py images.root=<folder> query=<image or
folder> [--json] [overrides]. See README."""

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from ncl.jobs.search import search_or_exit


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> None:
    search_or_exit(cfg)


if __name__ == "__main__":
    if "--json" in sys.argv:  # a flag is friendlier than an override for a command-line tool
        sys.argv = [a for a in sys.argv if a != "--json"] + ["output=json"]
    main()

"""Mine matching pairs within the classes of an image set: python mine_pairs.py [overrides]. See README."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="mine_pairs")
def main(cfg: DictConfig) -> None:
    # Imported here, not above: the mining workers are spawned and re-import this file, and the
    # job's imports (torch, through the image-set readers) would cost each worker seconds.
    from ncl.jobs.mine_pairs import run_mining

    run_mining(cfg)


if __name__ == "__main__":
    main()

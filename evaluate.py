"""Evaluate neural codes on a retrieval benchmark: python evaluate.py [overrides]. See README."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from ncl.jobs.evaluate import run_evaluation


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    return run_evaluation(cfg)


if __name__ == "__main__":
    main()

"""The jobs' Hydra configs as a run composes them, for tests that call `ncl.jobs.*` in process.

`compose_job` composes `conf/<job>.yaml` with Hydra's `compose()`, with `paths.data_dir` and
`paths.output_dir` pointed where the test says (an override in `overrides` wins: later
overrides win in Hydra). Then, as `@hydra.main` does before it calls a task function, it sets
`HydraConfig` (with `hydra.runtime.output_dir` the run's output folder, so
`${hydra:runtime.output_dir}` resolves) and hands the job the config without its `hydra` node;
`HydraConfig.get()` has that node (e.g. an experiment's sweeper params).

conftest's `cfg_evaluate`, `cfg_extract`, `cfg_train` and `cfg_mine_pairs` fixtures are this
function bound to a test's `tmp_path`; a module-scoped fixture calls it directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from .fixtures_official import write_oxford
from .paths import CONF_DIR

# What every in-process extraction in the tests uses: no loader processes, no progress bars, and
# torch's forward pass (tests count and patch it; the other engines: tests/test_engines.py).
QUIET_EXTRACTION = [
    "extraction.num_workers=0",
    "extraction.progress=false",
    "extraction.engine=torch",
]


def compose_job(
    job: str, overrides: Sequence[str], *, data_dir: Path, output_dir: Path
) -> DictConfig:
    """`conf/<job>.yaml` with `overrides`, its data below `data_dir`, its outputs in
    `output_dir` (unless `overrides` set `paths.*` themselves)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            job,
            overrides=[f"paths.data_dir={data_dir}", *overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        if OmegaConf.is_interpolation(cfg.paths, "output_dir"):  # not overridden by the test
            cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = cfg.paths.output_dir
    HydraConfig.instance().set_config(cfg)
    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def clear_hydra_config() -> None:
    """Forget the HydraConfig a test set, so no later test resolves `hydra:` against it."""
    HydraConfig.instance().cfg = None


def oxford_overrides(root: Path, *more: str) -> list[str]:
    """An evaluation of an Oxford-format fixture at `root`, uncompressed, on the `pool` tap."""
    return [
        "benchmark=oxford5k",
        f"benchmark.reader.root={root}",
        "compression=none",
        "taps=[pool]",
        *more,
    ]


def reranked_oxford_run(cfg_evaluate, tmp_path: Path) -> Callable[[str], dict]:
    """`run(rerank) -> results.json` of `evaluate.py` on a small generated Oxford benchmark
    (`pool` codes, uncompressed) with `rerank=<rerank>`, for the re-rankers' end-to-end tests."""
    from ncl.jobs.evaluate import run_evaluation  # the job, imported only by the tests that run it

    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=6, n_other=4)

    def run(rerank: str) -> dict:
        cfg = cfg_evaluate(
            [
                "benchmark=oxford5k",
                f"benchmark.reader.root={oxford.root}",
                "compression=none",
                "taps=[pool]",
                f"rerank={rerank}",
            ]
        )
        run_evaluation(cfg)
        return json.loads((tmp_path / "out" / "results.json").read_text())

    return run

"""The sweeps that regenerate the paper's Tables 1, 2 and 4 compose, sweep real config options,
and every cell they produce has a paper figure to sit beside."""

from __future__ import annotations

import pytest
from helpers.paths import ROOT
from hydra.core.hydra_config import HydraConfig

from ncl.jobs.config import as_list
from ncl.report.paper import paper_figure


def sweep(cfg_evaluate, experiment: str):
    """The experiment's config and the sweeper's params (in its `hydra` node)."""
    cfg = cfg_evaluate([f"experiment={experiment}"])
    return cfg, dict(HydraConfig.get().sweeper.params)


@pytest.mark.parametrize(
    ("experiment", "methods"),
    [("paper_table1", ["none"]), ("paper_table2", ["pca"]), ("paper_table4", None)],
)
def test_paper_sweep_cells_all_have_paper_figures(experiment, methods, cfg_evaluate):
    cfg, params = sweep(cfg_evaluate, experiment)
    assert cfg.model.paper_codes == "imagenet"
    group = "compression" if "compression" in params else "benchmark"
    for option in params[group].split(","):
        assert (ROOT / "conf" / group / f"{option}.yaml").is_file(), option
    benchmarks = params["benchmark"].split(",") if "benchmark" in params else [cfg.benchmark.name]
    methods = methods or params["compression"].split(",")
    cells = [
        (benchmark, tap, method, dim)
        for benchmark in benchmarks
        for tap in as_list(cfg.taps)
        for method in methods
        for dim in ([None] if method == "none" else [d for d in as_list(cfg.compression.dim) if d])
    ]
    missing = [c for c in cells if paper_figure(c[0], "imagenet", c[1], c[2], c[3]) is None]
    # Table 1 has Oxford 105K for layer 6 only
    assert missing == [c for c in missing if c[0] == "oxford105k" and c[1] != "l6"]
    assert len(cells) > len(missing)

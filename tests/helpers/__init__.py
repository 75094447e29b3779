"""Helpers shared by the test modules (importable as `helpers`: pytest puts `tests/` on the path).

- `paths`: the repository root, its `conf/` and the real benchmark samples beside the checkout.
- `configs`: the jobs' Hydra configs composed as in a run (behind conftest's `cfg_*` fixtures).
- `images`: small real image files.
- `fixtures_official`: tiny benchmarks in the official on-disk formats (Oxford, Paris,
  revisited, Holidays, UKB) and ranks files.
- `fixtures_labelled`: tiny training sets in the labelled layouts (class folders, ImageNet,
  landmarks, RGB-D).
- `compute_ap`: the reference port of Oxford's `compute_ap.cpp` (also the benchmarks' baseline).

Test modules import from here, never from one another or from conftest.
"""

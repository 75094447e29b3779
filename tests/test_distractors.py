"""Distractors join a benchmark's database: never positive, the ground truth untouched, named in
the results; synthetic ones follow the real codes' distribution and are made once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford

from ncl.codes.distractors import SyntheticDistractors
from ncl.codes.store import write_codes
from ncl.data.images import ImageSet
from ncl.data.synthetic import fit_code_model
from ncl.jobs.evaluate import run_evaluation


def clustered_codes(n: int, d: int, seed: int) -> np.ndarray:
    """Unit codes around 5 centres in the positive orthant, as ReLU network codes are."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((5, d)))
    x = centres[rng.integers(0, 5, n)] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_synthetic_codes_follow_the_real_ones_and_are_unit_length():
    codes = clustered_codes(900, 24, 0)
    real, held_out = codes[:600], codes[600:]
    fake = fit_code_model(real, components=8, rank=12).sample(300, np.random.default_rng(0))
    assert fake.shape == (300, 24) and fake.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fake, axis=1), 1, atol=1e-5)

    def nearest_real(x):
        return (x @ real.T).max(axis=1).mean()

    # as near to the real codes as unseen real codes are (one Gaussian is not: 0.04 off);
    # random unit codes are far
    noise = np.random.default_rng(2).standard_normal((300, 24))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    assert nearest_real(fake) == pytest.approx(nearest_real(held_out), abs=0.02)
    assert nearest_real(noise) < nearest_real(held_out) - 0.2


def test_synthetic_distractors_are_a_code_set_made_once_beside_the_real_one(tmp_path):
    real = write_codes(
        tmp_path / "model" / "fit" / "pool", [f"f{i}" for i in range(80)], clustered_codes(80, 8, 0)
    )
    like = ImageSet(name="fit", names=[], files=[])
    made = SyntheticDistractors(count=1000, like=like, components=4, rank=4).code_set(real)
    assert made.path == tmp_path / "model" / "synthetic-1000-like-fit-s0" / "pool"
    assert made.codes.shape == (1000, 8) and made.codes.dtype == np.float16
    assert made.meta["synthetic"] is True and made.ids[0].startswith("synthetic")
    stamp = (made.path / "codes.npy").stat().st_mtime_ns
    again = SyntheticDistractors(count=1000, like=like, components=4, rank=4).code_set(real)
    assert (again.path / "codes.npy").stat().st_mtime_ns == stamp  # reused
    other = SyntheticDistractors(count=1000, like=like, components=4, rank=4, seed=1)
    assert other.code_set(real).path != made.path


@pytest.fixture(scope="module")
def oxford(tmp_path_factory):
    return write_oxford(tmp_path_factory.mktemp("oxford5k"), images_per_landmark=6, n_other=4)


def test_distractors_are_never_positive_and_leave_the_ground_truth_alone(
    oxford, cfg_evaluate, tmp_path
):
    plain = run_evaluation(cfg_evaluate(oxford_overrides(oxford.root)))
    before = json.loads((tmp_path / "out" / "results.json").read_text())
    like = [f"benchmark.fit_on.root={oxford.root}/jpg", "benchmark.fit_on.name=oxford_fit"]
    cfg = cfg_evaluate(
        oxford_overrides(oxford.root, *like, "distractors=synthetic", "distractors.count=300")
    )
    with_distractors = run_evaluation(cfg)
    after = json.loads((tmp_path / "out" / "results.json").read_text())
    name = "synthetic-300-like-oxford_fit-s0"
    assert after["benchmark"] == f"oxford5k+{name}"
    assert after["distractors"]["kind"] == "synthetic" and after["distractors"]["codes"] == 300
    assert after["database"] == before["database"] and after["queries"] == before["queries"]
    row = after["rows"][0]
    n = before["database"]
    assert row["depth"] == n + 300
    # a distractor is never positive; ranked above a positive, it can only lower AP
    labels = [
        label
        for top, rel in zip(row["top"], row["top_relevance"], strict=True)
        for i, label in zip(top, rel, strict=True)
        if i >= n
    ]
    assert labels and set(labels) == {"negative"}
    assert with_distractors <= plain
    assert all(
        a <= b + 1e-12
        for a, b in zip(row["per_query"]["AP"], before["rows"][0]["per_query"]["AP"], strict=True)
    )
    assert all(int(i) < n for i in after["gallery_images"])

"""The discriminative projection: its loss and gradient by hand, the pair data, a training run
that learns what PCA cannot see, and the compressor's round trip through evaluate.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures_official import write_oxford

from ncl.codes.pca import cached_pca_basis
from ncl.codes.store import CodeStore, write_codes
from ncl.compress.pca import PCA, PCABasis
from ncl.compress.projection import LearnedProjection, projection_file
from ncl.jobs.evaluate import run_evaluation
from ncl.jobs.train import run_training
from ncl.pairs import Pair, write_pairs
from ncl.projection.data import PairDataModule, different_class_pairs, image_classes
from ncl.projection.module import hinge_loss


def test_hinge_loss_and_gradient_by_hand():
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    x_i = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    x_j = torch.tensor([[0.0, 0.0], [0.0, 0.5]])
    y = torch.tensor([1.0, -1.0])
    # pair 1: W d = (1, 2), |.|^2 = 5, 1 - (3 - 5) = 3; pair 2: W d = (0, -1), 1 + (3 - 1) = 3
    loss = hinge_loss(w, b, x_i, x_j, y)
    assert loss.item() == pytest.approx(3.0)
    loss.backward()
    # d/dW |W d|^2 = 2 (W d) d^T; the loss has +y on it: mean of 2 y (W d) d^T
    d1, d2 = torch.tensor([1.0, 1.0]), torch.tensor([0.0, -0.5])
    g1 = 2 * torch.outer(torch.tensor([1.0, 2.0]), d1)
    g2 = -2 * torch.outer(torch.tensor([0.0, -1.0]), d2)
    assert torch.allclose(w.grad, (g1 + g2) / 2)
    assert b.grad.item() == pytest.approx((-1 + 1) / 2)


def test_pairs_satisfying_the_margin_cost_nothing():
    w = torch.eye(2)
    x = torch.zeros(2, 2)
    far = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    loss = hinge_loss(w, torch.tensor(2.0), x, far, torch.tensor([1.0, -1.0]))
    # a positive at distance 0 (< b - 1) and a negative at distance 9 (> b + 1)
    assert loss.item() == 0.0


def test_negatives_are_always_of_different_classes():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    pairs = different_class_pairs(labels, 500, torch.Generator().manual_seed(0))
    assert (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    assert image_classes(["b/1", "a/2", "b/3"]).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="no class folder"):
        image_classes(["loose.jpg"])


def test_projection_round_trips_with_and_without_pca_pre_step(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(40, 12)).astype(np.float32)
    basis = PCABasis.fit(codes, 8)
    for pre in (None, basis):
        projection = LearnedProjection(
            weight=rng.normal(size=(3, 12 if pre is None else 8)),
            pre_basis=pre,
            pre_dim=None if pre is None else 8,
            info={"pairs": "p.tsv"},
        )
        path = tmp_path / f"projection-{pre is None}.npz"
        projection.save(path)
        loaded = LearnedProjection.load(path)
        assert loaded.info == {"pairs": "p.tsv"} and loaded.dim == 3
        out = loaded(codes)
        np.testing.assert_allclose(out, projection(codes), rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="takes 12-d codes"):
        loaded(codes[:, :5])
    with pytest.raises(FileNotFoundError, match="experiment=projection_demo"):
        LearnedProjection.load(tmp_path / "missing.npz")


def clustered_codes(classes: int = 20, per_class: int = 10, seed: int = 0):
    """Codes whose classes differ in 4 dims and vary much more, at random, in 28 others: PCA
    keeps the nuisance, a projection trained on pairs should find the 4 dims."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.6, size=(classes, 4))
    ids, rows = [], []
    for c in range(classes):
        for k in range(per_class):
            signal = centres[c] + rng.normal(scale=0.05, size=4)
            rows.append(np.concatenate([signal, rng.normal(scale=1.0, size=28)]))
            ids.append(f"class{c:02d}/img{k}")
    return ids, np.asarray(rows, dtype=np.float32)


def nearest_neighbour_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pairs")
    ids, codes = clustered_codes()
    write_codes(root / "codes", ids, codes)
    pairs = [
        Pair(ids[i], ids[i + 1], ids[i].split("/")[0], 30)
        for i in range(0, len(ids), 2)  # each image in one pair, as the miner's subset
    ]
    write_pairs(root / "pairs.tsv", pairs)
    return {"codes": root / "codes", "pairs": root / "pairs.tsv", "ids": ids}


def projection_overrides(pair_data) -> list[str]:
    """experiment=projection_demo on the fixture's codes and pairs."""
    return [
        "experiment=projection_demo",
        f"data.pairs_file={pair_data['pairs']}",
        f"data.codes={pair_data['codes']}",
        "data.batch_size=16",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
    ]


def test_fast_dev_run_of_the_projection_experiment_writes_nothing(pair_data, cfg_train):
    overrides = [*projection_overrides(pair_data), "module.dim=4", "trainer.fast_dev_run=true"]
    run_training(cfg_train(overrides))
    assert not projection_file(pair_data["codes"], 4).exists()


def test_training_finds_the_class_dimensions_that_pca_misses(pair_data, cfg_train):
    cfg = cfg_train(
        [
            *projection_overrides(pair_data),
            "module.dim=4",
            "trainer.max_epochs=30",
            "callbacks.early_stopping=null",
        ]
    )
    run_training(cfg)
    learned = LearnedProjection.load(projection_file(pair_data["codes"], 4))
    assert learned.info["pairs"] == str(pair_data["pairs"]) and learned.pre_basis is None

    ids, codes = clustered_codes()
    labels = image_classes(ids)
    pca = PCA(PCABasis.fit(codes, 4), 4, whiten=True)
    before = nearest_neighbour_accuracy(pca(codes), labels)
    after = nearest_neighbour_accuracy(learned(codes), labels)
    assert before < 0.5 < after, (before, after)


def test_large_projections_learn_on_pca_compressed_codes(pair_data, tmp_path):
    """From pre_pca_from_dim on, W takes the codes' PCA to pre_pca_dim (the paper: 1024)."""
    module = PairDataModule(
        str(pair_data["pairs"]), str(pair_data["codes"]), dim=8, pre_pca_dim=16, pre_pca_from_dim=8
    )
    assert module.input_dim == 16 and module.pre_basis is not None
    weight, threshold = module.initial_projection()
    assert weight.shape == (8, 16) and threshold > 0
    assert PairDataModule(str(pair_data["pairs"]), str(pair_data["codes"]), dim=4).input_dim == 32


def test_missing_codes_or_pairs_say_how_to_make_them(pair_data, tmp_path):
    module = PairDataModule(str(pair_data["pairs"]), str(tmp_path / "nowhere"), dim=4)
    with pytest.raises(FileNotFoundError, match=r"extract\.py"):
        _ = module.input_dim
    module = PairDataModule(str(tmp_path / "pairs.tsv"), str(pair_data["codes"]), dim=4)
    with pytest.raises(FileNotFoundError, match=r"pairs.tsv: no pairs file.*mine_pairs\.py"):
        _ = module.split


def test_evaluate_applies_a_stored_projection(tmp_path, cfg_evaluate):
    """A projection of identity after PCA to 4 dims is PCA to 4 dims: evaluate.py must load it
    from beside the fit codes and score exactly what compression=pca scores."""
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=6, n_other=4)
    common = ["benchmark=oxford5k", f"benchmark.reader.root={oxford.root}", "taps=[pool]"]
    common += ["compression.fit_on=self"]
    run_evaluation(cfg_evaluate([*common, "compression=pca", "compression.dim=[4]"]))
    pca = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]

    fit = CodeStore(tmp_path / "data" / "codes").read("efficientnet_lite0", "oxford5k", "pool")
    basis = cached_pca_basis(fit, 1024)
    identity = LearnedProjection(np.eye(4), pre_basis=basis, pre_dim=4, info={"pairs": "p.tsv"})
    identity.save(projection_file(fit.path, 4))
    run_evaluation(cfg_evaluate([*common, "compression=projection", "compression.dim=[4]"]))
    projected = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]
    assert (projected["method"], projected["dim"]) == ("projection", 4)
    assert projected["compressor"] == {"pairs": "p.tsv"}  # which pairs taught it, in the results
    assert projected["metrics"]["mAP"] == pytest.approx(pca["metrics"]["mAP"], abs=1e-9)
    assert projected["per_query"]["AP"] == pytest.approx(pca["per_query"]["AP"], abs=1e-9)

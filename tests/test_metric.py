"""Siamese fine-tuning (ncl.metric): the tuple losses against values worked out by hand, hard
negatives from generated codes, the DDP sharding of the pool's description without DDP, a
fast_dev_run of experiment=siamese_demo, and a trained checkpoint used by evaluate.py with its
learned pooling and whitening."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers.configs import compose_job
from helpers.fixtures_labelled import write_class_folders
from helpers.fixtures_official import write_ukb

from ncl.codes.store import read_codes
from ncl.data.images import ImageSetDataset, folder_image_set
from ncl.data.transforms import extraction_transform
from ncl.jobs.evaluate import run_evaluation
from ncl.jobs.train import run_training
from ncl.metric.losses import ContrastiveLoss, EuclideanDistance, TripletLoss
from ncl.metric.mining import NO_NEGATIVE, hardest_negatives, shard, unshard
from ncl.metric.tuples import TupleDataModule
from ncl.models import create_backbone
from ncl.models.pooling import GeM, pooling_config, pooling_from_config
from ncl.models.retrieval import GLOBAL_TAP, RetrievalNet
from ncl.pairs import Pair, write_pairs

CLASSES = [f"inst_{c}" for c in "abcdef"]  # six classes: five negatives of other classes


def tuples_of(query, positive, *negatives) -> torch.Tensor:
    return torch.tensor([[query, positive, *negatives]], dtype=torch.float32)


def test_contrastive_loss_by_hand():
    # query (0, 0); positive at distance 0.3; negatives at 0.5 (inside the margin) and 2 (beyond)
    tuples = tuples_of([0.0, 0.0], [0.3, 0.0], [0.0, 0.5], [2.0, 0.0])
    expected = 0.5 * 0.3**2 + 0.5 * (0.7 - 0.5) ** 2  # the far negative costs nothing
    assert ContrastiveLoss(margin=0.7)(tuples).item() == pytest.approx(expected)
    # a batch is the mean over its tuples
    other = tuples_of([0.0, 0.0], [0.0, 0.1], [0.1, 0.0], [0.0, 0.0])
    second = 0.5 * 0.1**2 + 0.5 * ((0.7 - 0.1) ** 2 + 0.7**2)
    batch = torch.cat([tuples, other])
    # (a zero distance counts as 1e-6: the square root is clamped for its gradient)
    assert ContrastiveLoss(margin=0.7)(batch).item() == pytest.approx(
        (expected + second) / 2, abs=1e-5
    )


def test_triplet_loss_by_hand_on_squared_distances():
    tuples = tuples_of([0.0, 0.0], [0.3, 0.0], [0.0, 0.35], [1.0, 0.0])
    # squared: positive 0.09, negatives 0.1225 (within 0.1 of it) and 1 (far enough)
    expected = 0.1 + 0.09 - 0.1225
    assert TripletLoss(margin=0.1)(tuples).item() == pytest.approx(expected)


def test_a_new_distance_or_margin_is_a_part_of_the_loss():
    tuples = tuples_of([0.0, 0.0], [0.0, 0.2], [0.4, 0.0])
    squared = ContrastiveLoss(margin=1.0, distance=EuclideanDistance(squared=True))
    assert squared(tuples).item() == pytest.approx(0.5 * 0.04**2 + 0.5 * (1 - 0.16) ** 2)
    with pytest.raises(ValueError, match=r"n >= 1 negatives"):
        ContrastiveLoss()(torch.zeros(2, 2, 4))


def test_losses_have_finite_gradients_at_zero_distance():
    tuples = tuples_of([0.5, 0.5], [0.5, 0.5], [0.5, 0.5]).requires_grad_()
    ContrastiveLoss()(tuples).backward()
    assert torch.isfinite(tuples.grad).all()


def random_codes(n: int, dim: int, seed: int) -> np.ndarray:
    codes = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return codes / np.linalg.norm(codes, axis=1, keepdims=True)


def test_hard_negatives_are_the_nearest_of_other_classes_one_per_class():
    pool = random_codes(300, 16, 0)
    pool_classes = np.random.default_rng(1).integers(0, 20, 300)
    queries = random_codes(40, 16, 2)
    query_classes = np.random.default_rng(3).integers(0, 20, 40)
    found = hardest_negatives(queries, pool, query_classes, pool_classes, count=5)
    assert found.shape == (40, 5) and (found != NO_NEGATIVE).all()
    for q, row in enumerate(found):
        assert (pool_classes[row] != query_classes[q]).all()  # never the query's own class
        assert len(set(pool_classes[row])) == 5  # one per class
        similarity = pool @ queries[q]
        others = np.flatnonzero(pool_classes != query_classes[q])
        assert row[0] == others[np.argmax(similarity[others])]  # the nearest other-class one
        assert (np.diff(similarity[row]) <= 1e-6).all()  # nearest first
        # each pick is the nearest image of a class not picked before it (nor the query's)
        for k, i in enumerate(row):
            allowed = ~np.isin(pool_classes, [query_classes[q], *pool_classes[row[:k]]])
            assert similarity[i] == pytest.approx(similarity[allowed].max())


def test_hard_negatives_search_deeper_when_near_neighbours_share_a_class():
    # the 100 nearest images are all of class 0 (the query's and one look-alike class): the
    # search must widen past them to find four more classes
    query = random_codes(1, 8, 0)
    near = query + 0.01 * random_codes(100, 8, 1)
    far = random_codes(50, 8, 2) - 2 * query
    pool = np.concatenate([near, far])
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    classes = np.concatenate([np.zeros(50), np.ones(50), 2 + np.arange(50) % 5]).astype(int)
    found = hardest_negatives(query, pool, np.array([0]), classes, count=5)[0]
    assert classes[found[0]] == 1
    assert set(classes[found[1:]]) < {2, 3, 4, 5, 6} and len(set(classes[found[1:]])) == 4
    # fewer other classes than asked: the rest is NO_NEGATIVE
    short = hardest_negatives(query, pool[:100], np.array([0]), classes[:100], count=3)[0]
    assert classes[short[0]] == 1 and (short[1:] == NO_NEGATIVE).all()


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_sharded_description_gathers_back_in_order(world):
    indices = np.array([7, 3, 9, 0, 4, 11, 5])  # 7 images: padded for 2, 3 and 4 ranks
    shards = [shard(indices, rank, world) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal sizes, as all_gather needs
    assert set(np.concatenate(shards)) == set(indices)
    # each rank "describes" its images; all_gather stacks them world x m x dim
    gathered = torch.stack(
        [torch.tensor(s, dtype=torch.float32)[:, None].repeat(1, 3) for s in shards]
    )
    codes = unshard(gathered, len(indices))
    assert codes[:, 0].tolist() == indices.tolist()


@pytest.fixture(scope="module")
def tuple_data(tmp_path_factory) -> Path:
    """Six classes of three images below data/demo/train and a pair per class, where
    experiment=siamese_demo looks for them."""
    root = tmp_path_factory.mktemp("data")
    write_class_folders(root / "demo" / "train", CLASSES, 3)
    pairs = [Pair(f"{c}/{c}_0", f"{c}/{c}_1", c, 20) for c in CLASSES]
    write_pairs(root / "pairs" / "demo_train" / "pairs.tsv", pairs)
    return root


def test_every_process_draws_the_same_queries_and_pool_each_epoch(tuple_data):
    def module(seed: int) -> TupleDataModule:
        return TupleDataModule(
            str(tuple_data / "pairs" / "demo_train" / "pairs.tsv"),
            str(tuple_data / "demo" / "train"),
            queries=4,
            pool_size=10,
            seed=seed,
        )

    a, b = module(0), module(0)
    for epoch in (0, 1):
        for x, y in zip(a.draw(epoch), b.draw(epoch), strict=True):
            assert np.array_equal(x, y)  # the same on every rank: no communication needed
    assert not np.array_equal(a.draw(0)[1], a.draw(1)[1])  # a new pool each epoch
    assert len(a.pairs) == 12 and len(a.draw(0)[0]) == 4  # both ways round, 4 drawn


def test_too_few_classes_for_the_negatives_is_a_clear_error(tuple_data):
    data = TupleDataModule(
        str(tuple_data / "pairs" / "demo_train" / "pairs.tsv"),
        str(tuple_data / "demo" / "train"),
        negatives=6,
    )
    with pytest.raises(ValueError, match="6 classes, but 6 negatives"):
        data.classes  # noqa: B018


def siamese_overrides(data: Path, *more: str) -> list[str]:
    return [
        "experiment=siamese_demo",
        f"paths.data_dir={data}",
        "data.num_workers=0",
        "data.batch_size=2",
        "callbacks.rich_progress_bar=null",
        *more,
    ]


def test_fast_dev_run_of_the_siamese_demo_writes_nothing(tuple_data, tmp_path):
    cfg = compose_job(
        "train",
        siamese_overrides(tuple_data, "trainer.fast_dev_run=true"),
        data_dir=tuple_data,
        output_dir=tmp_path,
    )
    run_training(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_pooling_config_round_trips():
    gem = GeM(p=2.5)
    rebuilt = pooling_from_config(pooling_config(gem))
    assert isinstance(rebuilt, GeM) and rebuilt.p.item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="unknown pooling type 'Sum'"):
        pooling_from_config({"type": "Sum"})


@pytest.fixture(scope="module")
def siamese_run(tuple_data, tmp_path_factory) -> Path:
    """Two steps of siamese training of a random MobileNetV2 with a 16-d whitening from Lw
    (its batch norm in training mode: with its initial running statistics the map is 0)."""
    out = tmp_path_factory.mktemp("siamese_run")
    cfg = compose_job(
        "train",
        siamese_overrides(
            tuple_data,
            "module.backbone=mobilenet_v2",
            "module.init_from=null",
            "module.whitening=16",
            "module.freeze_batchnorm=false",  # a random network needs batch statistics
            "module.optimizer.lr=1e-3",
            "trainer.max_steps=2",
        ),
        data_dir=tuple_data,
        output_dir=out,
    )
    run_training(cfg)
    return out / "checkpoints" / "last.ckpt"


def test_the_checkpoint_is_a_backbone_with_its_pooling_and_whitening(siamese_run):
    state = torch.load(siamese_run, weights_only=True)["state_dict"]  # plain values only
    p = state["backbone.pooling.p"].item()
    assert p != pytest.approx(3.0, abs=1e-6)  # GeM's p was trained
    net = create_backbone(str(siamese_run)).eval()
    assert isinstance(net, RetrievalNet) and net.tap_dims[GLOBAL_TAP] == 16
    assert net.pooling.p.item() == pytest.approx(p)
    assert torch.equal(net.whitening.weight, state["backbone.whitening.weight"])


def test_evaluate_uses_the_checkpoint_with_its_pooling_and_whitening(
    siamese_run, cfg_evaluate, tmp_path
):
    ukb = write_ukb(tmp_path / "ukb", n_objects=3)
    cfg = cfg_evaluate(
        [
            "benchmark=ukb",
            f"benchmark.reader.root={ukb.root}",
            "compression=none",
            f"model.name={siamese_run}",
            "taps=[global]",
        ]
    )
    run_evaluation(cfg)
    row = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]
    assert row["tap"] == "global" and row["dim"] == 16
    stored = read_codes(next((tmp_path / "data" / "codes").rglob("ukb/global")))
    # the codes evaluate.py stored are the network's descriptors: learned p, whitening, L2
    net = create_backbone(str(siamese_run)).eval()
    images = folder_image_set("ukb", ukb.image_dir)
    dataset = ImageSetDataset(images, extraction_transform(net.mean, net.std, net.input_size))
    batch = torch.stack([dataset[i][0] for i in range(len(images))])
    with torch.no_grad():
        expected = net.describe(batch).numpy()
    order = [images.names.index(i) for i in stored.ids]
    assert np.allclose(np.asarray(stored.codes), expected[order], atol=1e-4)
    assert np.allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-5)


def test_retrieval_net_whitening_is_lw_as_a_linear_layer():
    torch.manual_seed(0)
    base = create_backbone("mobilenet_v2", pretrained=False)
    net = RetrievalNet(base, GeM(), whitening=4).eval()
    mean = np.random.default_rng(0).normal(size=1280).astype(np.float32)
    projection = np.random.default_rng(1).normal(size=(1280, 1280)).astype(np.float32)
    net.set_whitening(mean, projection)
    pooled = torch.nn.functional.normalize(torch.randn(3, 1280), dim=-1)
    expected = (pooled.numpy() - mean) @ projection[:4].T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(net.whiten(pooled).detach().numpy(), expected, atol=1e-4)
    assert math.isclose(net.tap_dims[GLOBAL_TAP], 4)


def test_the_landmarks_experiment_composes_for_gpus(tmp_path):
    cfg = compose_job(
        "train", ["experiment=siamese_landmarks"], data_dir=tmp_path, output_dir=tmp_path
    )
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.precision == "16-mixed"
    assert cfg.trainer.reload_dataloaders_every_n_epochs == 1
    assert cfg.data._target_ == "ncl.metric.tuples.TupleDataModule"
    assert cfg.module.whitening == 1280 and cfg.module.loss.margin == 0.7
    triplet = compose_job(
        "train",
        ["experiment=siamese_landmarks", "module/loss=triplet"],
        data_dir=tmp_path,
        output_dir=tmp_path,
    )
    assert triplet.module.loss._target_ == "ncl.metric.losses.TripletLoss"
    assert triplet.module.loss.margin == 0.1  # the part's own margin


def test_mining_without_reloading_loaders_each_epoch_is_refused(tuple_data, tmp_path):
    cfg = compose_job(
        "train",
        siamese_overrides(
            tuple_data, "trainer.fast_dev_run=true", "trainer.reload_dataloaders_every_n_epochs=0"
        ),
        data_dir=tuple_data,
        output_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=1"):
        run_training(cfg)


def test_an_epoch_of_mining_skips_unreadable_images(tmp_path):
    """mine() end to end with a stand-in network (mean colour): tuples are a pair and negatives
    of five other classes; an unreadable image leaves the pool and its pair."""
    root = tmp_path / "train"
    write_class_folders(root, CLASSES, 3)
    (root / "inst_a" / "inst_a_1.jpg").write_bytes(b"not a jpeg")
    pairs = [Pair(f"{c}/{c}_0", f"{c}/{c}_1", c, 20) for c in CLASSES]
    write_pairs(tmp_path / "pairs.tsv", pairs)
    data = TupleDataModule(str(tmp_path / "pairs.tsv"), str(root), num_workers=0)
    data.trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False)
    data.transform = extraction_transform((0.5,) * 3, (0.5,) * 3, 32)

    def mean_colour(images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(images.mean(dim=(2, 3)), dim=-1)

    tuples = data.mine(torch.nn.Identity(), mean_colour, epoch=0)
    names = data.images.names
    broken = names.index("inst_a/inst_a_1")
    assert tuples.shape == (10, 7) and broken not in tuples  # inst_a's pair left out, both ways
    for row in tuples:
        classes = data.classes[row]
        assert classes[0] == classes[1] and len(set(classes[2:]) | {classes[0]}) == 6

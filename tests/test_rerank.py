"""Re-ranking (issue 12): AQE, alpha-QE and DBA on hand-made codes, several codes per image, DBA's
cached codes, and evaluate.py with a re-ranker end to end."""

import numpy as np
import pytest
from helpers.configs import reranked_oxford_run

from ncl.compress.base import l2_normalize
from ncl.jobs.config import build
from ncl.jobs.evaluate import run_evaluation
from ncl.report.table import markdown_table, records
from ncl.rerank import (
    AlphaQueryExpansion,
    AverageQueryExpansion,
    DatabaseAugmentation,
    DatabaseKey,
    Reranking,
)
from ncl.rerank.neighbours import ivf_self_rank, top_images
from ncl.search.search import Search


def at(*degrees: float) -> np.ndarray:
    """Unit 2-d codes at these angles."""
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def one_code_each(x: np.ndarray) -> np.ndarray:
    return np.arange(len(x))


def test_aqe_moves_a_query_to_the_mean_of_it_and_its_neighbours():
    database = at(90, 30, 60, 180)
    # top-2 of a query at 0 degrees: 30 and 60; (0 + 30 + 60) / 3 points at 30 degrees
    expanded = AverageQueryExpansion(k=2).expand(database, one_code_each(database), at(0))
    np.testing.assert_allclose(expanded, at(30), atol=1e-6)
    by_hand = l2_normalize(at(0) + database[1] + database[2])
    np.testing.assert_allclose(expanded, by_hand, atol=1e-6)


def test_alpha_qe_weights_neighbours_by_similarity_to_the_power_alpha():
    database = at(90, 30, 60, 180)
    sims = database[[1, 2]] @ at(0)[0]
    expanded = AlphaQueryExpansion(k=2, alpha=3).expand(database, one_code_each(database), at(0))
    by_hand = l2_normalize(at(0) + sims[0] ** 3 * database[1] + sims[1] ** 3 * database[2])
    np.testing.assert_allclose(expanded, by_hand, atol=1e-6)


def test_alpha_qe_with_alpha_0_is_aqe_and_with_k_1_keeps_the_top_but_not_the_ranking():
    rng = np.random.default_rng(0)
    database = l2_normalize(rng.normal(size=(40, 8)))
    queries = l2_normalize(rng.normal(size=(6, 8)))
    owner = one_code_each(database)
    np.testing.assert_array_equal(
        AlphaQueryExpansion(k=3, alpha=0).expand(database, owner, queries),
        AverageQueryExpansion(k=3).expand(database, owner, queries),
    )
    # the claim "alpha-QE with alpha=0, k=1 is the identity on rankings" does not hold: the
    # query moves halfway to its top-1, which stays first, but the others can swap
    database = at(10, -25, 30)
    search, qe = Search(), Reranking(qe=AlphaQueryExpansion(k=1, alpha=0))
    plain = search.rank(database, one_code_each(database), at(0), None).ranks
    expanded = qe.rank(search, database, one_code_each(database), at(0), None).ranks
    assert plain.tolist() == [[0, 1, 2]] and expanded.tolist() == [[0, 2, 1]]
    # it is the identity where no neighbour is similar (alpha > 0: weight max(sim, 0)^alpha = 0)
    database = at(100, 135, 180)
    qe = AlphaQueryExpansion(k=2, alpha=1)
    np.testing.assert_array_equal(qe.expand(database, one_code_each(database), at(0)), at(0))


def test_dba_replaces_each_code_by_the_mean_of_it_and_its_other_nearest_images():
    database = at(0, 20, 100, 130)
    augmented = DatabaseAugmentation(k=1, alpha=0).augment(database, one_code_each(database))
    np.testing.assert_allclose(augmented, at(10, 10, 115, 115), atol=1e-6)


def test_dba_of_unrelated_codes_is_the_identity():
    database = np.eye(5, dtype=np.float32)  # every neighbour at similarity 0: weight 0
    augmented = DatabaseAugmentation(k=3, alpha=1).augment(database, one_code_each(database))
    np.testing.assert_array_equal(augmented, database)


def test_several_codes_per_image_give_image_level_neighbours_and_rankings():
    rng = np.random.default_rng(1)
    upright = l2_normalize(rng.normal(size=(30, 16)))
    turned = l2_normalize(upright + 0.1 * rng.normal(size=upright.shape))
    database = np.concatenate([upright, turned])
    owner = np.concatenate([np.arange(30), np.arange(30)])
    near = top_images(database, owner, database, 4, exclude=owner)
    images = owner[near]
    assert (near >= 0).all()
    assert all(len(set(row)) == 4 for row in images.tolist())  # each image once
    assert not (images == owner[:, None]).any()  # never the code's own image
    search = Search(database_rotations=(90,))
    reranking = Reranking(dba=DatabaseAugmentation(k=3), qe=AlphaQueryExpansion(k=2))
    ranks = reranking.rank(search, database, owner, upright[:5], None).ranks
    assert ranks.shape == (5, 30)
    assert all(sorted(row) == list(range(30)) for row in ranks.tolist())


def test_dba_codes_are_cached_reused_and_remade_when_an_input_changes(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    database = l2_normalize(rng.normal(size=(20, 8)))
    owner = one_code_each(database)
    dba = DatabaseAugmentation(k=2, alpha=3)
    made = []
    compute = DatabaseAugmentation.compute
    monkeypatch.setattr(
        DatabaseAugmentation,
        "compute",
        lambda self, *a, **kw: made.append(1) or compute(self, *a, **kw),
    )
    key = DatabaseKey(
        tmp_path, {"codes": ["set", "key-1", "1:1"], "compressor": {"method": "none"}}
    )
    first = dba.augment(database, owner, key)
    again = dba.augment(database, owner, key)
    assert len(made) == 1
    np.testing.assert_array_equal(first, again)
    (cached,) = tmp_path.glob("dba-*/codes.npy")
    np.testing.assert_array_equal(np.load(cached), first)
    changed = DatabaseKey(tmp_path, {**key.inputs, "codes": ["set", "key-2", "1:2"]})
    dba.augment(database, owner, changed)
    DatabaseAugmentation(k=3, alpha=3).augment(database, owner, key)
    assert len(made) == 3
    assert len(list(tmp_path.glob("dba-*/codes.npy"))) == 3
    # the neighbour settings are inputs too: IVF, then another nprobe, each made once
    for nprobe in (2, 2, 4):
        DatabaseAugmentation(k=2, alpha=3, nlist=4, nprobe=nprobe).augment(database, owner, key)
    assert len(made) == 5
    assert len(list(tmp_path.glob("dba-*/codes.npy"))) == 5


def clustered(n: int, dim: int, centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    return l2_normalize(means[rng.integers(centres, size=n)] + 0.7 * rng.normal(size=(n, dim)))


def neighbour_recall(exact: np.ndarray, found: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact, found, strict=True)])
    )


def test_ivf_dba_probing_every_list_is_exact_dba():
    database = clustered(3000, 32, 40, seed=3)
    owner = one_code_each(database)
    exact = DatabaseAugmentation(k=10, alpha=3)
    ivf = DatabaseAugmentation(k=10, alpha=3, nlist=32, nprobe=32)
    np.testing.assert_array_equal(
        ivf.neighbours(database, owner), exact.neighbours(database, owner)
    )
    np.testing.assert_array_equal(ivf.augment(database, owner), exact.augment(database, owner))
    # several codes per image: still image-level neighbours, each at its best code
    turned = np.concatenate([database, l2_normalize(database + 0.05)])
    owners = np.concatenate([owner, owner])
    exact, ivf = DatabaseAugmentation(k=5), DatabaseAugmentation(k=5, nlist=32, nprobe=32)
    np.testing.assert_array_equal(ivf.neighbours(turned, owners), exact.neighbours(turned, owners))


def test_ivf_dba_with_few_lists_probed_finds_most_exact_neighbours():
    database = clustered(4000, 32, 40, seed=4)
    owner = one_code_each(database)
    exact = DatabaseAugmentation(k=10).neighbours(database, owner)
    # measured: 0.953 with nprobe 1 (each code's own list), 0.994 with 2, 0.999 with 4
    for nprobe, bound in ((1, 0.9), (4, 0.98)):
        found = DatabaseAugmentation(k=10, nlist=32, nprobe=nprobe).neighbours(database, owner)
        assert neighbour_recall(exact, found) > bound
    # the raw IVF search: itself first, seeded (the same lists each time)
    rows = ivf_self_rank(database, 3, nlist=32, nprobe=2)
    np.testing.assert_array_equal(rows[:, 0], owner)
    np.testing.assert_array_equal(rows, ivf_self_rank(database, 3, nlist=32, nprobe=2))


def test_ivf_dba_records_its_settings_and_exact_dba_keeps_its_record():
    assert DatabaseAugmentation(k=10, alpha=3).params() == {"k": 10, "alpha": 3}
    ivf = Reranking(dba=DatabaseAugmentation(k=10, alpha=3, nlist=64))
    assert ivf.record()["dba"] == {"k": 10, "alpha": 3, "nlist": 64, "nprobe": 8}
    assert DatabaseAugmentation(nlist=4).params()["nprobe"] == 4  # at most nlist
    with pytest.raises(ValueError, match=r"rerank\.dba\.nlist=64 is more than the database's 20"):
        DatabaseAugmentation(nlist=64).augment(np.eye(20, dtype=np.float32), np.arange(20))


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: AlphaQueryExpansion(k=0), "rerank.qe.k"),
        (lambda: AverageQueryExpansion(k=1.5), "rerank.qe.k"),
        (lambda: AlphaQueryExpansion(k=2, alpha=-1), "rerank.qe.alpha"),
        (lambda: DatabaseAugmentation(k=True), "rerank.dba.k"),
        (lambda: DatabaseAugmentation(alpha="3"), "rerank.dba.alpha"),
        (lambda: Reranking(qe=DatabaseAugmentation()), "rerank.qe"),
        (lambda: DatabaseAugmentation(nlist=0), "rerank.dba.nlist"),
        (lambda: DatabaseAugmentation(nlist=1024.0), "rerank.dba.nlist"),
        (lambda: DatabaseAugmentation(nlist=16, nprobe=0), "rerank.dba.nprobe"),
        (lambda: DatabaseAugmentation(nlist=16, nprobe=32), "rerank.dba.nprobe"),
        (lambda: DatabaseAugmentation(nprobe=8), "rerank.dba.nprobe"),
    ],
)
def test_bad_options_are_refused_by_name(make, option):
    with pytest.raises(ValueError, match=option.replace(".", r"\.")):
        make()


def test_bad_option_is_refused_before_any_work(cfg_evaluate, tmp_path):
    cfg = cfg_evaluate(["rerank=dba_alpha_qe", "rerank.dba.k=0"])
    with pytest.raises(ValueError, match=r"rerank\.dba\.k must be an integer >= 1, got 0"):
        run_evaluation(cfg)
    assert not (tmp_path / "data").exists()


def test_ivf_settings_come_from_the_config_and_a_stray_nprobe_is_refused(cfg_evaluate, tmp_path):
    cfg = cfg_evaluate(["rerank=dba_alpha_qe", "rerank.dba.nlist=1024", "rerank.dba.nprobe=16"])
    assert build(cfg.rerank).dba == DatabaseAugmentation(k=10, alpha=3.0, nlist=1024, nprobe=16)
    cfg = cfg_evaluate(["rerank=dba", "rerank.dba.nprobe=4"])
    with pytest.raises(ValueError, match=r"rerank\.dba\.nprobe=4 is for IVF neighbours"):
        run_evaluation(cfg)
    assert not (tmp_path / "data").exists()


def test_evaluate_records_the_reranker_and_its_map_differs(cfg_evaluate, tmp_path):
    run = reranked_oxford_run(cfg_evaluate, tmp_path)

    plain, qe = run("none"), run("alpha_qe")
    assert plain["rows"][0]["rerank"] == {"name": "none"}
    assert qe["rows"][0]["rerank"] == {"name": "alpha_qe", "qe": {"k": 2, "alpha": 3.0}}
    assert qe["rows"][0]["metrics"]["mAP"] != plain["rows"][0]["metrics"]["mAP"]

    both = run("dba_alpha_qe")
    assert both["rows"][0]["rerank"]["name"] == "dba+alpha_qe"
    code_set = tmp_path / "data" / "codes" / "efficientnet_lite0" / "oxford5k" / "pool"
    (cached,) = code_set.glob("dba-*/codes.npy")
    stamp = cached.stat().st_mtime_ns
    run("dba_alpha_qe")
    assert cached.stat().st_mtime_ns == stamp  # the same database: DBA's codes reused

    table = markdown_table(records([plain, qe, both]))
    assert "| full 1280 | full 1280 +alpha_qe | full 1280 +dba+alpha_qe |" in table

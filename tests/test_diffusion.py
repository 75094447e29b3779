"""Diffusion (Iscen et al. 2017) as a re-ranker: the mutual neighbour graph and the truncated solve
against hand-made cases and a dense solve, the identity at alpha = 0, several codes per image,
the cached graph, and evaluate.py recording it."""

import numpy as np
import pytest
from helpers.configs import reranked_oxford_run
from scipy import sparse

from ncl.compress.base import l2_normalize
from ncl.rerank import DatabaseAugmentation, DatabaseKey, Diffusion, Reranking
from ncl.rerank.diffusion import diffuse
from ncl.search.search import Search


def at(*degrees: float) -> np.ndarray:
    """Unit 2-d codes at these angles."""
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def clustered(n: int, dim: int, centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    return l2_normalize(means[rng.integers(centres, size=n)] + 0.7 * rng.normal(size=(n, dim)))


# A chain A-B-C-F on the circle and a pair D-E apart (degrees); with k = 2 each image's two
# nearest: A {B, C}, B {C, A}, C {F, B}, F {C, B}, D {E, A}, E {D, A}: mutual A-B, B-C, C-F, D-E
A, B, C, D, E, F = range(6)
CHAIN = at(0, 30, 58, -70, -100, 85)


def test_the_graph_keeps_mutual_neighbours_weighted_by_similarity_to_the_power_gamma():
    graph = Diffusion(k=2, gamma=3).compute(CHAIN, np.arange(6)).toarray()
    edges = {(i, j) for i, j in zip(*np.nonzero(graph), strict=True) if i < j}
    assert edges == {(A, B), (B, C), (C, F), (D, E)}
    np.testing.assert_allclose(graph, graph.T)
    np.testing.assert_allclose(graph[A, B], np.cos(np.radians(30)) ** 3, rtol=1e-6)
    np.testing.assert_allclose(graph[C, F], np.cos(np.radians(27)) ** 3, rtol=1e-6)


def test_diffusion_ranks_a_neighbour_of_a_neighbour_above_an_unconnected_image():
    query = at(-10)  # nearer D (60 degrees) than C (68), which only B links to A
    search = Search()
    plain = search.rank(CHAIN, np.arange(6), query, None).ranks[0].tolist()
    assert plain == [A, B, D, C, E, F]
    diffusion = Diffusion(k=2, alpha=0.9, seeds=1)
    ranks = Reranking(diffusion=diffusion).rank(search, CHAIN, np.arange(6), query, None)
    ranked = ranks.ranks[0].tolist()
    assert ranked.index(C) < ranked.index(D)
    assert ranked.index(F) < ranked.index(D)  # F too, though the search ranked it last
    assert ranked[-2:] == [D, E]  # unreached by the seed: f = 0, the search's order


def test_the_truncated_solve_is_the_dense_solve_on_each_shortlist():
    database = clustered(80, 8, 6, seed=0)
    owner = np.arange(80)
    graph = Diffusion(k=6).compute(database, owner)
    queries = clustered(7, 8, 6, seed=1)
    shortlist = Search().rank(database, owner, queries, 25).ranks
    shortlist[0, 20:] = -1  # a shorter list: padding is neither a node nor a seed
    y = np.zeros(shortlist.shape)
    y[:, :4] = np.random.default_rng(2).uniform(0.1, 1, size=(7, 4))
    f = diffuse(graph, shortlist, y, alpha=0.8, iterations=500)
    dense = graph.toarray()
    for i, row in enumerate(shortlist):
        nodes = row[row >= 0]
        a = dense[np.ix_(nodes, nodes)]
        degree = a.sum(axis=1)
        d = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0)
        s = d[:, None] * a * d[None, :]
        expected = np.linalg.solve(np.eye(len(nodes)) - 0.8 * s, y[i, : len(nodes)])
        np.testing.assert_allclose(f[i, : len(nodes)], expected, atol=1e-5)
        assert not f[i, len(nodes) :].any()


def test_alpha_0_is_the_identity_on_rankings_and_images_past_the_shortlist_keep_their_place():
    database = clustered(300, 16, 10, seed=3)
    owner = np.arange(300)
    queries = clustered(20, 16, 10, seed=4)
    search = Search()
    plain = search.rank(database, owner, queries, None).ranks
    identity = Reranking(diffusion=Diffusion(k=8, alpha=0, seeds=10, truncate=50))
    np.testing.assert_array_equal(
        identity.rank(search, database, owner, queries, None).ranks, plain
    )
    moved = Reranking(diffusion=Diffusion(k=8, alpha=0.9, seeds=5, truncate=50))
    ranks = moved.rank(search, database, owner, queries, None).ranks
    assert (ranks[:, :50] != plain[:, :50]).any()  # it does re-rank the shortlist...
    np.testing.assert_array_equal(np.sort(ranks[:, :50]), np.sort(plain[:, :50]))
    np.testing.assert_array_equal(ranks[:, 50:], plain[:, 50:])  # ...and only the shortlist
    # a protocol's depth: the shortlist is still searched `truncate` deep, the list cut after
    cut = moved.rank(search, database, owner, queries, 10)
    assert cut.depth == 10
    np.testing.assert_array_equal(cut.ranks, ranks[:, :10])


def test_several_codes_per_image_give_an_image_graph_and_image_rankings():
    database = clustered(40, 8, 5, seed=5)
    owner = np.arange(40)
    queries = clustered(6, 8, 5, seed=6)
    diffusion = Diffusion(k=4, alpha=0.9, seeds=3, truncate=40)
    search = Search(database_rotations=(90,))
    one = Reranking(diffusion=diffusion).rank(Search(), database, owner, queries, None).ranks
    # each image twice: a copy that is the same code changes nothing, neither graph nor ranking
    same = np.concatenate([database, database])
    both = np.concatenate([owner, owner])
    assert (diffusion.compute(same, both) != diffusion.compute(database, owner)).nnz == 0
    twice = Reranking(diffusion=diffusion).rank(search, same, both, queries, None).ranks
    np.testing.assert_array_equal(twice, one)
    # a copy that differs: an image is a neighbour through either code, never its own
    turned = l2_normalize(database + 0.3 * np.random.default_rng(7).normal(size=database.shape))
    other = np.concatenate([database, turned])
    graph = diffusion.compute(other, both)
    assert graph.shape == (40, 40)
    assert not graph.diagonal().any()
    assert graph.nnz > diffusion.compute(database, owner).nnz  # edges through the copies too
    ranks = Reranking(diffusion=diffusion).rank(search, other, both, queries, None).ranks
    assert ranks.shape == (6, 40)
    assert all(sorted(row) == list(range(40)) for row in ranks.tolist())


def test_the_graph_is_cached_reused_and_remade_when_a_database_side_input_changes(
    tmp_path, monkeypatch
):
    database = clustered(50, 8, 5, seed=8)
    owner = np.arange(50)
    made = []
    compute = Diffusion.compute
    monkeypatch.setattr(
        Diffusion, "compute", lambda self, *a, **kw: made.append(1) or compute(self, *a, **kw)
    )
    key = DatabaseKey(tmp_path, {"codes": ["set", "key-1", "1:1"], "compressor": {"m": "none"}})
    first = Diffusion(k=4).graph(database, owner, key)
    # the query side (alpha, seeds, truncate) reuses the graph
    again = Diffusion(k=4, alpha=0.5, seeds=2, truncate=20).graph(database, owner, key)
    assert len(made) == 1
    assert (first != again).nnz == 0
    (cached,) = tmp_path.glob("diffusion-*/graph.npz")
    assert (sparse.csr_array(sparse.load_npz(cached)) != first).nnz == 0
    Diffusion(k=5).graph(database, owner, key)
    Diffusion(k=4, gamma=1).graph(database, owner, key)
    Diffusion(k=4, nlist=4, nprobe=2).graph(database, owner, key)
    Diffusion(k=4).graph(database, owner, DatabaseKey(tmp_path, {**key.inputs, "codes": ["x"]}))
    assert len(made) == 5
    assert len(list(tmp_path.glob("diffusion-*/graph.npz"))) == 5


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: Diffusion(alpha=1.0), "rerank.diffusion.alpha"),
        (lambda: Diffusion(alpha=-0.1), "rerank.diffusion.alpha"),
        (lambda: Diffusion(k=0), "rerank.diffusion.k"),
        (lambda: Diffusion(gamma=-1), "rerank.diffusion.gamma"),
        (lambda: Diffusion(seeds=0), "rerank.diffusion.seeds"),
        (lambda: Diffusion(seeds=20, truncate=10), "rerank.diffusion.seeds"),
        (lambda: Diffusion(iterations=2.5), "rerank.diffusion.iterations"),
        (lambda: Diffusion(nprobe=4), "rerank.diffusion.nprobe"),
        (lambda: Reranking(diffusion=DatabaseAugmentation()), "rerank.diffusion"),
    ],
)
def test_bad_options_are_refused_by_name(make, option):
    with pytest.raises(ValueError, match=option.replace(".", r"\.")):
        make()


def test_evaluate_records_diffusion_and_caches_its_graph_beside_the_codes(cfg_evaluate, tmp_path):
    run = reranked_oxford_run(cfg_evaluate, tmp_path)

    plain, diffused = run("none"), run("diffusion")
    settings = {"k": 10, "alpha": 0.9, "gamma": 3.0, "seeds": 5, "truncate": 1000}
    assert diffused["rows"][0]["rerank"] == {
        "name": "diffusion",
        "diffusion": {**settings, "iterations": 20},
    }
    assert diffused["rows"][0]["depth"] == plain["rows"][0]["depth"]
    code_set = tmp_path / "data" / "codes" / "efficientnet_lite0" / "oxford5k" / "pool"
    (cached,) = code_set.glob("diffusion-*/graph.npz")
    stamp = cached.stat().st_mtime_ns
    both = run("dba_diffusion")
    assert both["rows"][0]["rerank"]["name"] == "dba+diffusion"
    assert len(list(code_set.glob("diffusion-*/graph.npz"))) == 2  # DBA's codes: another graph
    run("diffusion")
    assert cached.stat().st_mtime_ns == stamp  # the same database: the graph reused

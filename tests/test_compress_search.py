import numpy as np
import pytest

from ncl.codes.pca import cached_pca_basis
from ncl.codes.store import write_codes
from ncl.codes.whitening import cached_learned_whitening
from ncl.compress.base import NoCompression, l2_normalize
from ncl.compress.pca import PCA, PCABasis
from ncl.compress.whitening import LearnedWhitening
from ncl.eval.compression import LearnedWhiteningCompression, PCACompression
from ncl.pairs import Pair, write_pairs
from ncl.search.flat import best_per_image, rank


def clustered(n: int, d: int, rank_: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, rank_)) @ rng.standard_normal((rank_, d))
        + 0.01 * rng.standard_normal((n, d))
    ).astype(np.float32)


def test_pca_matches_numpy_svd_and_outputs_unit_rows():
    x = clustered(200, 32, 6, 0)
    basis = PCABasis.fit(x, max_components=16)
    xn = l2_normalize(x)
    centered = xn - xn.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    # same subspace and variances as an SVD of the normalised, centred codes
    np.testing.assert_allclose(np.abs(basis.components[:6] @ vt[:6].T), np.eye(6), atol=1e-3)
    np.testing.assert_allclose(basis.eigenvalues[:6], s[:6] ** 2 / len(x), rtol=1e-3)
    out = PCA(basis, 8)(x)
    assert out.shape == (200, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    whitened = PCA(basis, 4, whiten=True)
    assert whitened(x).shape == (200, 4)


def test_pca_refuses_more_dims_than_fit_images_support():
    basis = PCABasis.fit(clustered(10, 32, 4, 1), max_components=64)
    assert basis.max_dim == 9
    with pytest.raises(ValueError, match="only supports 9"):
        PCA(basis, 16)


def test_pca_basis_cached_beside_fit_codes_and_refitted_when_they_change(tmp_path):
    codes = write_codes(tmp_path / "fit", [str(i) for i in range(50)], clustered(50, 16, 4, 2))
    first = cached_pca_basis(codes, 8)
    assert (tmp_path / "fit" / "pca-8" / "basis.npz").is_file()
    mtime = (tmp_path / "fit" / "pca-8" / "basis.npz").stat().st_mtime_ns
    again = cached_pca_basis(codes, 8)
    np.testing.assert_array_equal(first.components, again.components)
    assert (tmp_path / "fit" / "pca-8" / "basis.npz").stat().st_mtime_ns == mtime
    other = write_codes(tmp_path / "fit", [str(i) for i in range(40)], clustered(40, 16, 4, 3))
    assert cached_pca_basis(other, 8).components.shape == (8, 16)
    assert (tmp_path / "fit" / "pca-8" / "basis.npz").stat().st_mtime_ns != mtime


def test_rank_is_exact_l2_order():
    rng = np.random.default_rng(4)
    db = l2_normalize(rng.standard_normal((300, 24)))
    q = l2_normalize(rng.standard_normal((7, 24)))
    expected = np.argsort(((q[:, None, :] - db[None]) ** 2).sum(-1), axis=1, kind="stable")
    full = rank(db, q)
    assert full.depth == 300 and full.device == "cpu"
    np.testing.assert_array_equal(full.ranks, expected)
    top = rank(db, q, depth=5, max_results=10)
    np.testing.assert_array_equal(top.ranks, expected[:, :5])
    assert rank(db, q, depth=10_000).depth == 300


def test_rank_checks_dims_and_gpu_request():
    with pytest.raises(ValueError, match="16-d, queries 8-d"):
        rank(np.zeros((3, 16)), np.zeros((1, 8)))
    import faiss

    if faiss.get_num_gpus() == 0:
        with pytest.raises(RuntimeError, match="faiss sees no GPU"):
            rank(np.zeros((3, 4)), np.zeros((1, 4)), use_gpu=True)


def test_no_compression_normalises():
    out = NoCompression(3)(np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8, 0.0], [0, 0, 0]])


def test_best_per_image_keeps_each_image_at_its_best_code():
    # codes of images 0..2 and of their rotated copies, ranked: image 2's copy comes first
    ranks = np.array([[2, 0, 2, 1, 0, 1], [1, 1, 0, 2, 0, 2]])
    assert best_per_image(ranks, 2).tolist() == [[2, 0], [1, 0]]
    assert best_per_image(ranks, None).tolist() == [[2, 0, 1], [1, 0, 2]]


# --- PCA-whitening power and learned whitening (Lw) ---------------------------------------------


def test_pca_whitening_power_one_is_whitening_and_zero_is_plain_pca():
    x = clustered(200, 32, 6, 4)
    basis = PCABasis.fit(x, max_components=16)
    xn = l2_normalize(x) - basis.mean
    by_hand = xn @ (basis.components[:8] / np.sqrt(basis.eigenvalues[:8])[:, None]).T
    # float32 both ways; dividing by the square root of a small eigenvalue scales rounding up
    np.testing.assert_allclose(
        PCA(basis, 8, whiten=True, power=1.0)(x), l2_normalize(by_hand), atol=5e-5
    )
    np.testing.assert_array_equal(PCA(basis, 8, whiten=True)(x), PCA(basis, 8, True, 1.0)(x))
    np.testing.assert_allclose(
        PCA(basis, 8, whiten=True, power=0.0)(x), PCA(basis, 8)(x), atol=1e-6
    )
    half = PCA(basis, 8, whiten=True, power=0.5)
    assert half.info == {"whiten": True, "whiten_power": 0.5} and PCA(basis, 8).info == {}


def matching_codes(n_classes: int, per_class: int, d: int, seed: int):
    """Codes of `n_classes` objects seen `per_class` times with anisotropic within-class noise,
    and every consecutive pair of views of one object as a matching pair."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d))
    noise = rng.standard_normal((n_classes * per_class, d)) * np.linspace(0.05, 0.5, d)
    x = np.repeat(centres, per_class, axis=0) + noise
    a = np.array([c * per_class + v for c in range(n_classes) for v in range(per_class - 1)])
    return x.astype(np.float32), a, a + 1


def test_learned_whitening_makes_pair_differences_white_at_full_dim():
    x, a, b = matching_codes(60, 5, 12, 5)
    w = LearnedWhitening.fit(x, a, b)
    xn = l2_normalize(x).astype(np.float64)
    diff = (xn[a] - xn[b]) @ w.projection.T.astype(np.float64)
    np.testing.assert_allclose(diff.T @ diff / len(diff), np.eye(12), atol=2e-3)
    assert np.all(np.diff(w.eigenvalues) <= 0)  # dims ordered by eigenvalue
    out = w.truncated(4)(x)
    assert out.shape == (300, 4) and w.truncated(4).dim == 4
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="13 dims asked, but it has 12"):
        w.truncated(13)
    # shrinkage makes a fit from fewer pairs than dims possible
    assert LearnedWhitening.fit(x, a[:5], b[:5], shrinkage=0.1).max_dim == 12


def test_learned_whitening_cached_reused_and_refitted_on_a_changed_pairs_file(tmp_path, caplog):
    x, a, b = matching_codes(40, 4, 8, 6)
    ids = [f"c{i // 4}/{i % 4}" for i in range(len(x))]
    codes = write_codes(tmp_path / "fit", ids, x)
    pairs_file = tmp_path / "pairs.tsv"
    lines = [Pair(ids[i], ids[j], ids[i].split("/")[0], 20) for i, j in zip(a, b, strict=True)]
    write_pairs(pairs_file, [*lines, Pair("c0/0", "gone/1", "c0", 20)])
    with caplog.at_level("WARNING"):
        first = cached_learned_whitening(codes, pairs_file, 0.0)
    assert "1 of 121 pairs name images without codes" in caplog.text
    assert first.info["pairs_used"] == 120
    (fit_dir,) = (tmp_path / "fit").glob("lw-*")
    mtime = (fit_dir / "whitening.npz").stat().st_mtime_ns
    again = cached_learned_whitening(codes, pairs_file, 0.0)
    np.testing.assert_array_equal(first.projection, again.projection)
    assert (fit_dir / "whitening.npz").stat().st_mtime_ns == mtime
    write_pairs(pairs_file, lines[::2])  # 60 pairs: a new fit
    refit = cached_learned_whitening(codes, pairs_file, 0.0)
    assert (fit_dir / "whitening.npz").stat().st_mtime_ns != mtime
    assert refit.info["pairs_used"] == 60 and not np.allclose(refit.projection, first.projection)
    write_pairs(pairs_file, lines[:5])
    with pytest.raises(ValueError, match=r"pairs\.tsv: 5 pair\(s\).*at least 8.*mine_pairs\.py"):
        cached_learned_whitening(codes, pairs_file, 0.0)
    assert cached_learned_whitening(codes, pairs_file, 0.1).info["pairs_used"] == 5
    with pytest.raises(FileNotFoundError, match=r"none\.tsv: no pairs file.*mine_pairs\.py"):
        cached_learned_whitening(codes, tmp_path / "none.tsv", 0.1)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"whiten": True, "whiten_power": 1.5}, "compression.whiten_power must be a number from 0"),
        ({"whiten_power": 0.5}, "whiten_power=0.5 needs compression.whiten=true"),
    ],
)
def test_pca_whitening_options_refused_by_name(options, named):
    with pytest.raises(ValueError, match=named):
        PCACompression(dim=[8], **options)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"pairs_file": None}, "compression.pairs_file must name a pairs.tsv file"),
        ({"pairs_file": "p.tsv", "shrinkage": -0.1}, "compression.shrinkage must be a number"),
        ({"pairs_file": "p.tsv", "shrinkage": "a"}, "compression.shrinkage must be a number"),
    ],
)
def test_learned_whitening_options_refused_by_name(options, named):
    with pytest.raises(ValueError, match=named):
        LearnedWhiteningCompression(dim=[8], **options)

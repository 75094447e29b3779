import numpy as np
import pytest

from ncl.codes.pca import cached_pca_basis
from ncl.codes.store import write_codes
from ncl.compress.base import NoCompression, l2_normalize
from ncl.compress.pca import PCA, PCABasis
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

"""Holistic baselines: encoders against hand-computed values, the lasso solver against
scikit-learn, and the SIFT cache / vocabulary / code-set plumbing on real photos."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata
from sklearn.linear_model import Lasso

from ncl.baselines import encode as encode_module
from ncl.baselines import vocabulary
from ncl.baselines.encode import encode_image_set, fit_bovw_idf
from ncl.baselines.encoders import BoVW, SparseCoder, build_encoder
from ncl.baselines.normalize import intra_normalize, power_law
from ncl.baselines.sparse_coding import lasso_fista, lasso_objective
from ncl.baselines.vocabulary import build_vocabulary
from ncl.codes.store import read_codes
from ncl.compress.base import l2_normalize
from ncl.data.transforms import crop_box, rotate90
from ncl.features import descriptors as local_features
from ncl.features.descriptors import LocalFeatureCache, extract_local_features
from ncl.features.sift import rootsift, sift
from ncl.io.decode import read_gray

PHOTOS = ("astronaut", "chelsea", "coffee")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    files = []
    for name in PHOTOS:
        file = folder / f"{name}.jpg"
        cv2.imwrite(str(file), cv2.cvtColor(getattr(skdata, name)(), cv2.COLOR_RGB2BGR))
        files.append(file)
    return files


@pytest.fixture(scope="module")
def cache(photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> LocalFeatureCache:
    return extract_local_features(
        photos,
        list(PHOTOS),
        tmp_path_factory.mktemp("sift"),
        rootsift=True,
        max_keypoints=300,
        max_side=None,
        workers=2,
    )


# --- normalisations -------------------------------------------------------------------------


def test_power_law_is_signed() -> None:
    x = np.array([[-4.0, 0.0, 9.0]])
    np.testing.assert_allclose(power_law(x, 0.5), [[-2.0, 0.0, 3.0]])
    assert power_law(x, 1.0) is x


def test_intra_normalize_per_block_and_keeps_zero_blocks() -> None:
    x = np.array([[3.0, 4.0, 0.0, 0.0, 0.0, 2.0]])
    np.testing.assert_allclose(intra_normalize(x, 3), [[0.6, 0.8, 0.0, 0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="equal blocks"):
        intra_normalize(x, 4)


def test_l2_normalize_keeps_zero_rows() -> None:
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0], [0, 0]])), [[0.6, 0.8], [0, 0]])


# --- VLAD and BoVW by hand --------------------------------------------------------------------

CENTROIDS_2D = np.array([[0.0, 0.0], [10.0, 0.0]], dtype=np.float32)
# (1, 2) and (-1, 1) are nearest to word 0, (12, 1) to word 1.
DESCRIPTORS_2D = np.array([[1.0, 2.0], [-1.0, 1.0], [12.0, 1.0]], dtype=np.float32)


def test_vlad_residual_sums_by_hand() -> None:
    vlad = build_encoder("vlad", CENTROIDS_2D)
    # Word 0: (1, 2) + (-1, 1) - 2 (0, 0) = (0, 3); word 1: (12, 1) - (10, 0) = (2, 1).
    np.testing.assert_allclose(vlad.residual_sums([DESCRIPTORS_2D]), [[0.0, 3.0, 2.0, 1.0]])
    assert vlad.dim == 4


@pytest.mark.parametrize(
    ("alpha", "intra", "expected"),
    [
        (1.0, False, np.array([0.0, 3.0, 2.0, 1.0]) / math.sqrt(14)),
        # Blocks (0, 3) -> (0, 1) and (2, 1) -> (2, 1)/sqrt(5); the result has norm sqrt(2).
        (1.0, True, np.array([0.0, 1.0, 2 / math.sqrt(5), 1 / math.sqrt(5)]) / math.sqrt(2)),
        # Signed square root (0, sqrt 3, sqrt 2, 1) has squared norm 6.
        (0.5, False, np.array([0.0, math.sqrt(3), math.sqrt(2), 1.0]) / math.sqrt(6)),
    ],
)
def test_vlad_normalisations_by_hand(alpha: float, intra: bool, expected: np.ndarray) -> None:
    vlad = build_encoder("vlad", CENTROIDS_2D, alpha=alpha, intra=intra)
    np.testing.assert_allclose(vlad.encode(DESCRIPTORS_2D), expected, rtol=1e-6)


def test_vlad_batch_matches_single_images_and_empty_image_is_zero() -> None:
    vlad = build_encoder("vlad", CENTROIDS_2D)
    other = np.array([[9.0, -1.0], [0.5, 0.5]], dtype=np.float32)
    empty = np.empty((0, 2), dtype=np.float32)
    batch = vlad.encode_batch([DESCRIPTORS_2D, empty, other])
    np.testing.assert_allclose(batch[0], vlad.encode(DESCRIPTORS_2D), rtol=1e-6)
    np.testing.assert_array_equal(batch[1], np.zeros(4))
    np.testing.assert_allclose(batch[2], vlad.encode(other), rtol=1e-6)


CENTROIDS_3 = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)


def test_bovw_tfidf_sqrt_l2_by_hand() -> None:
    bovw = build_encoder("bovw", CENTROIDS_3)
    image = np.array([[1.0, 0.0], [0.0, -1.0], [0.0, 9.0]], dtype=np.float32)  # words 0, 0, 2
    np.testing.assert_array_equal(bovw.counts([image]), [[2, 0, 1]])
    # Three training images; words 0 and 2 occur in two of them, word 1 in one.
    idf = bovw.fit_idf(np.array([[2, 0, 1], [1, 1, 0], [0, 0, 3]]))
    np.testing.assert_allclose(idf, np.log([3 / 2, 3, 3 / 2]), rtol=1e-6)
    # sqrt(2 log 1.5, 0, log 1.5), L2-normalised: the log 1.5 cancels.
    expected = np.array([math.sqrt(2 / 3), 0.0, math.sqrt(1 / 3)])
    np.testing.assert_allclose(bovw.encode(image), expected, rtol=1e-6)


def test_bovw_without_tfidf_and_unfitted_idf() -> None:
    image = np.array([[1.0, 0.0], [0.0, -1.0], [0.0, 9.0]], dtype=np.float32)
    plain = BoVW(CENTROIDS_3, tfidf=False, sqrt=False)
    np.testing.assert_allclose(plain.encode(image), np.array([2, 0, 1]) / math.sqrt(5), rtol=1e-6)
    with pytest.raises(RuntimeError, match="fit_idf"):
        BoVW(CENTROIDS_3).encode(image)


def test_unknown_encoder_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="bovw, sparse, vlad"):
        build_encoder("fisher", CENTROIDS_3)


# --- sparse coding ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fista_reaches_the_lasso_optimum_of_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d, k, n, lam = 16, 24, 5, 0.1
    dictionary = rng.standard_normal((d, k))
    dictionary /= np.linalg.norm(dictionary, axis=0)
    y = rng.standard_normal((n, d))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    ours = lasso_fista(
        torch.from_numpy(y), torch.from_numpy(dictionary), lam, max_iter=5000, tol=1e-10
    )
    # sklearn minimises 1/(2 n_samples) ||y - X w||² + a ||w||₁ with n_samples = d: the same
    # problem scaled by 1/(2d) when a = λ/(2d).
    lasso = Lasso(alpha=lam / (2 * d), fit_intercept=False, tol=1e-10, max_iter=10000)
    reference = np.stack([lasso.fit(dictionary, row).coef_ for row in y])
    objective = lasso_objective(torch.from_numpy(y), torch.from_numpy(dictionary), ours, lam)
    reference_objective = lasso_objective(
        torch.from_numpy(y), torch.from_numpy(dictionary), torch.from_numpy(reference), lam
    )
    np.testing.assert_allclose(objective.numpy(), reference_objective.numpy(), atol=1e-4)
    assert (ours != 0).sum() < ours.numel()  # the solution is sparse


@pytest.mark.parametrize(
    ("pooling", "pooled"), [("max", [0.4, -0.1, 0.0]), ("abs", [0.4, 0.5, 0.0])]
)
def test_sparse_pooling_by_hand(pooling: str, pooled: list[float]) -> None:
    # With an orthonormal dictionary the lasso is solved by soft-thresholding at λ/2.
    coder = SparseCoder(
        np.eye(3, dtype=np.float32),
        lam=0.2,
        pooling=pooling,
        alpha=1.0,
        normalize_descriptors=False,
        max_iter=500,
        tol=1e-9,
        device="cpu",
    )
    y = np.array([[0.5, -0.6, 0.0], [0.3, -0.2, 0.0]], dtype=np.float32)
    # Codes (0.4, -0.5, 0) and (0.2, -0.1, 0).
    expected = np.array(pooled) / np.linalg.norm(pooled)
    np.testing.assert_allclose(coder.encode(y), expected, atol=1e-5)
    assert coder.dim == 3


# --- local features ---------------------------------------------------------------------------


def test_rootsift_is_the_hellinger_embedding() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, size=(2, 1, 128)).astype(np.float32)
    ra, rb = rootsift(a), rootsift(b)
    hellinger_kernel = np.sum(np.sqrt(a / a.sum() * b / b.sum()))
    np.testing.assert_allclose(np.sum((ra - rb) ** 2), 2 - 2 * hellinger_kernel, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ra), 1.0, rtol=1e-6)


def test_sift_keypoints_are_capped_on_real_photos(photos: list[Path]) -> None:
    for cap in (50, 400):
        counts = [len(sift(read_gray(f), max_keypoints=cap, max_side=None)) for f in photos]
        assert all(0.8 * cap <= c <= cap for c in counts), (cap, counts)
    shrunk = sift(read_gray(photos[0]), max_keypoints=5000, max_side=128)
    full = sift(read_gray(photos[0]), max_keypoints=5000, max_side=None)
    assert 0 < len(shrunk) < len(full)


def test_cache_holds_lossless_descriptors_in_name_order(
    cache: LocalFeatureCache, photos: list[Path]
) -> None:
    assert cache.names == PHOTOS and not cache.failed
    raw = sift(read_gray(photos[1]), max_keypoints=300, max_side=None)
    np.testing.assert_array_equal(cache.descriptors("chelsea"), rootsift(raw))
    assert cache.count("chelsea") == len(raw) <= 300
    sift_view = dataclasses.replace(cache, rootsift=False)
    np.testing.assert_array_equal(sift_view.descriptors("chelsea"), raw.astype(np.float32))


def test_cache_crops_and_turns_images_as_neural_extraction_does(
    photos: list[Path], tmp_path: Path
) -> None:
    """A query box, then a quarter turn: the SIFT of the very pixels the network is given."""
    box, degrees = (40.5, 30.2, 300.7, 250.0), 90
    cache = extract_local_features(
        photos[:2],
        ["boxed", "turned"],
        tmp_path,
        boxes=[box, None],
        rotations=[0, degrees],
        rootsift=False,
        max_keypoints=200,
        workers=1,
    )
    gray = [torch.from_numpy(read_gray(f)) for f in photos[:2]]
    neural_view = [crop_box(gray[0], box).numpy(), rotate90(gray[1], degrees).numpy()]
    assert neural_view[0].shape == (220, 261) and neural_view[1].shape == gray[1].shape[::-1]
    for name, pixels in zip(["boxed", "turned"], neural_view, strict=True):
        expected = sift(np.ascontiguousarray(pixels), max_keypoints=200, max_side=None)
        np.testing.assert_array_equal(cache.descriptors(name), expected.astype(np.float32))
    with pytest.raises(ValueError, match="one each per image"):
        extract_local_features(photos[:2], ["a", "b"], tmp_path / "x", boxes=[box], workers=1)


def test_cache_resumes_without_recomputing(
    photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {"rootsift": False, "max_keypoints": 100, "max_side": None, "workers": 1}
    extract_local_features(photos[:2], list(PHOTOS[:2]), tmp_path, **kwargs)
    files = sorted((tmp_path / "descriptors").iterdir())
    mtimes = [f.stat().st_mtime_ns for f in files]

    calls: list[str] = []
    real = local_features._extract_one
    monkeypatch.setattr(
        local_features, "_extract_one", lambda t, r: calls.append(t[0]) or real(t, r)
    )
    again = extract_local_features(photos, list(PHOTOS), tmp_path, **kwargs)
    assert calls == ["coffee"]
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert again.names == PHOTOS
    assert json.loads((tmp_path / "meta.json").read_text())["inputs"]["max_keypoints"] == 100

    calls.clear()
    assert extract_local_features(photos, list(PHOTOS), tmp_path, **kwargs).names == PHOTOS
    assert calls == [] and [f.stat().st_mtime_ns for f in files] == mtimes


def test_cache_with_other_settings_is_remade(
    photos: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache directory is an artifact of its settings: asked for with others, it is emptied
    and every image extracted again (the log says which setting changed)."""
    kwargs = {"rootsift": False, "max_side": None, "workers": 1}
    first = extract_local_features(photos, list(PHOTOS), tmp_path, max_keypoints=100, **kwargs)
    assert first.count("chelsea") == 100
    with caplog.at_level(logging.INFO):
        few = extract_local_features(photos, list(PHOTOS), tmp_path, max_keypoints=7, **kwargs)
    assert "changed: max_keypoints" in caplog.text
    assert few.names == PHOTOS and [few.count(n) for n in PHOTOS] == [7, 7, 7]
    assert json.loads((tmp_path / "meta.json").read_text())["inputs"]["max_keypoints"] == 7


def test_corrupt_image_is_reported_and_recorded_not_zero_filled(
    photos: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt = tmp_path / "x.jpg"
    corrupt.write_bytes(b"this is not a JPEG at all" * 10)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64), 128, dtype=np.uint8))
    cache_dir = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        result = extract_local_features(
            [photos[0], corrupt, blank],
            ["astronaut", "x", "blank"],
            cache_dir,
            rootsift=True,
            max_keypoints=50,
            workers=2,
        )
    assert "'x'" in caplog.text
    assert result.names == ("astronaut", "blank")
    assert list(result.failed) == ["x"]
    assert json.loads((cache_dir / "failed.json").read_text()).keys() == {"x"}
    assert not any(f.stem == "x" for f in (cache_dir / "descriptors").iterdir())
    # No keypoints is legal: an empty descriptor array, a zero code.
    assert result.descriptors("blank").shape == (0, 128)
    vlad = build_encoder("vlad", np.random.default_rng(0).random((4, 128), dtype=np.float32))
    np.testing.assert_array_equal(vlad.encode(result.descriptors("blank")), np.zeros(512))


# --- vocabulary and code sets -----------------------------------------------------------------


def test_vocabulary_is_saved_and_reused(
    cache: LocalFeatureCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_vocabulary(cache, 8, tmp_path, max_descriptors=500, niter=5, seed=0)
    assert first.centroids.shape == (8, 128) and first.centroids.dtype == np.float32
    assert first.meta["descriptors_sampled"] == 500 and first.meta["local_features"] == "rootsift"

    def no_kmeans(*args: object, **kwargs: object) -> None:
        raise AssertionError("k-means ran again")

    monkeypatch.setattr(vocabulary, "kmeans", no_kmeans)
    again = build_vocabulary(cache, 8, tmp_path, max_descriptors=500, niter=5, seed=0)
    assert again.path == first.path
    np.testing.assert_array_equal(again.centroids, first.centroids)
    monkeypatch.undo()
    other = build_vocabulary(cache, 8, tmp_path, max_descriptors=500, niter=5, seed=1)
    assert other.path != first.path


def test_sampled_descriptors_are_seeded_and_capped(cache: LocalFeatureCache) -> None:
    a = vocabulary.sample_descriptors(cache, 100, seed=3)
    b = vocabulary.sample_descriptors(cache, 100, seed=3)
    assert a.shape == (100, 128)
    np.testing.assert_array_equal(a, b)
    total = sum(cache.count(n) for n in cache.names)
    assert len(vocabulary.sample_descriptors(cache, 10**9, seed=0)) == total


@pytest.mark.parametrize(
    ("name", "params"), [("vlad", {}), ("bovw", {}), ("sparse", {"max_iter": 30, "device": "cpu"})]
)
def test_encode_image_set_writes_a_readable_code_set(
    cache: LocalFeatureCache, tmp_path: Path, name: str, params: dict, monkeypatch
) -> None:
    # k = 64 over three very different photos: some words occur in one or two of them only,
    # so their idf is not zero (a word present in every image has idf log(3/3) = 0).
    centroids = vocabulary.kmeans(
        vocabulary.sample_descriptors(cache, 900, seed=0), 64, niter=5, seed=0
    )
    encoder = build_encoder(name, centroids, **params)
    if isinstance(encoder, BoVW):
        assert fit_bovw_idf(encoder, cache).max() > 0
    out = tmp_path / "codes"
    written = encode_image_set(cache, encoder, out, {"benchmark": "demo"}, batch_size=2)

    codes = read_codes(out)
    assert codes.ids == list(PHOTOS)
    assert codes.codes.shape == (3, encoder.dim) and codes.codes.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(codes.codes, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(codes.codes[1], encoder.encode(cache.descriptors("chelsea")), 1e-5)
    assert codes.meta["encoder"] == name and codes.meta["benchmark"] == "demo"
    assert codes.meta["failed"] == []

    mtime = (out / "codes.npy").stat().st_mtime_ns
    monkeypatch.setattr(encode_module, "write_ids", None)  # reuse must not write anything
    assert encode_image_set(cache, encoder, out, {"benchmark": "demo"}).path == written.path
    assert (out / "codes.npy").stat().st_mtime_ns == mtime
    monkeypatch.undo()
    encode_image_set(cache, encoder, out, {"benchmark": "other"})
    assert read_codes(out).meta["benchmark"] == "other"

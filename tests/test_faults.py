"""Faults and bad input that used to lose a run (docs/reliability.md lists every handled case):
each is named, loses nothing, and a rerun carries on."""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford, write_revisited, write_ukb
from helpers.images import write_jpeg
from helpers.paths import CONF_DIR, ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ncl.baselines.vocabulary import build_vocabulary
from ncl.codes.extraction import CodeExtractor, Extraction, ExtractionSettings
from ncl.codes.pca import cached_pca_basis
from ncl.codes.store import CodeStore, write_codes
from ncl.data.benchmarks.base import BenchmarkFormatError
from ncl.data.benchmarks.revisited import read_revisited_gnd
from ncl.features.descriptors import extract_local_features
from ncl.io.decode import UnreadableImage, read_rgb
from ncl.jobs.evaluate import run_evaluation
from ncl.models import create_backbone

SETTINGS = ExtractionSettings(batch_size=4, num_workers=0, shard_size=4, progress=False)


def results(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())


# 1. an unreadable query ------------------------------------------------------------------------


def test_an_unreadable_ukb_query_is_named_and_scores_zero(cfg_evaluate, tmp_path, caplog):
    ukb = write_ukb(tmp_path / "ukb", n_objects=3, image_dir=".")
    (ukb.image_dir / "ukbench00005.jpg").write_bytes(os.urandom(2000))
    cfg = cfg_evaluate(
        ["benchmark=ukb", f"benchmark.reader.root={ukb.root}", "compression=none", "taps=[pool]"]
    )
    with caplog.at_level(logging.WARNING):
        run_evaluation(cfg)
    row = results(cfg)["rows"][0]
    assert row["unreadable_queries"] == ["ukbench00005"]
    assert row["per_query"]["N-S"][5] == 0.0
    assert len(row["per_query"]["N-S"]) == 12  # it stays in the protocol's mean
    assert row["metrics"]["N-S"] == pytest.approx(np.mean(row["per_query"]["N-S"]))
    assert "ukbench00005" in caplog.text


def test_an_unreadable_oxford_query_is_named_and_scores_zero(cfg_evaluate, tmp_path):
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=4, n_other=2)
    query, spec = next(iter(oxford.queries.items()))
    oxford.files[spec.image].write_bytes(b"\xff\xd8 not really a jpeg")
    cfg = cfg_evaluate(oxford_overrides(oxford.root))
    run_evaluation(cfg)
    row = results(cfg)["rows"][0]
    assert row["unreadable_queries"] == [query]
    names = [q for q in oxford.queries]
    assert row["per_query"]["AP"][names.index(query)] == 0.0
    assert all(ap > 0 for q, ap in zip(names, row["per_query"]["AP"], strict=True) if q != query)


# 2. a truncated JPEG ---------------------------------------------------------------------------


def test_a_truncated_jpeg_is_named_and_left_out(backbone, images, tmp_path, caplog):
    whole = images.files[4].read_bytes()
    images.files[4].write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnreadableImage, match=r"im04\.jpg: truncated JPEG"):
        read_rgb(images.files[4])
    store = CodeStore(tmp_path / "codes")
    with caplog.at_level(logging.WARNING):
        sets = Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()
    assert sets["pool"].meta["failed"] == ["im04"] and "im04" not in sets["pool"].ids
    assert "im04.jpg: truncated JPEG" in caplog.text
    # local features (baselines, pair mining) decode the same way
    cache = extract_local_features(
        images.files, images.names, tmp_path / "sift", max_keypoints=50, max_side=None, workers=1
    )
    assert "im04" in cache.failed


# 3. two runs extracting the same code set ------------------------------------------------------

RACE = textwrap.dedent(
    """
    import logging, sys, torch
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ncl.codes.extraction import Extraction, ExtractionSettings
    from ncl.codes.store import CodeStore
    from ncl.data.images import folder_image_set
    from ncl.models import create_backbone
    torch.manual_seed(0)
    net = create_backbone("mobilenet_v2", pretrained=False).eval()
    images = folder_image_set("toy", sys.argv[1])
    settings = ExtractionSettings(batch_size=4, num_workers=0, shard_size=4, progress=False)
    Extraction(images, net, "m", ["pool"], CodeStore(sys.argv[2]), settings).run()
    """
)


def test_two_runs_extracting_one_code_set_extract_it_once(images, tmp_path):
    """The second waits for the first's lock, then reuses its codes (it used to find its shard
    folder deleted by the first and fail)."""
    cmd = [sys.executable, "-c", RACE, str(images.files[0].parent), str(tmp_path / "codes")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    logs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], logs
    assert sum("extracting toy" in log for log in logs) == 1, logs
    codes = CodeStore(tmp_path / "codes").read("m", "toy", "pool")
    assert codes.ids == images.names


# 4. a full disk --------------------------------------------------------------------------------


def test_a_full_disk_is_named_and_a_rerun_with_space_resumes(
    backbone, images, tmp_path, monkeypatch
):
    store = CodeStore(tmp_path / "codes")

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(OSError, match=r"No space left on device: .*codes\.npy"):
        Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()
    folder = tmp_path / "codes" / "m" / "toy"
    assert not list(folder.glob(".pool.tmp-*"))  # the staging folder is gone
    shards = list(folder.glob(".partial-*/shard-*.npz"))
    assert shards  # the work is kept

    monkeypatch.undo()
    seen: list[int] = []
    original = CodeExtractor.predict_step
    monkeypatch.setattr(
        CodeExtractor,
        "predict_step",
        lambda self, b, i: (seen.extend(b[1].tolist()), original(self, b, i))[1],
    )
    sets = Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()
    assert seen == [] and sets["pool"].ids == images.names


# 5. damaged cache files ------------------------------------------------------------------------


def test_a_damaged_pca_basis_is_named_moved_aside_and_refitted(tmp_path, caplog):
    rng = np.random.default_rng(0)
    codes = write_codes(tmp_path / "fit", [str(i) for i in range(40)], rng.normal(size=(40, 16)))
    first = cached_pca_basis(codes, 8)
    basis = tmp_path / "fit" / "pca-8" / "basis.npz"
    basis.write_bytes(basis.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="ncl.cache"):
        again = cached_pca_basis(codes, 8)
    np.testing.assert_allclose(again.components, first.components, atol=1e-6)
    assert "pca-8" in caplog.text and "BadZipFile" in caplog.text
    assert list((tmp_path / "fit").glob(".pca-8.damaged-*"))


def test_a_damaged_code_set_is_moved_aside_and_extracted_again(backbone, images, tmp_path):
    store = CodeStore(tmp_path / "codes")
    first = Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()["pool"]
    reference = np.array(first.codes)
    path = first.path / "codes.npy"
    path.write_bytes(path.read_bytes()[:200])
    again = Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()["pool"]
    np.testing.assert_allclose(again.codes, reference, atol=1e-5)
    assert list(first.path.parent.glob(".pool.damaged-*"))


def test_a_damaged_vocabulary_is_remade(tmp_path):
    photos = tmp_path / "photos"
    for i in range(3):
        write_jpeg(photos / f"p{i}.jpg", size=(96, 96), seed=i)
    files = sorted(photos.iterdir())
    cache = extract_local_features(
        files,
        [f.stem for f in files],
        tmp_path / "sift",
        max_keypoints=80,
        max_side=None,
        workers=1,
    )
    vocabulary = build_vocabulary(cache, 4, tmp_path / "voc", max_descriptors=200, niter=2)
    (vocabulary.path / "centroids.npy").write_bytes(b"\x93NUMPY damaged")
    again = build_vocabulary(cache, 4, tmp_path / "voc", max_descriptors=200, niter=2)
    np.testing.assert_array_equal(again.centroids, vocabulary.centroids)


# 6. a damaged ground-truth pickle --------------------------------------------------------------

LOAD_CAPPED = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
    from ncl.data.benchmarks.revisited import read_revisited_gnd
    read_revisited_gnd(sys.argv[1])
    """
)


def test_a_damaged_ground_truth_pickle_is_one_line_naming_it(tmp_path):
    """A memo index of 2^31 in a pickle made the C unpickler allocate 16 GB before failing."""
    bad = tmp_path / "gnd_roxford5k.pkl"
    bad.write_bytes(b"\x80\x04}r\xff\xff\xff\x7f.")  # EMPTY_DICT, LONG_BINPUT 2**31 - 1
    limit = 2 << 30
    run = subprocess.run(
        [sys.executable, "-c", LOAD_CAPPED, str(bad), str(limit)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "BenchmarkFormatError" in run.stderr and str(bad) in run.stderr
    assert "MemoryError" not in run.stderr
    # and every flipped byte of a real-format file is a named error, never anything else
    good = write_revisited(tmp_path / "roxford5k").gnd_file
    data = good.read_bytes()
    flipped = tmp_path / "flipped.pkl"
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    for position in range(0, len(data), max(1, len(data) // 200)):
        damaged = bytearray(data)
        damaged[position] ^= 0x7F
        flipped.write_bytes(bytes(damaged))
        try:
            read_revisited_gnd(flipped)
        except BenchmarkFormatError as e:
            assert str(flipped) in str(e)
    assert resource.getrlimit(resource.RLIMIT_AS) == (soft, hard)


# 7. a file that is not a checkpoint ------------------------------------------------------------


def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path):
    path = tmp_path / "x.ckpt"
    path.write_text("these are my notes, not weights\n")
    with pytest.raises(ValueError, match=r"x\.ckpt: not a PyTorch checkpoint"):
        create_backbone(str(path))
    zipped = tmp_path / "y.pt"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("readme.txt", "a zip, but not torch's")
    with pytest.raises(ValueError, match=r"y\.pt: not a PyTorch checkpoint"):
        create_backbone(str(zipped))


# 8. bad options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("extraction.dtype=int8", "extraction.dtype must be one of float32, float16"),
        ("model.pretrained=flase", "model.pretrained must be true or false"),
        ("compression.dim=abc", "compression.dim must be positive integers or null"),
        ("search.depth=-5", "search.depth must be a positive integer or null"),
        ("extraction.batch_size=0", "extraction.batch_size must be a positive integer"),
        ("compression.whiten=maybe", "compression.whiten must be true or false"),
        ("compression.whiten_power=2", "compression.whiten_power must be a number from 0 to 1"),
        ("search.database_rotations=[45]", "search.database_rotations must be multiples of 90"),
    ],
)
def test_bad_options_are_refused_by_name_before_anything_is_written(
    cfg_evaluate, tmp_path, override, named
):
    cfg = cfg_evaluate([override])
    with pytest.raises(ValueError, match=named):
        run_evaluation(cfg)
    data = tmp_path / "data"
    assert not data.exists() or not any(data.iterdir())  # no demo generated, no codes


# 9. smaller ------------------------------------------------------------------------------------


def test_ctrl_c_keeps_the_work_and_says_how_much_is_done(
    backbone, images, tmp_path, monkeypatch, caplog
):
    store = CodeStore(tmp_path / "codes")
    original = CodeExtractor.predict_step

    def interrupted_at_batch_2(self, batch, batch_idx):
        if batch_idx == 2:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(CodeExtractor, "predict_step", interrupted_at_batch_2)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()
    assert stop.value.code == 130
    assert "interrupted: 8 of 10 images of toy done; run the same command again" in caplog.text

    seen: list[int] = []
    monkeypatch.setattr(
        CodeExtractor,
        "predict_step",
        lambda self, b, i: (seen.extend(b[1].tolist()), original(self, b, i))[1],
    )
    Extraction(images, backbone, "m", ["pool"], store, SETTINGS).run()
    assert sorted(seen) == [8, 9]


def test_two_runs_started_in_one_second_get_their_own_folders():
    def run_dir() -> str:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("evaluate", return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]

    dirs = {run_dir() for _ in range(3)}
    assert len(dirs) == 3, dirs

"""The CUDA code paths, run by `bash benchmarks/gpu_check.sh` on a machine with a GPU (marked
`gpu`: `make test` deselects them). Each asserts that CUDA is there: run on a machine without one,
they fail saying so rather than pass untested."""

from __future__ import annotations

import numpy as np
import pytest
import test_metric
import torch
from helpers.configs import compose_job

from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.jobs.train import run_training
from ncl.search.flat import gpu_available, rank
from ncl.search.index import IVFFlat
from ncl.search.search import Search

pytestmark = pytest.mark.gpu

tuple_data = test_metric.tuple_data  # the siamese tests' fixture: class folders and mined pairs


@pytest.fixture(autouse=True)
def cuda() -> None:
    assert torch.cuda.is_available(), "no CUDA device: run the gpu tests on a GPU machine"


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("precision", ["32-true", "16-mixed", "bf16-mixed"])
def test_gpu_extraction_matches_the_cpu_codes(backbone, images, tmp_path, precision):
    """The same network on the GPU, in full or mixed precision, gives the CPU's codes (cosine)."""
    cpu = ExtractionSettings(batch_size=4, num_workers=0, progress=False, accelerator="cpu")
    gpu = ExtractionSettings(
        batch_size=4, num_workers=0, progress=False, accelerator="gpu", precision=precision
    )
    store = CodeStore(tmp_path / "codes")
    ref = Extraction(images, backbone, "cpu", ["pool"], store, cpu).run()["pool"]
    out = Extraction(images, backbone.cpu(), "gpu", ["pool"], store, gpu).run()["pool"]
    cosine = np.sum(unit_rows(ref.codes) * unit_rows(out.codes), axis=1)
    floor = 0.9999 if precision == "32-true" else 0.995
    assert out.ids == ref.ids and cosine.min() > floor, cosine.min()
    dtype = {"32-true": "float32", "16-mixed": "float16", "bf16-mixed": "bfloat16"}[precision]
    assert out.meta["extraction"]["compute_dtype"] == dtype  # AMP codes: their own dtype and key
    assert out.meta["inputs"].get("compute_dtype", "float32") == dtype


def test_faiss_gpu_ranks_as_the_cpu_does():
    if not gpu_available():
        pytest.skip("faiss has no GPU support here (install faiss-gpu: FAISS=gpu)")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 128)).astype(np.float32)
    q = rng.normal(size=(100, 128)).astype(np.float32)
    on_cpu, on_gpu = rank(x, q, 50, use_gpu=False), rank(x, q, 50, use_gpu=True)
    assert on_gpu.device == "gpu"
    agreement = np.mean(
        [
            len(set(a[:10]) & set(b[:10])) / 10
            for a, b in zip(on_cpu.ranks, on_gpu.ranks, strict=True)
        ]
    )
    assert agreement > 0.99


def test_a_trained_index_on_the_gpus_ranks_as_on_the_cpu():
    """An IVF index searched on every GPU (sharded over them when there are several) finds
    what the CPU index finds, every list probed."""
    assert gpu_available(), "faiss sees no GPU: install faiss-gpu (the gpu extra)"
    rng = np.random.default_rng(0)
    x, q, train = (
        unit_rows(rng.standard_normal((n, 32))).astype(np.float32) for n in (5000, 50, 2000)
    )
    owner = np.arange(len(x))
    kind = IVFFlat(nlist=16, nprobe=16)
    on_cpu = Search(gpu=False, index=kind).rank(x, owner, q, 20, train=train)
    on_gpu = Search(gpu=True, index=kind).rank(x, owner, q, 20, train=train)
    assert on_gpu.device == "gpu"
    agreement = np.mean(
        [len(set(a) & set(b)) / 20 for a, b in zip(on_cpu.ranks, on_gpu.ranks, strict=True)]
    )
    assert agreement > 0.99


def test_mixed_precision_training_runs_on_the_gpu(cfg_train, tmp_path):
    from helpers.fixtures_labelled import write_class_folders

    write_class_folders(tmp_path / "data" / "demo" / "train", ["a", "b", "c"], per_class=4)
    cfg = cfg_train(
        [
            "experiment=demo_finetune",
            "data.batch_size=2",
            "data.num_workers=0",
            "trainer=gpu",
            "trainer.precision=bf16-mixed",
            "trainer.fast_dev_run=true",
            "logger=csv",
        ]
    )
    run_training(cfg)
    assert cfg.trainer.accelerator == "gpu"


def test_siamese_fine_tuning_runs_on_the_gpu_in_mixed_precision(tuple_data, tmp_path):
    """The siamese step, and the re-mining of the pool with the trainer's precision, on CUDA."""
    cfg = compose_job(
        "train",
        test_metric.siamese_overrides(
            tuple_data, "trainer=gpu", "trainer.precision=bf16-mixed", "trainer.fast_dev_run=true"
        ),
        data_dir=tuple_data,
        output_dir=tmp_path,
    )
    run_training(cfg)
    assert cfg.trainer.accelerator == "gpu"

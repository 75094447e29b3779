"""Inference engines (`extraction.engine`): each gives torch's codes within the tolerance, a
network that does not export falls back to torch with one warning, the exported model is an
artifact remade when the weights change, and the engine is recorded with the codes and results."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.paths import shared
from torch.nn import functional as F

from ncl.codes import engines
from ncl.codes.engines import TOLERANCE, engine_module, resolve_engine
from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.images import ImageSet
from ncl.jobs.evaluate import run_evaluation
from ncl.models import create_backbone
from ncl.models.descriptor import Descriptor
from ncl.models.pooling import GeM

FAST = {"batch_size": 4, "num_workers": 0, "progress": False, "accelerator": "cpu"}


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def extract(images, net, store, engine, taps=("pool", "conv"), **options):
    settings = ExtractionSettings(engine=engine, **{**FAST, **options})
    pooling = GeM() if "conv" in taps else None
    return Extraction(images, net, "net", list(taps), store, settings, pooling=pooling).run()


def assert_same_codes(a, b) -> None:
    assert a.keys() == b.keys()
    for tap in a:
        assert a[tap].ids == b[tap].ids
        difference = np.abs(unit(a[tap].codes) - unit(b[tap].codes)).max()
        assert difference <= TOLERANCE, (tap, difference)


def test_onnxruntime_gives_torch_codes_on_generated_images(backbone, images, tmp_path):
    ref = extract(images, backbone, CodeStore(tmp_path / "torch"), "torch")
    out = extract(images, backbone, CodeStore(tmp_path / "ort"), "onnxruntime")
    assert_same_codes(ref, out)
    assert out["pool"].meta["extraction"]["engine"] == "onnxruntime"
    assert ref["pool"].meta["extraction"]["engine"] == "torch"
    # the engine is not part of the code set's identity: same key, either engine's codes serve
    assert out["pool"].meta["key"] == ref["pool"].meta["key"]


def test_onnxruntime_gives_torch_codes_on_real_photos(tmp_path):
    """A trained network on the UKB sample (32 photos): codes within the tolerance."""
    folder = shared("ukbench-1000")
    net = create_backbone("efficientnet_lite0", pretrained=True).eval()
    files = sorted(folder.glob("*.jpg"))[:32]
    photos = ImageSet("ukb32", [f.stem for f in files], files)
    ref = extract(photos, net, CodeStore(tmp_path / "torch"), "torch")
    out = extract(photos, net, CodeStore(tmp_path / "ort"), "onnxruntime")
    assert_same_codes(ref, out)


@pytest.mark.slow
def test_compiled_engine_gives_torch_codes(backbone, images, tmp_path):
    """torch.compile: a compilation per batch shape (minutes on two cores)."""
    ref = extract(images, backbone, CodeStore(tmp_path / "torch"), "torch")
    out = extract(images, backbone, CodeStore(tmp_path / "compile"), "compile")
    assert_same_codes(ref, out)
    assert out["pool"].meta["extraction"]["engine"] == "compile"


def test_a_network_that_does_not_export_falls_back_to_torch_with_one_warning(
    backbone, images, tmp_path, monkeypatch, caplog
):
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    ref = extract(images, backbone, CodeStore(tmp_path / "torch"), "torch")
    with caplog.at_level(logging.WARNING):
        out = extract(images, backbone, CodeStore(tmp_path / "auto"), "auto")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "does not run in onnxruntime" in warnings[0].getMessage()
    assert "unsupported operator" in warnings[0].getMessage()
    assert out["pool"].meta["extraction"]["engine"] == "torch"
    assert_same_codes(ref, out)


def test_an_export_that_disagrees_with_torch_is_not_used(backbone, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(engines, "TOLERANCE", -1.0)  # no export can agree
    module = Descriptor().module(backbone, ["pool"])
    with caplog.at_level(logging.WARNING):
        _, used = engine_module("onnxruntime", module, [64], tmp_path, {"model": "m"})
    assert used == "torch"
    assert "differ from torch's" in caplog.text


def test_the_exported_model_is_cached_and_remade_when_the_weights_change(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = create_backbone("mobilenet_v2", pretrained=False).eval()
    exports = []
    export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: exports.append(1) or export(*a, **k))
    module = Descriptor().module(net, ["pool"])
    x = torch.rand(2, 3, 64, 64)
    first, _ = engine_module("onnxruntime", module, [64], tmp_path, {"model": "m"})
    again, _ = engine_module("onnxruntime", module, [64], tmp_path, {"model": "m"})
    assert len(exports) == 1
    torch.testing.assert_close(first(x)[0], again(x)[0])
    with torch.no_grad():
        net.head.weight.zero_()  # not on the way to `pool`: the model is remade all the same
        net.net.features[0][0].weight.mul_(-1)
    changed, _ = engine_module("onnxruntime", module, [64], tmp_path, {"model": "m"})
    assert len(exports) == 2
    with torch.inference_mode():
        expected = F.normalize(module(x)[0])
    torch.testing.assert_close(F.normalize(changed(x)[0]), expected, atol=TOLERANCE, rtol=0)
    assert (F.normalize(changed(x)[0]) - F.normalize(first(x)[0])).abs().max() > 0.01


def test_engine_settings_are_checked():
    with pytest.raises(ValueError, match=r"extraction\.engine must be one of"):
        ExtractionSettings(engine="tensorrt")
    with pytest.raises(ValueError, match=r"bf16-mixed needs extraction\.engine=torch"):
        ExtractionSettings(engine="onnxruntime", precision="bf16-mixed")
    assert resolve_engine("auto", "cpu", "32-true") == "onnxruntime"
    assert resolve_engine("auto", "cpu", "bf16-mixed") == "torch"
    assert resolve_engine("auto", "gpu", "32-true") == "torch"


def test_reduced_precision_codes_are_a_code_set_of_their_own(backbone, images, tmp_path):
    """bf16 autocast (on the CPU here; AMP on a GPU in tests/test_gpu.py): its compute dtype is
    recorded and keys the set, so its codes never pass for float32 ones."""
    store = CodeStore(tmp_path / "codes")
    fp32 = extract(images, backbone, store, "torch", taps=["pool"])["pool"]
    bf16 = extract(images, backbone, store, "auto", taps=["pool"], precision="bf16-mixed")["pool"]
    assert bf16.meta["extraction"] == {
        "engine": "torch",
        "precision": "bf16-mixed",
        "compute_dtype": "bfloat16",
    }
    assert bf16.meta["key"] != fp32.meta["key"]
    assert bf16.meta["inputs"]["compute_dtype"] == "bfloat16"
    assert np.sum(unit(fp32.codes) * unit(bf16.codes), axis=1).min() > 0.99


def test_the_engine_is_recorded_in_results(cfg_evaluate):
    cfg = cfg_evaluate(
        ["benchmark=demo", "model=mobilenet_v2", "model.pretrained=false", "extraction.engine=auto"]
    )
    run_evaluation(cfg)
    results = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert results["rows"][0]["extraction"] == {
        "engine": "onnxruntime",
        "precision": "32-true",
        "compute_dtype": "float32",
        "decode": "full",
    }


def test_onnxruntime_threads_sleep_when_idle_unless_asked_to_spin(tmp_path, monkeypatch):
    torch.manual_seed(0)
    module = Descriptor().module(create_backbone("mobilenet_v2", pretrained=False).eval(), ["pool"])
    ort, _ = engine_module("onnxruntime", module, [64], tmp_path, {"model": "m"})

    def spinning(codes) -> str:
        options = codes.sessions[64].get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(ort) == "0"  # the loader's workers share the cores
    monkeypatch.setattr(engines, "SPINNING", True)  # onnxruntime's own default, for measuring
    assert spinning(engine_module("onnxruntime", module, [64], tmp_path, {"model": "m"})[0]) == "1"

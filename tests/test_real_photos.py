"""Neural codes on real photographs: the embedded demo and the real UKB sample.

ImageNet codes must beat a randomly initialised network's by a wide margin: the evidence that
extraction, compression, search and scoring are wired the right way round on real images.
"""

import os

import pytest
from helpers.paths import shared

from ncl.codes.extraction import ExtractionSettings
from ncl.codes.neural import NeuralCodes
from ncl.codes.store import CodeStore
from ncl.data.benchmarks.ukb import read_ukb
from ncl.data.images import folder_image_set
from ncl.demo import demo_benchmark
from ncl.eval.compression import Compression, PCACompression
from ncl.eval.run import evaluate
from ncl.models import BackboneSpec
from ncl.search.search import Search

SETTINGS = ExtractionSettings(batch_size=32, num_workers=1, progress=False)
SHIPPED = ("efficientnet_lite0", "mobilenet_v2")


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    return CodeStore(tmp_path_factory.mktemp("codes"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    os.environ.setdefault("NCL_DEMO_OPENCV_DIR", "")  # the same benchmark on every machine
    return demo_benchmark(tmp_path_factory.mktemp("demo") / "demo")


def headline(rows, key):
    return {(r.tap, r.dim): r.metrics[key] for r in rows}


def random_init_scores(benchmark, store, key):
    """The same benchmark through a randomly initialised EfficientNet-Lite0 (uncompressed)."""
    source = NeuralCodes(
        BackboneSpec("efficientnet_lite0", pretrained=False), ["pool"], store, SETTINGS
    )
    return headline(evaluate(benchmark, source, Compression(), Search()), key)


def test_demo_imagenet_codes_and_their_pca_beat_random_init(demo, store):
    fit = folder_image_set("demo_train", demo.database_files[0].parents[1] / "train")
    spec = PCACompression(dim=(None, 64), fit_on=fit)
    source = NeuralCodes(BackboneSpec("efficientnet_lite0"), ["pool"], store, SETTINGS)
    trained = headline(evaluate(demo, source, spec, Search()), "mAP")
    random_init = random_init_scores(demo, store, "mAP")
    assert trained[("pool", 1280)] > 0.55
    assert trained[("pool", 1280)] > random_init[("pool", 1280)] + 0.25
    assert trained[("pool", 64)] > random_init[("pool", 1280)]


@pytest.mark.parametrize("model", SHIPPED)
def test_ukb_sample_shipped_networks_beat_random_init(model, store):
    ukb = read_ukb(shared("ukbench-1000"))
    assert len(ukb.database) == 1000
    ns = headline(
        evaluate(
            ukb,
            NeuralCodes(BackboneSpec(model), ["pool"], store, SETTINGS),
            Compression(),
            Search(),
        ),
        "N-S",
    )
    random_init = random_init_scores(ukb, store, "N-S")
    assert ns[("pool", 1280)] > 3.0
    assert ns[("pool", 1280)] > random_init[("pool", 1280)] + 0.8

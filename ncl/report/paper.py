"""The paper's figures (Babenko et al., ECCV 2014, Tables 1, 2 and 4), for reports to set ours
beside them.

A figure is keyed by (benchmark, codes, tap, method, dim): `codes` names the network the paper took
them from: "imagenet" (trained on ILSVRC), "landmarks" or "turntable" (retrained on Landmarks or on
the Multi-view RGB-D turntable views); `method` is "none" (full codes, dim None), "pca" or
"projection" (the discriminative dimensionality reduction of Table 4). A model says which network
it reproduces with `model.paper_codes` in its config. The paper's Holidays figures are for the
upright (rotated) version. Its UKB figures are for all 10,200 images: compare the ukbench-1000
sample's N-S with other methods on that sample, not with these.
"""

from __future__ import annotations

PaperKey = tuple[str, str, str, str, int | None]

DIMS = (16, 32, 64, 128, 256, 512)

# Table 1, full-size neural codes: (benchmark -> per tap l5, l6, l7), per network.
_TABLE_1 = {
    "imagenet": {
        "oxford5k": (0.389, 0.435, 0.430),
        "oxford105k": (None, 0.392, None),
        "holidays": (0.690, 0.749, 0.736),
        "ukb": (3.09, 3.43, 3.39),
    },
    "landmarks": {
        "oxford5k": (0.387, 0.545, 0.538),
        "oxford105k": (None, 0.512, None),
        "holidays": (0.674, 0.793, 0.764),
        "ukb": (2.99, 3.29, 3.19),
    },
    "turntable": {
        "oxford5k": (0.348, 0.393, 0.362),
        "oxford105k": (None, 0.351, None),
        "holidays": (0.682, 0.754, 0.730),
        "ukb": (3.13, 3.56, 3.53),
    },
}

# Table 2, L6 codes PCA-compressed to DIMS, per network and benchmark.
_TABLE_2 = {
    "imagenet": {
        "oxford5k": (0.328, 0.390, 0.421, 0.433, 0.435, 0.435),
        "oxford105k": (0.260, 0.330, 0.370, 0.388, 0.392, 0.392),
        "holidays": (0.591, 0.683, 0.729, 0.747, 0.749, 0.749),
        "ukb": (2.630, 3.130, 3.381, 3.416, 3.423, 3.426),
    },
    "landmarks": {
        "oxford5k": (0.418, 0.515, 0.548, 0.557, 0.557, 0.557),
        "oxford105k": (0.354, 0.467, 0.508, 0.523, 0.524, 0.522),
        "holidays": (0.609, 0.729, 0.777, 0.789, 0.789, 0.789),
        "ukb": (2.410, 2.980, 3.256, 3.297, 3.298, 3.300),
    },
    "turntable": {
        "oxford5k": (0.289, 0.349, 0.377, 0.391, 0.392, 0.393),
        "oxford105k": (0.223, 0.293, 0.331, 0.348, 0.350, 0.351),
        "holidays": (0.587, 0.702, 0.741, 0.756, 0.756, 0.756),
        "ukb": (2.829, 3.302, 3.526, 3.552, 3.556, 3.557),
    },
}

# Table 4, Oxford, L6 ImageNet codes: the discriminative projection to 16, 32, 64, 128 dims.
_TABLE_4 = (0.368, 0.401, 0.430, 0.439)


def _figures() -> dict[PaperKey, float]:
    out: dict[PaperKey, float] = {}
    for codes, benchmarks in _TABLE_1.items():
        for benchmark, per_tap in benchmarks.items():
            for tap, value in zip(("l5", "l6", "l7"), per_tap, strict=True):
                if value is not None:
                    out[(benchmark, codes, tap, "none", None)] = value
    for codes, benchmarks in _TABLE_2.items():
        for benchmark, values in benchmarks.items():
            for dim, value in zip(DIMS, values, strict=True):
                out[(benchmark, codes, "l6", "pca", dim)] = value
    for dim, value in zip(DIMS, _TABLE_4, strict=False):
        out[("oxford5k", "imagenet", "l6", "projection", dim)] = value
    return out


PAPER: dict[PaperKey, float] = _figures()

CODES_NAMES = {
    "imagenet": "ILSVRC",
    "landmarks": "retrained on Landmarks",
    "turntable": "retrained on turntable views",
}


def paper_figure(
    benchmark: str, codes: str | None, tap: str, method: str, dim: int | None
) -> float | None:
    """The paper's figure for this cell of a report, or None where it has none."""
    if codes is None:
        return None
    return PAPER.get((benchmark, codes, tap, method, None if method == "none" else dim))

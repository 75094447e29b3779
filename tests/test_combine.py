"""Combined layers: the sum and the concatenation of L2-normalised taps, stored once, remade when
a part changes, and evaluated like any tap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford

from ncl.codes.combine import CombinedTaps, base_taps, combine, tap_parts
from ncl.codes.store import CodeStore, write_codes
from ncl.data.images import ImageSet
from ncl.jobs.evaluate import run_evaluation


def test_tap_names_parse_into_an_operator_and_parts():
    assert tap_parts("l6") == ("", ["l6"])
    assert tap_parts("l6+l7") == ("+", ["l6", "l7"])
    assert tap_parts("l5|l6|l7") == ("|", ["l5", "l6", "l7"])
    assert base_taps(["l6", "l6+l7", "l5|l6"]) == ["l6", "l7", "l5"]
    with pytest.raises(ValueError, match="either"):
        tap_parts("l5+l6|l7")
    with pytest.raises(ValueError, match="needs a name"):
        tap_parts("l6+")


def code_sets(tmp_path, a: np.ndarray, b: np.ndarray, ids=("x", "y")):
    return [write_codes(tmp_path / n, list(ids), c) for n, c in (("a", a), ("b", b))]


def test_parts_are_normalised_then_summed_or_concatenated(tmp_path):
    a = np.array([[3.0, 4.0], [0.0, 2.0]])
    b = np.array([[1.0, 0.0], [0.0, -5.0]])
    parts = code_sets(tmp_path, a, b)
    np.testing.assert_allclose(combine("a+b", parts), [[1.6, 0.8], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        combine("a|b", parts), [[0.6, 0.8, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]], atol=1e-6
    )


def test_a_sum_of_different_widths_or_image_lists_is_refused(tmp_path):
    parts = code_sets(tmp_path, np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="one dimension"):
        combine("a+b", parts)
    other = write_codes(tmp_path / "c", ["y", "x"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="other images"):
        combine("a|c", [parts[0], other])


class FakeSource:
    """Plain taps from a dict of arrays; counts how often it is asked."""

    name = "net"

    def __init__(self, store: CodeStore, arrays: dict[str, np.ndarray]) -> None:
        self.store, self.arrays, self.calls = store, arrays, 0

    def codes(self, images: ImageSet) -> dict:
        self.calls += 1
        return {
            t: write_codes(self.store.path("net", images.name, t), images.names, a)
            for t, a in self.arrays.items()
        }


def test_combined_sets_are_stored_once_and_remade_when_a_part_changes(tmp_path):
    store = CodeStore(tmp_path / "codes")
    images = ImageSet(name="set", names=["x", "y"], files=[tmp_path / "x", tmp_path / "y"])
    rng = np.random.default_rng(0)
    source = FakeSource(store, {"l6": rng.normal(size=(2, 4)), "l7": rng.normal(size=(2, 4))})
    combined = CombinedTaps(source, ["l6", "l6+l7"], store)
    first = combined.codes(images)["l6+l7"]
    assert first.path == store.path("net", "set", "l6+l7") and first.dim == 4
    again = combined.codes(images)["l6+l7"]
    assert again.meta["created"] == first.meta["created"]  # reused, not rewritten

    source.arrays["l7"] = rng.normal(size=(2, 4))
    remade = combined.codes(images)["l6+l7"]
    expected = combine("l6+l7", [store.read("net", "set", "l6"), store.read("net", "set", "l7")])
    np.testing.assert_allclose(remade.codes, expected)
    assert not np.allclose(remade.codes, first.codes)


def test_evaluate_scores_a_concatenation_like_a_tap(cfg_evaluate, tmp_path):
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=6, n_other=4)
    cfg = cfg_evaluate(oxford_overrides(oxford.root, "taps=[pool,pool|logits]"))
    run_evaluation(cfg)
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["tap"], r["dim"]) for r in rows] == [("pool", 1280), ("pool|logits", 2280)]
    assert all(0 < r["metrics"]["mAP"] <= 1 for r in rows)

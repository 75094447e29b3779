"""Holidays' sideways photos: with search.database_rotations every database image is also coded
turned by ±90° and ranks by its best code, so a positive stored sideways is found first."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.fixtures_official import write_holidays
from skimage import data as skdata

from ncl.codes.store import CodeStore
from ncl.jobs.evaluate import run_evaluation

PHOTOS = {
    100000: skdata.chelsea,
    100001: skdata.chelsea,  # stored turned by 90° (as Holidays stores some photos)
    100100: skdata.coffee,
    100101: skdata.coffee,  # turned the other way
    100200: skdata.astronaut,
    100201: lambda: skdata.astronaut()[40:480, 30:470],  # upright, cropped
    # distractors for the others: a group of photos that match nothing else
    100300: skdata.rocket,
    100301: skdata.retina,
    100302: skdata.immunohistochemistry,
    100303: skdata.hubble_deep_field,
    100304: lambda: skdata.chelsea()[:, ::-1][:, :200],
    100305: lambda: skdata.coffee()[::-1],
}


@pytest.fixture(scope="module")
def sideways(tmp_path_factory):
    root = tmp_path_factory.mktemp("holidays")
    fixture = write_holidays(root, group_sizes=[2, 2, 2, 6])
    turns = {100001: cv2.ROTATE_90_CLOCKWISE, 100101: cv2.ROTATE_90_COUNTERCLOCKWISE}
    for number, photo in PHOTOS.items():
        image = cv2.cvtColor(photo(), cv2.COLOR_RGB2BGR)
        if number in turns:
            image = cv2.rotate(image, turns[number])
        cv2.imwrite(str(fixture.image_dir / f"{number}.jpg"), image)
    return fixture


def holidays_rows(cfg_evaluate, sideways, rotations: str, taps: str = "[pool]") -> dict:
    cfg = cfg_evaluate(
        [
            "benchmark=holidays",
            f"benchmark.reader.root={sideways.root}",
            "compression=none",
            f"taps={taps}",
            f"search.database_rotations={rotations}",
        ],
    )
    run_evaluation(cfg)
    return json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())["rows"][0]


def test_turned_database_codes_find_the_sideways_positives_first(sideways, cfg_evaluate, tmp_path):
    plain = holidays_rows(cfg_evaluate, sideways, "[]")
    turned = holidays_rows(cfg_evaluate, sideways, "[90,270]")
    assert turned["per_query"]["AP"][:3] == [1.0, 1.0, 1.0], turned["per_query"]
    assert plain["per_query"]["AP"][2] == 1.0  # the upright pair needs no rotation
    assert turned["metrics"]["mAP"] >= plain["metrics"]["mAP"]
    # each image once, however many of its codes were ranked (the query itself is left out)
    assert turned["depth"] == plain["depth"] == len(PHOTOS)
    codes = tmp_path / "data" / "codes" / "efficientnet_lite0"
    assert {p.name for p in codes.iterdir()} >= {"holidays", "holidays_rot90", "holidays_rot270"}


def test_combined_taps_turn_like_plain_ones(sideways, tmp_path, cfg_evaluate):
    """A turned image set is a set like any other: a combination of turned parts is derived from
    them, so the sideways positives are found as with the plain tap."""
    holidays_rows(cfg_evaluate, sideways, "[90,270]", taps="[pool|logits]")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert rows[0]["tap"] == "pool|logits"
    assert rows[0]["per_query"]["AP"][:3] == [1.0, 1.0, 1.0], rows[0]["per_query"]
    store = CodeStore(tmp_path / "data" / "codes")
    turned = store.read("efficientnet_lite0", "holidays_rot90", "pool|logits")
    assert turned.dim == 1280 + 1000


def test_turning_the_sideways_photos_back_brings_them_nearer_their_queries(
    tmp_path, sideways, cfg_evaluate
):
    """Why it helps: for a photo stored sideways, one of its turned codes is nearer its upright
    query than its stored code, and ranking by the best code can only move it up."""
    holidays_rows(cfg_evaluate, sideways, "[90,270]")
    store = CodeStore(tmp_path / "data" / "codes")
    sets = {
        r: store.read("efficientnet_lite0", f"holidays{r}", "pool")
        for r in ("", "_rot90", "_rot270")
    }

    def code(r: str, name: str) -> np.ndarray:
        c = np.asarray(sets[r].codes)[sets[r].rows([name])[0]]
        return c / np.linalg.norm(c)

    for query, positive in (("100000", "100001"), ("100100", "100101")):
        stored = code("", query) @ code("", positive)
        best = max(code("", query) @ code(r, positive) for r in ("_rot90", "_rot270"))
        assert best > stored + 0.05, (query, stored, best)

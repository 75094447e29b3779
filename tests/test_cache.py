"""The artifact cache: reuse while inputs are unchanged, remake (and say why) when one changes,
never publish half an artifact, one builder at a time."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from ncl.cache import Artifact, digest, file_stamp


def _writer(calls: list[str], text: str = "x"):
    def make(tmp: Path) -> dict:
        calls.append(text)
        (tmp / "data.txt").write_text(text)
        return {"extra": 1}

    return make


def test_unchanged_inputs_reuse_a_changed_one_remakes_and_says_which(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    a = Artifact(tmp_path / "art", {"settings": {"k": 1}, "file": "1:2"})
    a.get(_writer(calls, "first"))
    a.get(_writer(calls, "again"))
    assert calls == ["first"]
    meta = json.loads((tmp_path / "art" / "meta.json").read_text())
    assert meta["key"] == a.key and meta["extra"] == 1 and meta["inputs"]["file"] == "1:2"
    b = Artifact(tmp_path / "art", {"settings": {"k": 1}, "file": "1:3"})
    with caplog.at_level(logging.INFO, logger="ncl.cache"):
        b.get(_writer(calls, "second"))
    assert calls == ["first", "second"]
    assert "changed: file" in caplog.text
    assert (tmp_path / "art" / "data.txt").read_text() == "second"


def test_a_failed_build_leaves_the_old_artifact_and_no_staging(tmp_path: Path) -> None:
    Artifact(tmp_path / "art", {"v": 1}).get(_writer([], "old"))

    def fail(tmp: Path) -> None:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Artifact(tmp_path / "art", {"v": 2}).get(fail)
    assert (tmp_path / "art" / "data.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["art"]


def test_a_damaged_meta_json_makes_the_artifact_stale(tmp_path: Path) -> None:
    a = Artifact(tmp_path / "art", {"v": 1})
    a.get(_writer([]))
    (tmp_path / "art" / "meta.json").write_text("{not json")
    assert not a.is_current()
    calls: list[str] = []
    a.get(_writer(calls))
    assert calls == ["x"] and a.is_current()


def test_two_builders_of_one_artifact_build_it_once(tmp_path: Path) -> None:
    calls: list[str] = []

    def slow(tmp: Path) -> None:
        calls.append("built")
        time.sleep(0.3)
        (tmp / "data.txt").write_text("x")

    a = Artifact(tmp_path / "art", {"v": 1})
    threads = [threading.Thread(target=a.get, args=(slow,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["built"]


def test_file_stamp_and_digest_follow_their_inputs(tmp_path: Path) -> None:
    f = tmp_path / "f"
    assert file_stamp(f) == "missing"
    f.write_text("a")
    first = file_stamp(f)
    f.write_text("ab")
    assert file_stamp(f) != first
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})

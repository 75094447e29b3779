"""Atomic writes: a failed write leaves the old file and no temporary behind."""

import numpy as np
import pytest

from ncl.atomic import save_npz_atomically, write_atomically, write_json_atomically


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "sub" / "results.json"
    write_json_atomically(path, {"mAP": 0.5})

    def half(f):
        f.write(b'{"mAP": 0.')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half)
    assert path.read_text() == '{"mAP": 0.5}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


def test_npz_round_trips(tmp_path):
    save_npz_atomically(tmp_path / "basis.npz", mean=np.arange(3.0), info="x")
    with np.load(tmp_path / "basis.npz") as f:
        assert f["mean"].tolist() == [0.0, 1.0, 2.0] and str(f["info"]) == "x"

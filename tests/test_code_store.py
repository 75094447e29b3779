import json

import numpy as np
import pytest

from ncl.codes.store import CodeSetError, CodeStore, read_codes, slug, write_codes


def test_round_trip_and_mmap(tmp_path):
    codes = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    ids = [f"img{i}" for i in range(5)]
    written = write_codes(tmp_path / "set", ids, codes, {"model": "m", "tap": "l6"})
    assert written.ids == ids
    back = read_codes(tmp_path / "set")
    assert isinstance(back.codes, np.memmap)
    np.testing.assert_array_equal(back.codes, codes)
    assert back.meta["model"] == "m" and back.meta["count"] == 5 and back.meta["dtype"] == "float32"
    # numpy alone reads it, as the format promises
    np.testing.assert_array_equal(np.load(tmp_path / "set" / "codes.npy", mmap_mode="r"), codes)
    np.testing.assert_array_equal(back.rows(["img3", "img0"]), [3, 0])
    with pytest.raises(CodeSetError, match="no codes for 1 image"):
        back.rows(["nope"])


def test_float16_kept_and_other_dtypes_become_float32(tmp_path):
    half = write_codes(tmp_path / "h", ["a"], np.ones((1, 2), np.float16))
    assert half.codes.dtype == np.float16
    doubles = write_codes(tmp_path / "d", ["a"], np.ones((1, 2), np.float64))
    assert doubles.codes.dtype == np.float32


def test_failed_write_leaves_previous_set_intact(tmp_path):
    write_codes(tmp_path / "set", ["a"], np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError):
        write_codes(tmp_path / "set", ["a", "b"], np.zeros((1, 2), np.float32))
    assert read_codes(tmp_path / "set").ids == ["a"]
    with pytest.raises(ValueError, match="single lines"):
        write_codes(tmp_path / "set", ["a\nb"], np.zeros((1, 2), np.float32))
    assert read_codes(tmp_path / "set").ids == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_reader_rejects_incomplete_or_inconsistent_sets(tmp_path):
    write_codes(tmp_path / "set", ["a", "b"], np.zeros((2, 2), np.float32))
    (tmp_path / "set" / "ids.txt").write_text("a\n")
    with pytest.raises(CodeSetError, match=r"ids.txt has 1 lines, codes.npy 2 rows"):
        read_codes(tmp_path / "set")
    (tmp_path / "set" / "meta.json").unlink()
    with pytest.raises(CodeSetError, match=r"meta.json: missing"):
        read_codes(tmp_path / "set")
    (tmp_path / "bad").mkdir()
    for name in ("ids.txt", "codes.npy"):
        (tmp_path / "bad" / name).write_text("x")
    (tmp_path / "bad" / "meta.json").write_text(json.dumps({"count": 1}))
    with pytest.raises(CodeSetError, match=r"codes.npy: not a readable"):
        read_codes(tmp_path / "bad")


def test_store_layout_and_missing_message(tmp_path):
    store = CodeStore(tmp_path)
    assert (
        store.path("efficientnet_lite0", "demo", "pool")
        == tmp_path / "efficientnet_lite0" / "demo" / "pool"
    )
    assert not store.exists("m", "s", "t")
    with pytest.raises(CodeSetError, match=r"run extract.py"):
        store.read("m", "s", "t")
    a, b = slug("/x/run1/last.ckpt"), slug("/x/run2/last.ckpt")
    assert a.startswith("last-") and a != b and "/" not in a

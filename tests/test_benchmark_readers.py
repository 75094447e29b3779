"""Benchmark readers on fixtures in the official formats, and on the real files in ../shared/data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers.fixtures_official import (
    write_holidays,
    write_oxford,
    write_paris,
    write_revisited,
    write_ukb,
)
from helpers.paths import shared

from ncl.data.benchmarks import BENCHMARKS, Benchmark, BenchmarkFormatError, load_benchmark
from ncl.data.benchmarks.holidays import read_holidays
from ncl.data.benchmarks.oxford import read_oxford, read_oxford_gt
from ncl.data.benchmarks.revisited import read_revisited, read_revisited_gnd
from ncl.data.benchmarks.ukb import read_ukb
from ncl.protocols.official import APProtocol, RevisitedProtocol, UKBProtocol


def perfect_ranks(b: Benchmark, protocol: APProtocol) -> np.ndarray:
    """Every query's positives first, then the rest of the database."""
    n = len(b.database)
    rows = [np.r_[pos, np.setdiff1d(np.arange(n), pos)] for pos in protocol.positives]
    return np.stack(rows)


# --- Oxford / Paris -----------------------------------------------------------------------------


def test_oxford_reads_official_layout(tmp_path):
    fx = write_oxford(tmp_path)
    b = read_oxford(tmp_path)
    assert b.name == "oxford5k"
    assert b.database == fx.database
    assert b.database_files == [fx.files[n] for n in fx.database]
    assert [q.name for q in b.queries] == list(fx.queries) == sorted(fx.queries)
    assert not b.queries_in_database
    protocol = b.protocol
    assert isinstance(protocol, APProtocol)
    for i, q in enumerate(b.queries):
        spec = fx.queries[q.name]
        assert q.image == spec.image  # oxc1_ stripped
        assert q.path == fx.files[spec.image]
        assert q.bbox == pytest.approx(spec.bbox)
        assert [b.database[j] for j in protocol.positives[i]] == sorted(spec.positives)
        assert [b.database[j] for j in protocol.junk[i]] == spec.junk
        assert q.image in b.database  # the query stays in the database
    assert protocol.score(perfect_ranks(b, protocol)).metrics["mAP"] == pytest.approx(1.0)


def test_oxford_query_line_keeps_prefix_in_file(tmp_path):
    fx = write_oxford(tmp_path)
    line = (fx.gt_dir / "all_souls_1_query.txt").read_text()
    assert line.startswith("oxc1_all_souls_000001 ")
    assert read_oxford_gt(fx.gt_dir)[0].image == "all_souls_000001"


def test_paris_layout_without_prefix_in_landmark_folders(tmp_path):
    fx = write_paris(tmp_path)
    b = load_benchmark("paris6k", tmp_path)
    assert b.name == "paris6k"
    assert b.database == fx.database
    assert any(p.parent.name == "defense" for p in b.database_files)
    assert {q.name for q in b.queries} == set(fx.queries)
    assert b.queries[0].image == fx.queries[b.queries[0].name].image


def test_oxford105k_appends_distractors_never_positive(tmp_path):
    fx = write_oxford(tmp_path, n_distractors=5)
    b = load_benchmark("oxford105k", tmp_path)
    assert b.database == fx.database + fx.distractors
    first_distractor = len(fx.database)
    assert all((p < first_distractor).all() for p in b.protocol.positives)
    assert b.protocol.score(perfect_ranks(b, b.protocol)).metrics["mAP"] == pytest.approx(1.0)


def test_generated_benchmark_with_another_name_and_no_prefix(tmp_path):
    fx = write_oxford(tmp_path, landmarks=("red", "blue"), query_prefix="", name_prefix="demo_")
    b = read_oxford(tmp_path, name="demo")
    assert b.name == "demo"
    assert [q.name for q in b.queries] == ["blue_1", "blue_2", "red_1", "red_2"]
    assert b.queries[0].image == "demo_blue_000001"
    assert b.database == fx.database


def test_oxford_errors_name_the_file(tmp_path):
    fx = write_oxford(tmp_path)
    with pytest.raises(BenchmarkFormatError, match="image folder"):
        read_oxford(tmp_path, image_dir="missing")
    with pytest.raises(BenchmarkFormatError, match="ground truth folder"):
        read_oxford(tmp_path, gt_dir="missing")

    good = fx.gt_dir / "all_souls_1_good.txt"
    good.write_text(good.read_text() + "not_an_image\n")
    with pytest.raises(BenchmarkFormatError, match=r"all_souls_1_good\.txt.*not_an_image"):
        read_oxford(tmp_path)
    good.write_text("all_souls_000001\n")

    query = fx.gt_dir / "radcliffe_camera_2_query.txt"
    query.write_text("oxc1_radcliffe_camera_000002 1 2 three 4\n")
    with pytest.raises(BenchmarkFormatError, match=r"radcliffe_camera_2_query\.txt.*four numbers"):
        read_oxford(tmp_path)
    query.write_text("oxc1_radcliffe_camera_000002 1 2 3\n")
    with pytest.raises(BenchmarkFormatError, match=r"radcliffe_camera_2_query\.txt"):
        read_oxford(tmp_path)
    query.write_text("oxc1_no_such_image 1 2 3 4\n")
    with pytest.raises(BenchmarkFormatError, match=r"radcliffe_camera_2_query\.txt.*no_such_image"):
        read_oxford(tmp_path)
    query.write_text("oxc1_radcliffe_camera_000002 1 2 3 4\n")

    (fx.gt_dir / "all_souls_2_ok.txt").unlink()
    with pytest.raises(BenchmarkFormatError, match=r"all_souls_2_ok\.txt"):
        read_oxford(tmp_path)


def test_oxford_empty_gt_folder(tmp_path):
    (tmp_path / "gt").mkdir()
    with pytest.raises(BenchmarkFormatError, match=r"no <query>_query\.txt"):
        read_oxford_gt(tmp_path / "gt")


def test_duplicate_image_names_are_an_error(tmp_path):
    fx = write_paris(tmp_path)
    name = fx.database[0]
    (fx.image_dir / "eiffel" / f"{name}.jpg").write_bytes(fx.files[name].read_bytes())
    with pytest.raises(BenchmarkFormatError, match=name):
        read_oxford(tmp_path)


def _delete(fx, *names: str) -> None:
    for name in names:
        fx.files[name].unlink()


def test_oxford_partial_restricts_ground_truth_and_drops_queries(tmp_path, caplog):
    # write_oxford: query k of a landmark is its image k; good = images 1-3, ok = 4-5, junk = 6
    fx = write_oxford(tmp_path)
    _delete(fx, "all_souls_000001", "all_souls_000005", "all_souls_000006")
    _delete(fx, "radcliffe_camera_000003", "radcliffe_camera_000004", "radcliffe_camera_000005")
    (fx.gt_dir / "radcliffe_camera_2_good.txt").write_text("radcliffe_camera_000003\n")
    with caplog.at_level("WARNING"):
        b = read_oxford(tmp_path, partial=True)
    present = [n for n in fx.database if fx.files[n].exists()]
    assert b.database == present and len(present) == 9
    # all_souls_1: its image is gone; radcliffe_camera_2: its only positives (3, 4, 5) are gone
    assert [q.name for q in b.queries] == ["all_souls_2", "radcliffe_camera_1"]
    assert "all_souls_1" in caplog.text and "radcliffe_camera_2" in caplog.text
    index = {n: i for i, n in enumerate(b.database)}

    def ids(*names: str) -> list[int]:
        return sorted(index[n] for n in names)

    assert isinstance(b.protocol, APProtocol)
    positives = [sorted(p.tolist()) for p in b.protocol.positives]
    junk = [sorted(j.tolist()) for j in b.protocol.junk]
    assert positives == [
        ids("all_souls_000002", "all_souls_000003", "all_souls_000004"),
        ids("radcliffe_camera_000001", "radcliffe_camera_000002"),
    ]
    assert junk == [[], ids("radcliffe_camera_000006")]
    assert b.partial == {
        "note": "partial: not comparable with published figures",
        "images": {"present": 9, "gt_present": 6, "gt_missing": 6},
        "queries": {
            "kept": 2,
            "dropped": 2,
            "dropped_why": {
                "all_souls_1": "query image 'all_souls_000001' absent",
                "radcliffe_camera_2": "none of its 3 positives present",
            },
        },
    }


def test_oxford_full_mode_refuses_a_missing_image_by_name(tmp_path):
    fx = write_oxford(tmp_path)
    assert read_oxford(tmp_path).partial is None
    _delete(fx, "all_souls_000005")  # an ok image of both all_souls queries
    with pytest.raises(
        BenchmarkFormatError, match=r"all_souls_1_ok\.txt.*'all_souls_000005'.*partial"
    ):
        read_oxford(tmp_path)
    _delete(fx, "radcliffe_camera_000001")  # a query image
    with pytest.raises(BenchmarkFormatError, match=r"radcliffe_camera_1_query\.txt.*000001"):
        read_oxford(tmp_path)
    with pytest.raises(ValueError, match="partial must be true or false"):
        read_oxford(tmp_path, partial="yes")


def test_oxford_partial_with_no_usable_query_is_an_error(tmp_path):
    fx = write_oxford(tmp_path, landmarks=("all_souls",), queries_per_landmark=1)
    _delete(fx, "all_souls_000001")
    with pytest.raises(BenchmarkFormatError, match="no query"):
        read_oxford(tmp_path, partial=True)


def test_real_paris278_in_partial_mode():
    root = shared("paris6k-278")
    b = read_oxford(root, name="paris6k", partial=True)
    assert len(b.database) == 278
    # 12 of the 55 query images are present, and each has a positive present: triomphe_5
    # (paris_defense_000038) lists itself and paris_defense_000040/43 among its ok images
    assert len(b.queries) == 12 and b.partial["queries"]["dropped"] == 43
    assert "triomphe_5" in [q.name for q in b.queries]
    assert all(len(p) > 0 for p in b.protocol.positives)
    # of the 278 photos, 195 + 52 are positive or junk of some query, 31 neither (its README)
    assert b.partial["images"]["gt_present"] == 247
    with pytest.raises(BenchmarkFormatError, match=r"not in .*partial=true"):
        read_oxford(root, name="paris6k")


# --- Revisited ----------------------------------------------------------------------------------


def test_revisited_reads_gnd_and_images(tmp_path):
    fx = write_revisited(tmp_path)
    b = read_revisited(tmp_path)
    assert b.name == "roxford5k"
    assert b.database == fx.imlist
    assert b.database_files == [fx.image_dir / f"{n}.jpg" for n in fx.imlist]
    assert [q.name for q in b.queries] == fx.qimlist
    assert all(q.path.is_file() for q in b.queries)
    assert b.queries[0].bbox == (1.5, 2.0, 30.0, 22.5)
    assert isinstance(b.protocol, RevisitedProtocol)
    easy, junk = b.protocol.setups["easy"]
    assert easy[0].tolist() == [0, 1]
    assert junk[0].tolist() == [2, 3]  # junk + hard


def test_revisited_partial_restricts_ground_truth_and_drops_queries(tmp_path):
    fx = write_revisited(tmp_path)
    for gone in ("oxford_000000", "oxford_000004", "oxford_000005", "all_souls_000002"):
        (fx.image_dir / f"{gone}.jpg").unlink()
    b = read_revisited(tmp_path, partial=True)
    # query 1's positives (4, 5) are all absent; query 2's image is absent
    assert [q.name for q in b.queries] == ["all_souls_000000"]
    assert b.database == [
        n for n in fx.imlist if n not in ("oxford_000000", "oxford_000004", "oxford_000005")
    ]
    names = lambda indices: [b.database[i] for i in indices]  # noqa: E731
    positives, junk = b.protocol.setups["medium"]
    assert names(positives[0]) == ["oxford_000001", "oxford_000002"]  # easy 1 and hard 2 stay
    assert names(junk[0]) == ["oxford_000003"]
    assert b.partial["queries"] == {
        "kept": 1,
        "dropped": 2,
        "dropped_why": {
            "all_souls_000001": "none of its 2 positives present",
            "all_souls_000002": "query image 'all_souls_000002' absent",
        },
    }
    assert b.partial["note"].startswith("partial: not comparable")
    assert read_revisited(tmp_path).partial is None


def test_real_revisited_paris_on_the_278_photos(caplog):
    root = shared("paris6k-278")
    gnd = shared("revisitop") / "gnd_rparis6k.pkl"
    with caplog.at_level("WARNING"):
        b = read_revisited(root, name="rparis6k", gnd_file=gnd, partial=True)
    assert "; and 53 more, listed in results.json" in caplog.text  # five named, not 58
    full = read_revisited_gnd(gnd)
    assert len(b.queries) == 12 and b.partial["queries"]["dropped"] == 58
    assert set(b.database) <= set(full.imlist) and len(b.database) == 238
    for q, query in enumerate(b.queries):  # the same positives, by name, as far as present
        original = full.qimlist.index(query.name)
        present = set(b.database)
        kept = [b.database[i] for i in b.protocol.setups["medium"][0][q]]
        assert kept == sorted(
            (
                full.imlist[i]
                for i in full.easy[original] + full.hard[original]
                if full.imlist[i] in present
            ),
            key=b.database.index,
        )


def test_revisited_needs_no_image_files(tmp_path):
    fx = write_revisited(tmp_path, name="rparis6k", images=False)
    b = load_benchmark("rparis6k", tmp_path)
    assert b.database == fx.imlist
    assert not any(p.exists() for p in b.database_files)
    gt = read_revisited_gnd(fx.gnd_file)
    assert gt.imlist == fx.imlist and gt.qimlist == fx.qimlist


def test_revisited_with_distractors(tmp_path):
    write_revisited(tmp_path)
    fx = write_ukb(tmp_path / "r1m", n_objects=1, image_dir="jpg/00")
    b = read_revisited(tmp_path, distractor_dirs=["r1m"])
    assert b.database[-4:] == fx.names


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"imlist": ["a"], "qimlist": ["q"]}, "'gnd' must be a list of 1 dicts"),
        ({"imlist": "a", "qimlist": [], "gnd": []}, "'imlist' must be a list"),
        (
            {
                "imlist": ["a"],
                "qimlist": ["q"],
                "gnd": [{"bbx": [0, 0, 1, 1], "easy": [1], "hard": [], "junk": []}],
            },
            r"gnd\['q'\]\['easy'\] must list indices into imlist",
        ),
        (
            {"imlist": ["a"], "qimlist": ["q"], "gnd": [{"easy": [0], "hard": [], "junk": []}]},
            "bbx",
        ),
        ([1, 2], "expected a dict"),
    ],
)
def test_revisited_malformed_gnd(tmp_path, data, message):
    path = tmp_path / "gnd_roxford5k.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(BenchmarkFormatError, match=message) as e:
        read_revisited_gnd(path)
    assert str(path) in str(e.value)


def test_revisited_refuses_pickles_that_run_code(tmp_path):
    path = tmp_path / "gnd_roxford5k.pkl"
    path.write_bytes(pickle.dumps({"imlist": np.array([1])}))
    with pytest.raises(BenchmarkFormatError, match="refusing"):
        read_revisited_gnd(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(BenchmarkFormatError, match="not a revisitop ground-truth pickle"):
        read_revisited_gnd(path)
    with pytest.raises(BenchmarkFormatError, match="not found"):
        read_revisited_gnd(tmp_path / "missing.pkl")


@pytest.mark.parametrize(("name", "n_images"), [("roxford5k", 4993), ("rparis6k", 6322)])
def test_real_revisited_ground_truth(name, n_images):
    gt = read_revisited_gnd(shared(f"revisitop/gnd_{name}.pkl"))
    assert len(gt.qimlist) == 70
    assert len(gt.imlist) == n_images
    assert not set(gt.qimlist) & set(gt.imlist)
    ranks = np.tile(np.arange(n_images), (70, 1))
    scores = gt.protocol.score(ranks)
    assert set(scores.metrics) == {
        f"{s}/{m}" for s in ("easy", "medium", "hard") for m in ("mAP", "mP@1", "mP@5", "mP@10")
    }
    if name == "roxford5k":
        # two Oxford queries have no easy positive: left out of the easy mean
        assert np.isnan(scores.per_query["easy/AP"]).sum() == 2
        assert gt.bboxes[0] == pytest.approx((136.5, 34.1, 648.5, 955.7))


# --- Holidays -----------------------------------------------------------------------------------


def test_holidays_reads_groups_and_queries(tmp_path):
    fx = write_holidays(tmp_path, n_groups=4)
    b = read_holidays(tmp_path)
    assert b.database == fx.names
    assert b.queries_in_database
    assert [q.name for q in b.queries] == fx.queries
    assert all(int(q.name) % 100 == 0 and q.bbox is None for q in b.queries)
    groups = np.array(fx.groups)
    for q, pos, junk in zip(b.queries, b.protocol.positives, b.protocol.junk, strict=True):
        i = b.database.index(q.name)
        assert junk.tolist() == [i]
        assert pos.tolist() == [j for j in np.flatnonzero(groups == groups[i]) if j != i]
    # the query itself ranked first is removed: a perfect list scores 1
    ranks = np.stack(
        [
            np.r_[j, p, np.setdiff1d(np.arange(len(fx.names)), np.r_[j, p])]
            for p, j in zip(b.protocol.positives, b.protocol.junk, strict=True)
        ]
    )
    assert b.protocol.score(ranks).metrics["mAP"] == pytest.approx(1.0)


def test_holidays_images_directly_in_root(tmp_path):
    fx = write_holidays(tmp_path, image_dir=".")
    assert read_holidays(tmp_path).database == fx.names


def test_holidays_rotations(tmp_path):
    fx = write_holidays(tmp_path, rotations={"100001": 90, "100100.jpg": -90, "100200": 0})
    b = read_holidays(tmp_path, rotation_file=fx.rotation_file.name)
    assert b.rotations == {"100001": 90, "100100": 270, "100200": 0}
    fx.rotation_file.write_text("100001 45\n")
    with pytest.raises(BenchmarkFormatError, match=r"rotations\.txt.*degrees"):
        read_holidays(tmp_path, rotation_file="rotations.txt")
    fx.rotation_file.write_text("999999 90\n")
    with pytest.raises(BenchmarkFormatError, match=r"rotations\.txt.*999999"):
        read_holidays(tmp_path, rotation_file="rotations.txt")


def test_holidays_errors(tmp_path):
    fx = write_holidays(tmp_path)
    (fx.image_dir / "12ab34.jpg").write_bytes(b"")
    with pytest.raises(BenchmarkFormatError, match=r"jpg.*12ab34"):
        read_holidays(tmp_path)
    (fx.image_dir / "12ab34.jpg").unlink()
    (fx.image_dir / f"{fx.queries[0]}.jpg").unlink()
    with pytest.raises(BenchmarkFormatError, match="no query image"):
        read_holidays(tmp_path)
    with pytest.raises(BenchmarkFormatError, match="image folder not found"):
        read_holidays(tmp_path / "nothing")


# --- UKB ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_dir", ["full", "."])
def test_ukb_reads_groups(tmp_path, image_dir):
    fx = write_ukb(tmp_path, n_objects=3, image_dir=image_dir)
    b = read_ukb(tmp_path)
    assert b.database == fx.names
    assert [q.name for q in b.queries] == fx.names
    assert b.queries_in_database
    assert isinstance(b.protocol, UKBProtocol)
    assert b.protocol.groups.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # root may be the image folder itself
    assert read_ukb(fx.image_dir).database == fx.names


def test_ukb_errors(tmp_path):
    fx = write_ukb(tmp_path, n_objects=2)
    (fx.image_dir / "ukbench00007.jpg").unlink()
    with pytest.raises(BenchmarkFormatError, match="object 1 has 3 of its 4 images"):
        read_ukb(tmp_path)
    (fx.image_dir / "holiday.jpg").write_bytes(b"")
    with pytest.raises(BenchmarkFormatError, match="'holiday' is not a UKB image name"):
        read_ukb(tmp_path)


def test_real_ukb_sample():
    b = read_ukb(shared("ukbench-1000"))
    assert len(b.database) == len(b.queries) == 1000
    assert len(np.unique(b.protocol.groups)) == 250
    assert b.database[0] == "ukbench00000" and b.database[-1] == "ukbench00999"


# --- registry -----------------------------------------------------------------------------------


def test_registry():
    assert set(BENCHMARKS) >= {
        "oxford5k", "oxford105k", "paris6k", "paris106k", "roxford5k", "rparis6k", "holidays", "ukb",
    }  # fmt: skip
    with pytest.raises(KeyError, match="unknown benchmark 'nope'"):
        load_benchmark("nope", ".")


def test_registry_passes_options(tmp_path):
    fx = write_oxford(tmp_path, n_distractors=2, distractor_dir="elsewhere")
    b = load_benchmark("oxford105k", tmp_path, distractor_dirs=["elsewhere"])
    assert b.database[-2:] == fx.distractors
    with pytest.raises(BenchmarkFormatError, match="flickr100k"):
        load_benchmark("oxford105k", tmp_path)

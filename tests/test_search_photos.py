"""search.py: a folder of photos searched without ground truth, through the same code store,
compression and search as an evaluation; bad input is one line and exit status 2."""

import io
import json
import shutil
from pathlib import Path

import pytest
from helpers.images import write_jpeg

import ncl.eval.photos
from ncl.data.images import folder_image_set
from ncl.jobs.search import run_search, search_or_exit

MODEL = ["model=mobilenet_v2", "model.pretrained=false", "gallery=true"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for i in range(8):
        write_jpeg(folder / f"p{i}.jpg", size=(48 + 3 * i, 40), seed=i)
    return folder


def test_each_query_finds_its_own_copy_first_and_a_gallery_shows_it(
    cfg_search, photos, tmp_path, capsys
):
    queries = tmp_path / "queries"
    queries.mkdir()
    shutil.copy(photos / "p3.jpg", queries / "a.jpg")
    shutil.copy(photos / "p6.jpg", queries / "b.jpg")
    (queries / "c.jpg").write_bytes(b"not a photo")  # reported and skipped, the others answered
    cfg = cfg_search([*MODEL, f"images.root={photos}", f"query={queries}", "k=4"])
    found = run_search(cfg)
    assert [r.name for r in found.results] == ["a", "b"] and found.unreadable == ["c"]
    assert [r.hits[0].name for r in found.results] == ["p3", "p6"]
    for result in found.results:
        distances = [h.distance for h in result.hits]
        assert len(result.hits) == 4 and distances == sorted(distances)
        assert distances[0] < 1e-6 < distances[1]
        assert [h.path for h in result.hits] == [photos / f"{h.name}.jpg" for h in result.hits]
    text = capsys.readouterr().out.splitlines()
    assert text[0] == str(queries / "a.jpg") and text[1].split()[2] == str(photos / "p3.jpg")
    page = (tmp_path / "out" / "gallery.html").read_text()
    assert page.count("border:4px solid #777777") == 8  # 2 queries x 4 results, no ground truth
    assert "positive" not in page
    recorded = (tmp_path / "out" / "results.json").read_text()
    run = json.loads(recorded)
    assert run["rows"][0]["top"][0][0] == folder_image_set("x", photos).names.index("p3")
    # the configuration is recorded resolved, so the gallery's thumbnails go to the data folder
    # (an unresolved "${paths.root_dir}/data" made a folder of that name in the working directory)
    assert "${" not in recorded
    assert list((tmp_path / "data" / "thumbnails").rglob("*.jpg"))


def test_json_output_and_pca_fitted_on_the_folder(cfg_search, photos, capsys):
    query = photos / "p1.jpg"
    pca = ["compression=pca", "compression.dim=[4]", "gallery=false"]
    cfg = cfg_search(
        [*MODEL, f"images.root={photos}", f"query={query}", "output=json", "k=3", *pca]
    )
    found = run_search(cfg)
    printed = json.loads(capsys.readouterr().out)
    assert printed["dim"] == found.dim == 4
    assert printed["queries"][0]["results"][0]["path"] == str(query)


def test_the_searched_folder_as_its_own_query_is_not_coded_again(cfg_search, photos, tmp_path):
    cfg = cfg_search([*MODEL, f"images.root={photos}/", f"query={photos}", "gallery=false"])
    found = run_search(cfg)
    assert [r.hits[0].name for r in found.results] == [f"p{i}" for i in range(8)]
    code_sets = [p.name for p in (tmp_path / "data" / "codes").glob("mobilenet_v2*/*")]
    assert len(code_sets) == 1 and not code_sets[0].startswith("query-")


def test_a_trained_index_learns_on_the_searched_folder(cfg_search, photos):
    index = ["search=ivf_flat", "search.index.nlist=2", "search.index.nprobe=2", "gallery=false"]
    cfg = cfg_search([*MODEL, f"images.root={photos}", f"query={photos / 'p5.jpg'}", *index])
    found = run_search(cfg)
    assert found.results[0].hits[0].name == "p5"  # nprobe = nlist: exact
    assert found.index["name"] == "ivf_flat" and found.index["train_on"].startswith("database")


def test_a_refined_product_quantiser_ranks_the_query_copy_first_at_distance_zero(
    cfg_search, photos
):
    """IVF-PQ's approximate order re-ranked by the exact distances of the folder's codes, read
    from its code set on disk: the query's own copy first, at its true distance."""
    pq = ["search=ivf_pq", "search.index.nlist=2", "search.index.nprobe=2", "search.index.m=8"]
    options = [*pq, "search.index.nbits=2", "search.index.refine=4", "k=3", "gallery=false"]
    cfg = cfg_search([*MODEL, f"images.root={photos}", f"query={photos / 'p2.jpg'}", *options])
    found = run_search(cfg)
    hits = found.results[0].hits
    assert hits[0].name == "p2" and hits[0].distance < 1e-6
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert found.index["refine"] == 4


def test_a_session_answers_each_line_of_stdin_with_the_folder_prepared_once(
    cfg_search, photos, tmp_path, capsys, monkeypatch
):
    prepared = []
    fit_codes = ncl.eval.photos.fit_codes
    monkeypatch.setattr("ncl.eval.photos.fit_codes", lambda *a: prepared.append(1) or fit_codes(*a))
    lines = [photos / "p2.jpg", tmp_path / "nowhere.jpg", "", photos / "p7.jpg"]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
    cfg = cfg_search([*MODEL, f"images.root={photos}", "query=-", "output=json", "k=2"])
    with pytest.raises(SystemExit) as exit_:  # one line was not an image: status 2 at the end
        search_or_exit(cfg)
    assert exit_.value.code == 2 and len(prepared) == 1
    out, err = capsys.readouterr()
    answers = [json.loads(line) for line in out.splitlines()]  # one JSON object per line
    assert [a["queries"][0]["results"][0]["path"] for a in answers] == [
        str(photos / "p2.jpg"),
        str(photos / "p7.jpg"),
    ]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {tmp_path / 'nowhere.jpg'}: no such image or folder",
        "error: 1 line(s) of standard input not answered, each said why above",
    ]
    run = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [q["path"] for q in run["query_images"]] == [str(lines[0]), str(lines[3])]
    assert (tmp_path / "out" / "gallery.html").is_file()


def test_a_session_that_answers_nothing_says_so(cfg_search, photos, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n   \n"))
    cfg = cfg_search([*MODEL, f"images.root={photos}", "query=-", "gallery=false"])
    with pytest.raises(SystemExit) as exit_:
        search_or_exit(cfg)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith("standard input named no readable image")


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("not_an_image", "not an image file"),
        ("corrupt_image", "broken.jpg']"),
        ("empty_folder", "no images"),
        ("missing_query", "no such image or folder"),
        ("unreadable_folder", "cannot read the folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    cfg_search, photos, tmp_path, capsys, monkeypatch, case, says
):
    root, query = photos, photos / "p0.jpg"
    if case == "not_an_image":
        query = tmp_path / "notes.txt"
        query.write_text("hello")
    elif case == "corrupt_image":
        query = tmp_path / "broken.jpg"
        query.write_bytes(b"\xff\xd8 not really a jpeg")
    elif case == "empty_folder":
        root = tmp_path / "empty"
        root.mkdir()
    elif case == "missing_query":
        query = tmp_path / "nowhere.jpg"
    else:  # as root, chmod cannot deny reading: the operating system's answer, simulated

        def denied(path):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr("ncl.data.images.os.scandir", denied)
    cfg = cfg_search([*MODEL, f"images.root={root}", f"query={query}", "gallery=false"])
    with pytest.raises(SystemExit) as exit_:
        search_or_exit(cfg)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and says in err

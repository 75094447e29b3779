"""The index kinds of `search=`: exact where they must be, trained on separate codes only,
cached and remade as their inputs change, and fed a chunk at a time (float16 too)."""

from __future__ import annotations

import json
import re

import faiss
import numpy as np
import pytest
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford

from ncl.codes.store import read_codes, write_codes
from ncl.jobs.evaluate import run_evaluation
from ncl.search.build import DatabaseKey, built_index, make_index, reserve_lists
from ncl.search.flat import rank
from ncl.search.index import HNSW, IVFPQ, IVFFlat
from ncl.search.refine import refined
from ncl.search.rows import CodeRows, row_chunks
from ncl.search.search import Search


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


DB, QUERIES, TRAIN = unit(300, 16, 0), unit(12, 16, 1), unit(400, 16, 2)
OWNER = np.arange(len(DB))


@pytest.mark.parametrize(
    "kind",
    [
        IVFFlat(nlist=8, nprobe=8),  # every list probed: exact
        HNSW(m=16, ef_construction=200, ef_search=600),  # searched wider than the database
    ],
)
def test_an_index_probed_everywhere_ranks_as_the_exact_search(kind):
    exact = Search().rank(DB, OWNER, QUERIES, 20)
    found = Search(index=kind).rank(DB, OWNER, QUERIES, 20, train=TRAIN)
    np.testing.assert_array_equal(found.ranks, exact.ranks)
    assert found.index["name"] == kind.name and found.index["bytes"] > 0


def test_ivf_pq_probing_every_list_keeps_the_exact_top_ten_in_its_top_hundred():
    db = unit(3000, 16, 3)
    owner = np.arange(len(db))
    exact = Search().rank(db, owner, QUERIES, 10).ranks
    found = Search(index=IVFPQ(nlist=4, nprobe=4, m=8, nbits=6, opq=True)).rank(
        db, owner, QUERIES, 100, train=TRAIN
    )
    recall = np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found.ranks, strict=True)])
    assert recall >= 0.95
    # 6 bytes a code against 64 raw (the PQ codebooks and OPQ matrix besides)
    assert found.index["bytes"] < db.nbytes / 3
    assert found.index["opq"] is True


def test_fast_scan_codes_are_cached_memory_mapped_and_keep_the_exact_top_ten(tmp_path):
    """4-bit codes in faiss's fast-scan layout: built once beside the codes, read back from the
    memory map, every list probed keeps the exact top 10 in the top 100, at m/2 bytes a code."""
    db = unit(3000, 16, 3)
    owner = np.arange(len(db))
    exact = Search().rank(db, owner, QUERIES, 10).ranks
    kind = IVFPQ(nlist=4, nprobe=4, m=16, nbits=4, fast_scan=True)
    assert kind.factory(16) == "IVF4,PQ16x4fsr" and not kind.gpu
    key = DatabaseKey(tmp_path, {"codes": ["set", "key-1", "1:1"]})
    built = Search(index=kind).rank(db, owner, QUERIES, 100, key=key, train=TRAIN)
    loaded = Search(index=kind).rank(db, owner, QUERIES, 100, key=key, train=TRAIN)
    assert not built.index["reused"] and loaded.index["reused"]
    np.testing.assert_array_equal(loaded.ranks, built.ranks)
    recall = np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, built.ranks, strict=True)])
    assert recall >= 0.95
    assert built.index["fast_scan"] is True and "fast_scan=True" in built.index["label"]
    assert built.index["table_bytes"] == 4 * 16 * 16 * 4  # nlist x m x 16 entries, float32
    assert built.index["bytes"] < db.nbytes / 3  # 8 bytes a code and its 8-byte id, against 64
    [path] = tmp_path.glob("index-ivf_pq-*/index.faiss")
    assert type(faiss.read_index(str(path))).__name__ == "IndexIVFPQFastScan"


def test_an_index_faiss_has_no_gpu_kind_of_searches_on_the_cpu(monkeypatch, caplog):
    """With a GPU asked for, HNSW and fast-scan codes stay on the CPU rather than fail in
    faiss's GPU cloner, and say so; the other kinds go to the GPU."""
    import ncl.search.search as search

    sent = []
    search.say_cpu_only.cache_clear()
    monkeypatch.setattr(search, "wants_gpu", lambda use_gpu: True)
    monkeypatch.setattr(search, "on_gpus", lambda index: sent.append(index) or index)
    fast = IVFPQ(nlist=4, nprobe=4, m=8, nbits=4, fast_scan=True)
    for kind in (fast, HNSW(m=8)):
        found = Search(index=kind, gpu=True).rank(DB, OWNER, QUERIES, 10, train=TRAIN)
        assert found.device == "cpu" and sent == []
        Search(index=kind, gpu=True).rank(DB, OWNER, QUERIES, 10, train=TRAIN)  # said once
        assert caplog.text.count(f"no GPU {kind.label()} index, searching on the CPU") == 1
    found = Search(index=IVFPQ(nlist=4, nprobe=4, m=8), gpu=True).rank(
        DB, OWNER, QUERIES, 10, train=TRAIN
    )
    assert found.device == "gpu" and len(sent) == 1


def test_refining_a_coarse_product_quantiser_over_every_code_ranks_exactly():
    """A 2-byte PQ misorders its neighbours; re-ranking a shortlist as long as the database by
    the exact distances of the codes (read from `CodeRows`, float16 parts) restores the order."""
    rows = CodeRows([DB[:100].astype(np.float16), DB[100:].astype(np.float16)], l2, 16, chunk=64)
    exact = Search().rank(np.asarray(rows), OWNER, QUERIES, 20).ranks
    coarse = IVFPQ(nlist=4, nprobe=4, m=2, nbits=4)
    pq_order = Search(index=coarse).rank(rows, OWNER, QUERIES, 20, train=TRAIN)
    assert not np.array_equal(pq_order.ranks, exact) and pq_order.index["refine"] is None
    refine = IVFPQ(nlist=4, nprobe=4, m=2, nbits=4, refine=len(DB) // 20)
    found = Search(index=refine).rank(rows, OWNER, QUERIES, 20, train=TRAIN)
    np.testing.assert_array_equal(found.ranks, exact)
    assert found.index["refine"] == len(DB) // 20 and found.ranks.shape == (len(QUERIES), 20)


def test_refining_reads_a_compressed_copy_made_once_beside_the_codes(tmp_path, monkeypatch):
    """With a cache key the shortlists are read from the compressed database written once
    (`compressed-<digest>/codes.npy`), not compressed again query after query; same ranks."""
    rows = CodeRows([DB[:100].astype(np.float16), DB[100:].astype(np.float16)], l2, 16, chunk=64)
    kind = IVFPQ(nlist=4, nprobe=4, m=2, nbits=4, refine=3)
    plain = Search(index=kind).rank(rows, OWNER, QUERIES, 20, train=TRAIN).ranks
    key = DatabaseKey(tmp_path, {"codes": ["set", "key-1", "1:1"]})
    takes = []
    monkeypatch.setattr(CodeRows, "take", lambda self, r: takes.append(len(r)) or l2(DB[r]))
    cached = Search(index=kind).rank(rows, OWNER, QUERIES, 20, key=key, train=TRAIN)
    np.testing.assert_array_equal(cached.ranks, plain)
    assert takes == []  # every shortlisted code came from the compressed copy
    [copy] = tmp_path.glob("compressed-*/codes.npy")
    np.testing.assert_allclose(np.load(copy), np.asarray(rows))
    made = copy.stat().st_mtime_ns
    Search(index=kind).rank(rows, OWNER, QUERIES, 20, key=key, train=TRAIN)
    assert copy.stat().st_mtime_ns == made and len(list(tmp_path.glob("compressed-*"))) == 1


def test_refined_keeps_the_nearest_of_each_shortlist_and_pads_the_short_ones():
    shortlist = np.array([[5, 1, 9, -1], [-1, -1, -1, -1], [7, 3, -1, -1]])
    queries = DB[[9, 0, 3]]  # each query is a database code: its own row comes first if listed
    found = refined(DB, queries, shortlist, 3, batch_values=16 * 4)  # one query a batch
    distances = [float(np.sum((DB[r] - queries[0]) ** 2)) for r in found[0]]
    assert found[0, 0] == 9 and sorted(found[0]) == [1, 5, 9] and distances == sorted(distances)
    assert found[1].tolist() == [-1, -1, -1]
    assert found[2, 0] == 3 and found[2].tolist()[1:] == [7, -1]
    np.testing.assert_array_equal(refined(DB, queries, shortlist, 3), found)  # one batch
    with pytest.raises(ValueError, match="names row 300 of a database of 300 codes"):
        refined(DB, queries, shortlist + 291, 3)


def test_flat_search_ranks_as_the_plain_exact_rank():
    """search=flat is today's search: the same ranks as `rank`, whatever the input form."""
    rows = CodeRows([DB[:100], DB[100:]], l2, 16, chunk=64)
    found = Search().rank(rows, OWNER, QUERIES, None)
    np.testing.assert_array_equal(found.ranks, rank(DB, QUERIES).ranks)
    assert found.index == {"name": "flat", "label": "flat", "bytes": DB.nbytes}


def test_index_parameters_are_checked():
    with pytest.raises(ValueError, match=r"nprobe must be <= search\.index\.nlist"):
        IVFFlat(nlist=4, nprobe=8)
    with pytest.raises(ValueError, match="train_on must be an image set or 'database'"):
        IVFFlat(train_on="benchmark")
    with pytest.raises(ValueError, match="m=5 must divide the codes' dimension"):
        IVFPQ(m=5).factory(16)
    with pytest.raises(ValueError, match="ef_search must be a positive integer"):
        HNSW(ef_search=0)
    with pytest.raises(ValueError, match="refine must be a positive integer"):
        IVFPQ(refine=0)
    with pytest.raises(ValueError, match=r"fast_scan needs search\.index\.nbits=4"):
        IVFPQ(nbits=8, fast_scan=True)
    with pytest.raises(ValueError, match="fast_scan must be true or false"):
        IVFPQ(nbits=4, fast_scan="yes")


def test_ivf_pq_settings_come_in_the_order_of_ivf_flat_then_its_own():
    """refine, a setting only IVF-PQ has, comes last, not first (a ClassVar of the same name
    on the base class once put it first)."""
    kind = IVFPQ(1024, 16, None, 64, 4, False, True, 2)
    assert (kind.nlist, kind.nprobe, kind.m, kind.nbits, kind.fast_scan, kind.refine) == (
        1024,
        16,
        64,
        4,
        True,
        2,
    )
    assert IVFFlat().refine is None and HNSW().refine is None


def test_a_trained_index_needs_training_codes():
    with pytest.raises(ValueError, match="needs codes to train on"):
        Search(index=IVFFlat(nlist=4, nprobe=1)).rank(DB, OWNER, QUERIES, 5)


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        (IVFFlat(nlist=512, nprobe=1), "nlist=512 lists"),
        (IVFPQ(nlist=4, nprobe=1, m=4), "nlist=4 lists and 2^nbits=256 centroids a sub-vector"),
    ],
)
def test_too_few_training_codes_for_the_centroids_is_said_plainly(kind, settings):
    """faiss's own error is an assertion in Clustering.cpp; the user needs the setting."""
    with pytest.raises(
        ValueError, match=rf"at least \d+ codes to train on .*for {re.escape(settings)}\), got 200"
    ):
        Search(index=kind).rank(DB, OWNER, QUERIES, 5, train=TRAIN[:200])


def test_the_index_is_cached_reused_and_remade_when_its_inputs_change(tmp_path):
    kind = IVFFlat(nlist=8, nprobe=2)
    key = DatabaseKey(tmp_path, {"codes": ["set", "key-1", "1:1"]})
    _, first = built_index(kind, DB, TRAIN, key, "train-1")
    assert first["reused"] is False and (tmp_path / first["path"]).is_dir()
    index, again = built_index(kind, DB, TRAIN, key, "train-1")
    assert again["reused"] is True and again["path"] == first["path"]
    assert index.ntotal == len(DB)
    # a sweep over nprobe (search time) reuses it; new codes, training codes or nlist remake it
    assert built_index(IVFFlat(nlist=8, nprobe=8), DB, TRAIN, key, "train-1")[1]["reused"]
    changed = DatabaseKey(tmp_path, {"codes": ["set", "key-2", "1:2"]})
    assert not built_index(kind, DB, TRAIN, changed, "train-1")[1]["reused"]
    assert not built_index(kind, DB, TRAIN, key, "train-2")[1]["reused"]
    remade = built_index(IVFFlat(nlist=4, nprobe=2), DB, TRAIN, key, "train-1")[1]
    assert not remade["reused"] and remade["path"] != first["path"]


def test_float16_codes_go_in_a_chunk_at_a_time_without_a_float32_copy(tmp_path):
    """A float16 code set, memory-mapped: each chunk the index gets is float32 and chunk-sized,
    and the index holds what the whole set in float32 would have given."""
    stored = write_codes(tmp_path / "set", [f"i{i}" for i in range(len(DB))], DB.astype("float16"))
    codes = read_codes(stored.path).codes
    assert isinstance(codes, np.memmap) and codes.dtype == np.float16
    rows = CodeRows([codes], l2, 16, chunk=64)
    chunks = list(row_chunks(rows))
    assert [c.shape for c in chunks] == [(64, 16)] * 4 + [(44, 16)]
    assert all(c.dtype == np.float32 and c.flags.c_contiguous for c in chunks)
    index = Search(index=IVFFlat(nlist=8, nprobe=8)).rank(rows, OWNER, QUERIES, 10, train=TRAIN)
    np.testing.assert_array_equal(index.ranks, rank(l2(codes), QUERIES, 10).ranks)


def test_a_loaded_index_is_memory_mapped_and_searches_alike(tmp_path):
    key = DatabaseKey(tmp_path, {"codes": ["a"]})
    built, _ = built_index(IVFFlat(nlist=8, nprobe=8), DB, TRAIN, key, "t")
    loaded, info = built_index(IVFFlat(nlist=8, nprobe=8), DB, TRAIN, key, "t")
    assert info["reused"]
    for index in (built, loaded):
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", 8)
    np.testing.assert_array_equal(built.search(QUERIES, 5)[1], loaded.search(QUERIES, 5)[1])


@pytest.fixture(scope="module")
def oxford(tmp_path_factory):
    return write_oxford(tmp_path_factory.mktemp("oxford5k"), images_per_landmark=6, n_other=4)


def test_training_on_the_database_is_refused_unless_asked_and_then_recorded(
    oxford, cfg_evaluate, tmp_path
):
    index = ["search=ivf_flat", "search.index.nlist=2", "search.index.nprobe=2"]
    cfg = cfg_evaluate(oxford_overrides(oxford.root, *index, "search.index.train_on=null"))
    with pytest.raises(ValueError, match=r"search\.index\.train_on=database"):
        run_evaluation(cfg)
    flat = run_evaluation(cfg_evaluate(oxford_overrides(oxford.root)))
    cfg = cfg_evaluate(oxford_overrides(oxford.root, *index, "search.index.train_on=database"))
    assert run_evaluation(cfg) == pytest.approx(flat)  # every list probed: exact
    row = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]
    assert row["index"]["train_on"] == "database (the benchmark itself)"
    assert row["index"]["name"] == "ivf_flat" and row["index"]["nlist"] == 2
    assert row["index"]["bytes"] > 0 and row["seconds"]["search"] >= 0


def test_flat_search_of_float16_rows_makes_no_float32_copy_of_the_set(tmp_path):
    """The exact index is filled a chunk at a time: numpy never holds the whole set as float32
    (the index is the one float32 copy; faiss's memory is not numpy's), and it ranks alike."""
    import tracemalloc

    db = unit(20_000, 64, 4)
    stored = write_codes(tmp_path / "set", [f"i{i}" for i in range(len(db))], db.astype("float16"))
    codes = read_codes(stored.path).codes
    rows = CodeRows([codes], l2, 64, chunk=1000)
    queries = unit(5, 64, 5)
    tracemalloc.start()
    found = Search().rank(rows, np.arange(len(db)), queries, 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < len(db) * 64 * 4 / 4  # a float32 copy of the set: 5.1 MB; a chunk: 0.26 MB
    np.testing.assert_array_equal(found.ranks, rank(l2(codes), queries, 10).ranks)


def test_hnsw_takes_the_whole_set_in_one_add_the_other_kinds_a_chunk_at_a_time(monkeypatch):
    """faiss's HNSW graph built over several add calls is far worse (10-recall@100 0.50 rather
    than 0.99 at 1M clustered codes in 64k-row adds, docs/benchmarks.md), so HNSW gets every
    row in one call; the other kinds stream a chunk at a time."""
    sizes: dict[str, list[int]] = {}
    make = faiss.index_factory

    def recording(dim, factory, metric):
        index = make(dim, factory, metric)
        add = index.add

        def counted(x):
            sizes.setdefault(factory, []).append(len(x))
            add(x)

        index.add = counted
        return index

    monkeypatch.setattr(faiss, "index_factory", recording)
    rows = CodeRows([DB[:100], DB[100:]], l2, 16, chunk=64)
    assert make_index(HNSW(m=8), rows, None).ntotal == len(DB)
    assert make_index(IVFFlat(nlist=4, nprobe=4), rows, TRAIN).ntotal == len(DB)
    assert sizes == {"HNSW8": [300], "IVF4,Flat": [64, 64, 64, 64, 44]}


def test_an_ivf_pq_build_leaves_its_search_table_to_the_first_search():
    """The precomputed table (nlist x m x 256 floats) is a search structure: no build holds it
    beside the chunks being added; tuning for the search makes it; rankings are faiss's own."""
    rng = np.random.default_rng(0)
    train = rng.standard_normal((3000, 16), dtype=np.float32)
    database = rng.standard_normal((5000, 16), dtype=np.float32)
    kind = IVFPQ(nlist=8, nprobe=4, m=4)
    built = make_index(kind, CodeRows([database], lambda x: x, 16, chunk=1000), train)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(built))
    assert ivf.precomputed_table.size() == 0
    kind.tune(built)
    assert ivf.precomputed_table.size() == 8 * 4 * 256
    assert kind.table_bytes(built) == 8 * 4 * 256 * 4  # float32, what a search holds beside it
    plain = faiss.index_factory(16, kind.factory(16))  # faiss's default: the table at training
    plain.train(train)
    plain.add(database)
    kind.tune(plain)
    np.testing.assert_array_equal(
        built.search(database[:20], 10)[1], plain.search(database[:20], 10)[1]
    )
    # the lists, given their exact room before the adds, hold what faiss's own adds put there
    lists = faiss.extract_index_ivf(plain).invlists
    for list_no in range(8):
        assert ivf.invlists.list_size(list_no) == lists.list_size(list_no) > 0
        np.testing.assert_array_equal(
            faiss.rev_swig_ptr(ivf.invlists.get_ids(list_no), ivf.invlists.list_size(list_no)),
            faiss.rev_swig_ptr(lists.get_ids(list_no), lists.list_size(list_no)),
        )


def test_several_gpus_get_the_index_sharded_one_gpu_a_copy(monkeypatch):
    """The wiring faiss's GPU cloners get (run for real by tests/test_gpu.py on a GPU): with
    several GPUs the index is split over all of them (`shard=True`), with one it is copied."""
    import types

    from ncl.search import flat

    calls = []
    monkeypatch.setattr(
        faiss, "GpuMultipleClonerOptions", lambda: types.SimpleNamespace(shard=False), raising=False
    )
    monkeypatch.setattr(
        faiss,
        "index_cpu_to_all_gpus",
        lambda index, options: calls.append(("all", options.shard)) or index,
    )
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: "resources", raising=False)
    monkeypatch.setattr(
        faiss,
        "index_cpu_to_gpu",
        lambda res, device, index: calls.append((res, device)) or index,
        raising=False,  # faiss-cpu has no single-GPU cloner
    )
    index = faiss.IndexFlatL2(16)
    for gpus in (4, 1):
        monkeypatch.setattr(faiss, "get_num_gpus", lambda gpus=gpus: gpus)
        assert flat.on_gpus(index) is index
    assert calls == [("all", True), ("resources", 0)]


def test_only_array_lists_get_room_reserved_fast_scan_blocks_are_left_to_faiss():
    """Reserving costs a pass of the coarse quantiser over the database: made for 8-bit lists,
    skipped for fast-scan block lists, whose room faiss does not keep."""
    read = []
    rows = CodeRows([DB], lambda x: read.append(len(x)) or x, 16, chunk=100)
    for kind, passes in (
        (IVFPQ(nlist=4, nprobe=4, m=4), 1),
        (IVFPQ(nlist=4, nprobe=4, m=4, nbits=4, fast_scan=True), 0),
    ):
        index = faiss.index_factory(16, kind.factory(16))
        index.train(TRAIN)
        read.clear()
        reserve_lists(index, rows)
        assert read == [100] * 3 * passes

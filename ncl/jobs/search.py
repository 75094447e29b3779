"""`search.py` behind its Hydra entry point: a folder of photos indexed, queries answered."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig, OmegaConf

from ncl.atomic import write_json_atomically
from ncl.cache import digest
from ncl.codes.store import slug
from ncl.data.images import ImageSet, image_set_at
from ncl.eval.compression import Compression
from ncl.eval.photos import PhotoIndex, PhotoSearch, as_run, merged
from ncl.jobs.config import as_list, build
from ncl.jobs.parts import check_options, code_source
from ncl.report.gallery import write_gallery
from ncl.rerank import Reranking
from ncl.search.search import Search

log = logging.getLogger(__name__)

OUTPUTS = ("text", "json")
STDIN = "-"  # query=-: a stream of queries, one per line of standard input


class SearchInputError(ValueError):
    """What search.py was asked cannot be done; one line for the user, exit status 2."""


# bad input (unreadable images and code sets are ValueErrors): one line naming the file and the
# problem, exit status 2
INPUT_ERRORS = (FileNotFoundError, NotADirectoryError, PermissionError, ValueError)


def search_or_exit(cfg: DictConfig) -> PhotoSearch:
    """`run_search`, bad input answered with one line on stderr and exit status 2."""
    try:
        return run_search(cfg)
    except INPUT_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def set_name(path: Path, prefix: str = "") -> str:
    """A code-store name for a folder or file: its name and a digest of where it is, so two
    folders both called `photos` never share codes."""
    return f"{prefix}{slug(path.name)}-{digest(str(path.resolve()), 8)}"


def run_search(cfg: DictConfig) -> PhotoSearch:
    if cfg.output not in OUTPUTS:
        raise SearchInputError(f"output must be one of {', '.join(OUTPUTS)}, got {cfg.output!r}")
    if isinstance(cfg.k, bool) or not isinstance(cfg.k, int) or cfg.k < 1:
        raise SearchInputError(f"k must be a positive integer, got {cfg.k!r}")
    check_options(cfg)
    root = Path(cfg.images.root).expanduser()
    database = image_set_at(root, cfg.images.name or set_name(root))
    if not root.is_dir():
        raise SearchInputError(f"{root}: images.root must be a folder of photos")
    stream = str(cfg.query) == STDIN
    # bad input before any coding
    queries = None if stream else query_images(str(cfg.query), root, database)
    cfg = OmegaConf.merge(cfg, {"taps": as_list(cfg.taps)[:1]})
    compression: Compression = build(cfg.compression)
    search: Search = build(cfg.search)
    rerank: Reranking = build(cfg.rerank)
    source = code_source(cfg)
    index = PhotoIndex(database, source, compression, search, rerank)
    if queries is None:
        found, failed = answer_stream(index, root, cfg.k, cfg.output, sys.stdin)
    else:
        found, failed = index.search(queries, k=cfg.k), 0
        if found.unreadable:
            log.warning("unreadable query images skipped: %s", found.unreadable)
        print(as_json(found) if cfg.output == "json" else as_text(found))
    run = {
        **as_run(found, source.name, rerank.record()),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(output_dir / "results.json", run, indent=1)
    if cfg.gallery:
        log.info("gallery: %s", write_gallery(output_dir))
    if failed:
        raise SearchInputError(
            f"{failed} line(s) of standard input not answered, each said why above"
        )
    return found


def query_images(query: str, root: Path, database: ImageSet) -> ImageSet:
    """The image set of a query given as an image file or a folder of them; the searched folder
    itself (`root`) is the database's set, whose codes are already made."""
    path = Path(query).expanduser()
    if path.resolve() == root.resolve():
        return database
    return image_set_at(path, set_name(path, "query-"))


def answer_stream(
    index: PhotoIndex, root: Path, k: int, output: str, lines: TextIO
) -> tuple[PhotoSearch, int]:
    """Answer each line of `lines` (an image file or a folder of them) as it comes, with the
    folder prepared once: the answer printed at once (text, or one JSON object per line); a bad
    line gets its one error line on stderr and the stream goes on. Returns what was answered,
    as one search, and how many lines were not."""
    answered: list[PhotoSearch] = []
    failed = 0
    interactive = lines.isatty()
    while True:
        if interactive:
            print("query> ", end="", file=sys.stderr, flush=True)
        line = lines.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            found = index.search(query_images(line.strip(), root, index.database), k=k)
        except INPUT_ERRORS as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        for name in found.unreadable:
            print(f"error: {name}: not a readable image, skipped", file=sys.stderr, flush=True)
        print(as_json(found, indent=None) if output == "json" else as_text(found), flush=True)
        answered.append(found)
    if not answered:
        raise SearchInputError("no query was answered: standard input named no readable image")
    return merged(answered), failed


def as_text(found: PhotoSearch) -> str:
    lines = []
    for result in found.results:
        lines.append(str(result.path))
        lines += [f"{i:4d}  {h.distance:.4f}  {h.path}" for i, h in enumerate(result.hits, 1)]
    return "\n".join(lines)


def as_json(found: PhotoSearch, indent: int | None = 1) -> str:
    return json.dumps(
        {
            "tap": found.tap,
            "dim": found.dim,
            "queries": [
                {
                    "query": str(r.path),
                    "results": [{"path": str(h.path), "distance": h.distance} for h in r.hits],
                }
                for r in found.results
            ],
            "unreadable_queries": found.unreadable,
        },
        indent=indent,
    )

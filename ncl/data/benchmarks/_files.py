"""File-system helpers shared by the benchmark readers, each failing with a `BenchmarkFormatError`
that names the path, so a user with a misplaced download learns which file to fix."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ncl.data.benchmarks.base import BenchmarkFormatError
from ncl.io import paths


def require_dir(path: Path, what: str) -> Path:
    return paths.require_dir(path, what, BenchmarkFormatError)


def require_file(path: Path, what: str) -> Path:
    return paths.require_file(path, what, BenchmarkFormatError)


def read_lines(path: Path, what: str) -> list[str]:
    """Non-blank lines, stripped; the official lists end with a newline and some with blank lines."""
    require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkFormatError(f"{path}: cannot read {what}: {e}") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def list_jpegs(folder: Path, *, recursive: bool) -> dict[str, Path]:
    """Image name (file stem) -> path for every JPEG in `folder`, sorted by name.

    Names must be unique: the ground truth refers to images by name alone, so two files
    with one name (in two subfolders) would make it ambiguous.
    """
    files = folder.rglob("*") if recursive else folder.iterdir()
    found: dict[str, Path] = {}
    for path in files:
        if not (is_jpeg(path) and path.is_file()):
            continue
        if path.stem in found:
            raise BenchmarkFormatError(
                f"{path}: image name {path.stem!r} also at {found[path.stem]}"
            )
        found[path.stem] = path
    return dict(sorted(found.items()))


def image_folder(root: Path, image_dir: str | Path, what: str) -> Path:
    """`root/image_dir` if it exists, else `root` itself when it holds the images directly.

    Users unpack UKB and Holidays in different ways (`full/`, `jpg/`, or flat); accepting the
    image folder itself as root saves them a config override.
    """
    folder = root / image_dir
    if folder.is_dir():
        return folder
    if root.is_dir() and any(is_jpeg(p) for p in root.iterdir()):
        return root
    raise BenchmarkFormatError(
        f"{folder}: {what} image folder not found (nor images directly in {root})"
    )


def merge_distractors(
    database: dict[str, Path], root: Path, distractor_dirs: Iterable[str | Path]
) -> dict[str, Path]:
    """`database` followed by every JPEG found under the distractor folders (relative to root).

    Distractors come after the benchmark images so the ground-truth indices stay valid; they
    are never positive. A distractor named like a benchmark image is an error.
    """
    merged = dict(database)
    for d in distractor_dirs:
        folder = require_dir(root / d, "distractor image")
        for name, path in list_jpegs(folder, recursive=True).items():
            if name in merged:
                raise BenchmarkFormatError(
                    f"{path}: distractor name {name!r} already used by {merged[name]}"
                )
            merged[name] = path
    return merged


def image_names(path: Path, what: str) -> list[str]:
    """Image names without extension from an image folder or a text file of names, one a line.

    The text-file form is how Holidays ships its list (`holidays_images.dat`, names with
    `.jpg`); it lets ranked lists be scored without the images.
    """
    if path.is_dir():
        return list(list_jpegs(path, recursive=False))
    return [Path(line).stem if is_jpeg(Path(line)) else line for line in read_lines(path, what)]

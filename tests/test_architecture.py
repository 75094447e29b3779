"""The package order of docs/architecture.md holds: imports point down (or sideways without a
cycle), and only the jobs layer reads a Hydra config."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

NCL = Path(__file__).resolve().parents[1] / "ncl"

# bottom up; a package may import its own layer (without a cycle) and the layers below
LAYERS = [
    {"atomic", "cache", "io", "protocols"},
    {"models", "data", "compress", "search", "features", "rerank"},
    {"codes", "baselines", "pairs", "projection", "demo", "modules", "metric"},
    {"eval", "report"},
    {"jobs"},
]
LAYER = {package: depth for depth, layer in enumerate(LAYERS) for package in layer}


def package_of(path: Path) -> str:
    first = path.relative_to(NCL).parts[0]
    return first.removesuffix(".py")


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("ncl.")}
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in NCL.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == NCL:
            continue
        package = package_of(path)
        graph.setdefault(package, set()).update(imported_packages(path) - {package})
    return graph


def test_every_package_has_a_layer() -> None:
    assert set(import_graph()) <= set(LAYER), set(import_graph()) - set(LAYER)


def test_no_package_imports_one_above_it() -> None:
    upward = [
        f"{package} -> {target}"
        for package, targets in import_graph().items()
        for target in targets
        if LAYER[target] > LAYER[package]
    ]
    assert upward == []


def test_packages_import_each_other_without_cycles() -> None:
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_only_the_jobs_layer_reads_a_hydra_config() -> None:
    readers = sorted(
        str(p.relative_to(NCL))
        for p in NCL.rglob("*.py")
        if package_of(p) != "jobs"
        and ("DictConfig" in p.read_text() or "omegaconf" in p.read_text())
    )
    assert readers == []

"""Every benchmark script still imports: they run by hand (`python -m benchmarks.<name>`), so a
renamed library part would otherwise break one unnoticed until its figures are next needed."""

import importlib

import pytest
from helpers.paths import ROOT

SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports_and_has_a_main(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"

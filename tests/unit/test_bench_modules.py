"""Every bench module imports: the benches run by hand, not in the suite, so a renamed name they use
would otherwise go unnoticed until someone measures (bench/broker.py once imported an enum that was gone)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(info.name for info in pkgutil.iter_modules(bench.__path__))


def test_there_are_benches() -> None:
    assert "broker" in MODULES and len(MODULES) > 10


@pytest.mark.parametrize("name", MODULES)
def test_bench_module_imports(name: str) -> None:
    assert importlib.import_module(f"bench.{name}").__name__ == f"bench.{name}"

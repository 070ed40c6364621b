"""Benchmarks: slow, honest measurements of what ships. Each module exposes `main(argv)`."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType


def benchmark_modules() -> Iterator[ModuleType]:
    """Every benchmark in this package, so a new module is picked up without registering it.

    A benchmark is a module with a `main(argv)`; helpers it starts (the Flask baseline that
    `serving` measures against) have none, and modules named `_...` are shared code."""
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        candidate = importlib.import_module(f"{__name__}.{module.name}")
        if hasattr(candidate, "main"):
            yield candidate

"""Runs every benchmark in this package, so a new module is picked up without registering it.

A benchmark is a module with a `main(argv)`; helpers it starts (the Flask baseline that
`serving` measures against) have none and are skipped."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str]) -> int:
    failures = 0
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if module.name.startswith("_"):
            continue
        benchmark = importlib.import_module(f"benchmarks.{module.name}")
        if hasattr(benchmark, "main"):
            failures += benchmark.main(argv) != 0
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

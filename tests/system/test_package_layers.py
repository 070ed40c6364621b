"""The layout is the architecture: data flows one way through the stages, so each package
imports only packages below it, through their public face (`lifeboat.<package>`), and
nothing imports the HTTP service but the front ends. These tests read the import
statements of every module (function-local ones included) and fail on the first import
that runs against the flow; docs/architecture.md draws the same order."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import lifeboat

PACKAGE = Path(lifeboat.__file__).parent
# Bottom to top. Core modules first: any stage may use them.
CORE = ("errors", "config", "logs", "lifecycle", "metrics", "files")
STAGES = ("datasets", "db", "validation", "synthetic", "ingest", "features", "registry",
          "scoring", "spark", "training", "monitoring", "orchestration", "serving", "cluster",
          "cli", "__main__")
LAYERS = {name: rank for rank, name in enumerate((*CORE, *STAGES))}
FRONT_ENDS = {"serving", "cluster", "cli"}
DATASET_HOMES = {"features", "datasets", "synthetic"}  # where a dataset's own modules live
DATASET_NAMES = {"titanic", "customers", "passengers", "adult"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted

    @property
    def source_unit(self) -> str:
        return _unit(self.source)

    @property
    def target_unit(self) -> str:
        return _unit(self.target)


def _unit(module: str) -> str:
    """A module's package (or core module) directly under `lifeboat`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> Iterator[Import]:
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("lifeboat.") and _unit(target) != _unit(source):
                    yield Import(source, target)


CROSSING = list(_imports())


def test_every_package_has_a_place_in_the_layers() -> None:
    units = {_unit(_module_name(path)) for path in PACKAGE.rglob("*.py")} - {"lifeboat"}
    assert units <= LAYERS.keys(), f"place these in LAYERS: {sorted(units - LAYERS.keys())}"


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for crossing in CROSSING:
        graph.setdefault(crossing.source_unit, set()).add(crossing.target_unit)
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"packages import each other in a cycle: {' -> '.join(exc.args[1])}")


def test_packages_import_only_packages_below_them() -> None:
    upward = [f"{c.source} imports {c.target}" for c in CROSSING
              if LAYERS[c.target_unit] > LAYERS[c.source_unit]]
    assert upward == []


def test_packages_are_imported_through_their_face() -> None:
    """`lifeboat.features`, not `lifeboat.features.views`: what a package exports is its
    contract, and its modules may move behind it (core modules are one module each)."""
    deep = [f"{c.source} imports {c.target}" for c in CROSSING
            if c.target_unit not in CORE and c.target != f"lifeboat.{c.target_unit}"]
    assert deep == []


def test_only_the_front_ends_import_the_http_service() -> None:
    outside = [f"{c.source} imports {c.target}" for c in CROSSING
               if c.target_unit == "serving" and c.source_unit not in FRONT_ENDS]
    assert outside == []


def test_no_dataset_is_imported_by_name_outside_its_homes() -> None:
    """Generic code learns about a dataset from its spec and its feature builder, found by
    name at run time: a new dataset touches no stage's code."""
    named = [f"{c.source} imports {c.target}" for c in CROSSING
             if c.source_unit not in DATASET_HOMES
             and DATASET_NAMES & set(c.target.split("."))]
    assert named == []


@pytest.mark.parametrize(("package", "unwanted"), [
    # Scoring runs in the CLI, in jobs and (next) on distributed workers: none of them
    # should load a web framework to score a row.
    ("lifeboat.scoring", {"fastapi", "starlette", "uvicorn"}),
    # A spec is read in 50 places, the CLI's help among them: it is YAML and pydantic.
    ("lifeboat.datasets", {"pandas", "numpy", "pyarrow", "lifeboat.synthetic"}),
])
def test_importing_a_package_loads_only_what_it_needs(package: str, unwanted: set[str]) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {package}; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert sorted(unwanted & {*loaded, *(name.split(".")[0] for name in loaded)}) == []

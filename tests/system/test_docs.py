"""The README and docs/ hold to what they promise: a README of a screen or two, links that
lead somewhere, and references that name every setting, route, metric and benchmark the
code has, so a new one cannot ship undocumented.

The lists are read from the code itself: the settings class, the app's OpenAPI document,
the Prometheus registry and the monitoring collector, and the benchmarks package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import AliasChoices

import lifeboat.metrics  # noqa: F401 - registers the process metrics
from benchmarks import benchmark_modules
from lifeboat.config import Settings
from lifeboat.serving import create_app
from tests.support.paths import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
SCREENSHOTS = DOCS / "images"
UI_TESTS = ROOT / "tests" / "system" / "ui"
COLLECTOR = ROOT / "src" / "lifeboat" / "monitoring" / "collector.py"
README_MAX_LINES = 150

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(path: Path) -> list[str]:
    """The lines outside fenced code blocks: a `#` in a shell example is no heading, and a
    `[x](y)` in code is no link."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor, repeats numbered as GitHub numbers them (`measured-1`)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    return [target for line in prose_lines(path) for target in LINK.findall(line)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def written_by_ui_tests(name: str) -> bool:
    """A screenshot the docs show exists once the browser tests have run: the suite writes
    them, they are not kept in the repository before it does."""
    return any(f'"{name}"' in test.read_text(encoding="utf-8")
               for test in UI_TESTS.glob("test_*.py"))


def broken_link(source: Path, target: str) -> str | None:
    file_part, _, anchor = target.partition("#")
    resolved = (source.parent / file_part).resolve() if file_part else source
    if resolved.parent == SCREENSHOTS.resolve() and not resolved.exists():
        return None if written_by_ui_tests(resolved.name) else "no UI test writes this screenshot"
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


def test_the_readme_fits_a_screen_or_two() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_links_the_docs() -> None:
    linked = {target.partition("#")[0] for target in relative_links(README)}
    assert "docs/index.md" in linked
    assert "docs/images/predict.png" in linked


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    broken = {target: reason for target in relative_links(path)
              if (reason := broken_link(path, target))}
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def environment_variable(name: str, field) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return alias or f"{Settings.model_config['env_prefix']}{name}".upper()


def test_every_setting_is_documented() -> None:
    page = (DOCS / "reference" / "settings.md").read_text(encoding="utf-8")
    variables = [environment_variable(name, field)
                 for name, field in Settings.model_fields.items()]
    assert len(variables) > 40
    assert [name for name in variables if f"`{name}`" not in page] == []


def test_every_route_is_documented(tmp_path: Path) -> None:
    page = (DOCS / "reference" / "http.md").read_text(encoding="utf-8")
    document = create_app(Settings(home=tmp_path)).openapi()
    routes = [(method.upper(), path) for path, operations in document["paths"].items()
              for method in operations]
    assert ("POST", "/predict") in routes
    rows = [line for line in page.splitlines() if line.startswith("|")]
    missing = [f"{method} {path}" for method, path in routes
               if not any(f"`{method}`" in row and f"`{path}`" in row for row in rows)]
    assert missing == []


def exposed_names() -> set[str]:
    """What /metrics shows for every metric the service and the jobs register: the process
    metrics from the registry (a counter's samples end in `_total`), and the families the
    monitoring collector reads from the database at each scrape."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("lifeboat_"):
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    tree = ast.parse(COLLECTOR.read_text(encoding="utf-8"))
    counters = {call.args[1].value for call in ast.walk(tree)
                if isinstance(call, ast.Call) and len(call.args) >= 2
                and isinstance(call.args[0], ast.Name) and call.args[0].id == "CounterMetricFamily"
                and isinstance(call.args[1], ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r"lifeboat_[a-z_]+", node.value):
            names.add(f"{node.value}_total" if node.value in counters else node.value)
    return names


def test_every_metric_is_documented() -> None:
    page = (DOCS / "reference" / "metrics.md").read_text(encoding="utf-8")
    names = exposed_names()
    assert {"lifeboat_predictions_total", "lifeboat_drift_checks_total"} <= names
    assert sorted(name for name in names if f"`{name}`" not in page) == []


def benchmark_sections(page: str) -> dict[str, str]:
    parts = re.split(r"^## ", page, flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_every_benchmark_has_a_section_with_its_command() -> None:
    sections = benchmark_sections((DOCS / "benchmarks.md").read_text(encoding="utf-8"))
    names = [module.__name__.removeprefix("benchmarks.") for module in benchmark_modules()]
    assert "serving" in names
    missing = [name for name in names
               if f"python -m benchmarks.{name}" not in sections.get(name, "")]
    assert missing == []

"""The CLI answers at once: help and listings load only what they use, and read as a user
expects (version, grouped commands, plain option labels, durations in words)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lifeboat
from lifeboat.cli import duration
from tests.support.cli import imported_by
from tests.support.cli import lifeboat as run_lifeboat

HEAVY = {"pandas", "numpy", "sqlalchemy", "alembic", "mlflow", "sklearn", "pyarrow",
         "pydantic_settings", "fastapi"}


def test_help_imports_no_data_or_model_library(tmp_path: Path) -> None:
    assert HEAVY & imported_by(tmp_path / "home", "--help") == set()


@pytest.mark.parametrize("command", ["--version", "jobs --help", "models --help"])
def test_version_and_command_help_import_no_data_or_model_library(
        tmp_path: Path, command: str) -> None:
    assert HEAVY & imported_by(tmp_path / "home", *command.split()) == set()


def test_version_is_the_package_version(tmp_path: Path) -> None:
    result = run_lifeboat(tmp_path / "home", "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lifeboat {lifeboat.__version__}"


def _panels(help_text: str) -> dict[str, list[str]]:
    """Each help panel's title and the first word of each of its rows."""
    panels: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        if title := re.match(r"\s*╭─ (.+?) ─", line):
            current = panels.setdefault(title.group(1), [])
        elif current is not None and (row := re.match(r"\s*│ (\S+)", line)):
            current.append(row.group(1))
    return panels


def test_commands_are_grouped_in_help(tmp_path: Path) -> None:
    result = run_lifeboat(tmp_path / "home", "--help", COLUMNS="120")
    panels = _panels(result.stdout)
    assert set(panels["Serve"]) >= {"up", "bootstrap", "serve", "cluster"}
    assert set(panels["Data"]) >= {"ingest", "validate", "generate", "features"}
    assert set(panels["Models"]) >= {"train", "models", "promote", "rollback", "predict"}
    assert set(panels["Jobs and monitoring"]) >= {"drift", "outcomes", "pipeline", "schedule",
                                                  "watch", "jobs"}
    assert "Commands" not in panels
    assert {"--home", "--dataset", "--version", "--help"} <= set(panels["Options"])


@pytest.mark.parametrize("command", ["--help", "validate --help", "ingest --help",
                                     "up --help", "train --help", "models --help"])
def test_help_has_no_bool_labels_or_braced_arguments(tmp_path: Path, command: str) -> None:
    result = run_lifeboat(tmp_path / "home", *command.split(), COLUMNS="120")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "{" not in result.stdout


def test_required_and_optional_arguments_read_as_usual(tmp_path: Path) -> None:
    validate = run_lifeboat(tmp_path / "home", "validate", "--help", COLUMNS="120")
    ingest = run_lifeboat(tmp_path / "home", "ingest", "--help", COLUMNS="120")
    assert "Usage: lifeboat validate [OPTIONS] SOURCE" in validate.stdout
    assert "Usage: lifeboat ingest [OPTIONS] [SOURCE]" in ingest.stdout


def test_up_help_names_the_port_option_not_a_fixed_port(tmp_path: Path) -> None:
    result = run_lifeboat(tmp_path / "home", "up", "--help", COLUMNS="120")
    assert "--port" in result.stdout
    assert ":8000" not in result.stdout


@pytest.mark.parametrize(("seconds", "said"), [
    (0.0102, "10 ms"), (0.9994, "999 ms"), (2.34, "2.3 s"), (59.9, "59.9 s"), (64.4, "1 min 4 s"),
    (3599, "59 min 59 s"), (7500, "2 h 5 min"), (None, "-"),
])
def test_durations_read_as_a_person_says_them(seconds: float | None, said: str) -> None:
    assert duration(seconds) == said

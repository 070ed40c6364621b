"""The command line as a user runs it: a real process, real exit codes, no tracebacks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifeboat.datasets import DatasetSpec


def lifeboat(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env.update(LIFEBOAT_HOME=str(home), LIFEBOAT_SEARCH_ITERATIONS="2")
    return subprocess.run([sys.executable, "-m", "lifeboat", *args], capture_output=True,
                          text=True, env=env, cwd=home.parent, timeout=600)


@pytest.mark.parametrize(("args", "message"), [
    (("ingest", "/nowhere/passengers.csv"), "error: cannot read /nowhere/passengers.csv"),
    (("promote", "3"), "error: lifeboat-titanic has no version 3"),
])
def test_failures_are_one_clear_line_and_a_non_zero_exit(tmp_path: Path, args: tuple[str, ...],
                                                         message: str) -> None:
    result = lifeboat(tmp_path / "home", *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_ingest_reports_counts_then_nothing_to_do(tmp_path: Path, titanic: DatasetSpec) -> None:
    home = tmp_path / "home"
    source = str(titanic.bundled_path())
    first = lifeboat(home, "ingest", source)
    assert first.returncode == 0, first.stderr
    assert "1309 rows loaded, 0 rejected, 0 already present (of 1309)" in first.stdout
    again = lifeboat(home, "ingest", source)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_every_command_has_help(tmp_path: Path) -> None:
    listing = lifeboat(tmp_path, "--help")
    for command in ("up", "serve", "ingest", "train", "models", "promote"):
        assert command in listing.stdout
        assert lifeboat(tmp_path, command, "--help").returncode == 0

"""The command line as a user runs it: a real process, real exit codes, no tracebacks."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lifeboat.cli import app
from lifeboat.datasets import DatasetSpec
from tests.support.cli import lifeboat


@pytest.mark.parametrize(("args", "env", "message"), [
    (("ingest", "/nowhere/passengers.csv"), {}, "error: cannot read /nowhere/passengers.csv"),
    (("promote", "3"), {}, "error: lifeboat-titanic has no version 3"),
    (("models",), {"LIFEBOAT_PORT": "eighty"}, "error: invalid setting: port"),
    (("ingest", "x.csv"), {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"},
     "error: cannot reach the database"),
    (("train",), {"LIFEBOAT_DATASET": "penguins"}, "error: no dataset spec 'penguins'"),
])
def test_failures_are_one_clear_line_and_a_non_zero_exit(
        tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    result = lifeboat(tmp_path / "home", *args, **env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_ingest_reports_counts_then_nothing_to_do(tmp_path: Path, titanic: DatasetSpec) -> None:
    home = tmp_path / "home"
    source = str(titanic.bundled_path())
    first = lifeboat(home, "ingest", source, COLUMNS="200")
    assert first.returncode == 0, first.stderr
    assert re.search(r"titanic.csv\s*│\s*succeeded\s*│\s*1309\s*│\s*1309\s*│\s*0\s*│", first.stdout)
    again = lifeboat(home, "ingest", source, COLUMNS="200")
    assert again.returncode == 0 and re.search(r"titanic.csv\s*│\s*skipped", again.stdout)


def test_every_command_has_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    for command in ("up", "bootstrap", "serve", "cluster", "ingest", "train", "models",
                    "promote"):
        assert command in listing.output
        help_text = runner.invoke(app, [command, "--help"])
        assert help_text.exit_code == 0 and "Usage" in help_text.output



def test_cluster_refuses_what_replicas_cannot_share_in_one_line(tmp_path: Path) -> None:
    """Replicas share one database and one online store: the embedded SQLite defaults are
    refused before any process starts, each with the setting to give."""
    home = tmp_path / "home"
    alone = lifeboat(home, "cluster", REDIS_URL="redis://127.0.0.1:1/0")
    assert alone.returncode == 1 and "Traceback" not in alone.stderr
    assert "set DATABASE_URL to a PostgreSQL database" in alone.stderr
    no_store = lifeboat(home, "cluster", DATABASE_URL="postgresql+psycopg://x@127.0.0.1:1/x",
                        REDIS_URL="")
    assert no_store.returncode == 1 and "set REDIS_URL" in no_store.stderr
    down = lifeboat(home, "cluster", DATABASE_URL="postgresql+psycopg://x@127.0.0.1:1/x",
                    REDIS_URL="redis://127.0.0.1:1/0")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert "error: cannot create or find the database 'x' on PostgreSQL at 127.0.0.1:1" in (
        down.stderr)
    too_many = lifeboat(home, "cluster", "--replicas", "5")
    assert too_many.returncode == 2 and "replicas" in too_many.stderr


@pytest.mark.slow
def test_bootstrap_prepares_a_champion_once_then_exits(tmp_path: Path) -> None:
    """What a cluster runs before its `serve` replicas: a second run finds it all done."""
    home = tmp_path / "home"
    first = lifeboat(home, "bootstrap", COLUMNS="200")
    assert first.returncode == 0, first.stderr
    assert "loaded 1309 titanic rows" in first.stderr
    assert "trained lifeboat-titanic v1" in first.stderr
    assert "champion: lifeboat-titanic v1" in first.stderr
    again = lifeboat(home, "bootstrap", COLUMNS="200")
    assert again.returncode == 0, again.stderr
    assert "loaded" not in again.stderr and "trained" not in again.stderr
    assert "champion: lifeboat-titanic v1" in again.stderr

def test_ingest_without_a_source_drains_the_landing_zone(tmp_path: Path, titanic: DatasetSpec) -> None:
    home = tmp_path / "home"
    raw = home / "landing" / "raw"
    raw.mkdir(parents=True)
    (raw / "passengers.csv").write_bytes(titanic.bundled_path().read_bytes())
    (raw / "notes.csv").write_text("just some words\n")
    result = lifeboat(home, "ingest", COLUMNS="200")
    assert result.returncode == 2, result.stderr  # one file quarantined whole
    assert re.search(r"passengers.csv\s*│\s*succeeded\s*│\s*1309", result.stdout)
    assert list(raw.iterdir()) == []
    assert len(list((home / "landing" / "good").glob("passengers.*.parquet"))) == 1
    assert len(list((home / "landing" / "bad").glob("notes.*.reason.txt"))) == 1


def test_validate_is_a_dry_run_with_counts_per_issue(tmp_path: Path) -> None:
    source = tmp_path / "messy.csv"
    source.write_text("PassengerId,Pclass,Name,Sex,Age\n1,3,\"A, Mr. B\",male,22\n"
                      "2,4,\"C, Mr. D\",male,old\n3,1,\"E, Mrs. F\",female,30\n")
    result = lifeboat(tmp_path / "home", "validate", str(source), COLUMNS="200")
    assert result.returncode == 1, result.stderr
    assert "3 rows, 2 valid, 1 invalid" in result.stdout
    assert re.search(r"not_allowed\s*│\s*1\s*│\s*2, pclass, '4'", result.stdout)
    assert re.search(r"wrong_type\s*│\s*1\s*│\s*2, age, 'old'", result.stdout)
    assert not (tmp_path / "home" / "landing").exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    quarantined = lifeboat(tmp_path / "home", "validate", str(empty))
    assert quarantined.returncode == 2 and "quarantined: empty file" in quarantined.stdout

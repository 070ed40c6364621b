"""One project bootstrapped by `lifeboat bootstrap` (home `project/.lifeboat`), then used as
a user does: from its subfolders, with options over the environment, listings as JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, as_utc
from lifeboat.orchestration import listed_runs, recent_runs
from lifeboat.registry import ModelRegistry
from tests.support.cli import imported_by, lifeboat
from tests.support.homes import make_settings
from tests.support.live_server import free_port, wait_ready

MLFLOW_EVENTS = ("Successfully registered model", "Created version")


def lifeboat_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`lifeboat ARGS` run in `folder` with no Lifeboat setting from the environment: the
    home is the one the command finds."""
    clean = {key: value for key, value in os.environ.items()
             if key not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")
             and (key.startswith("LIFEBOAT_TEST_") or not key.startswith("LIFEBOAT_"))}
    return subprocess.run([sys.executable, "-m", "lifeboat", *args], capture_output=True,
                          text=True, env={**clean, "COLUMNS": "200", **env}, cwd=folder,
                          timeout=600)


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project's home, and what bootstrapping it printed."""
    home = tmp_path_factory.mktemp("project") / ".lifeboat"
    result = lifeboat(home, "bootstrap", COLUMNS="200")
    assert result.returncode == 0, result.stderr
    return home, result.stdout + result.stderr


def test_bootstrap_prints_none_of_mlflow_s_events(bootstrapped: tuple[Path, str]) -> None:
    _, printed = bootstrapped
    assert "trained lifeboat-titanic v1" in printed
    assert [event for event in MLFLOW_EVENTS if event in printed] == []


def test_the_home_is_found_from_a_subfolder(bootstrapped: tuple[Path, str]) -> None:
    home, _ = bootstrapped
    deep = home.parent / "notebooks" / "2026"
    deep.mkdir(parents=True, exist_ok=True)
    result = lifeboat_in(deep, "models", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["version"] for row in json.loads(result.stdout)] == ["1"]


def test_outside_any_project_a_listing_says_where_it_looked(tmp_path: Path) -> None:
    result = lifeboat_in(tmp_path, "models")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        f"error: no Lifeboat home: no .lifeboat folder in {tmp_path} or any folder above it")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["models", "jobs", "models history"])
def test_a_new_home_named_is_said_new_not_created(tmp_path: Path, command: str) -> None:
    result = lifeboat_in(tmp_path, "--home", "fresh", *command.split())
    assert result.returncode == 1
    assert f"error: no Lifeboat home at {tmp_path / 'fresh'}" in result.stderr
    assert "it is new" in result.stderr
    assert not (tmp_path / "fresh").exists()


def test_options_win_over_the_environment(bootstrapped: tuple[Path, str], tmp_path: Path) -> None:
    home, _ = bootstrapped
    chosen = lifeboat_in(tmp_path, "--home", str(home), "--dataset", "titanic", "models",
                         "--json", LIFEBOAT_HOME=str(tmp_path / "elsewhere"),
                         LIFEBOAT_DATASET="penguins")
    assert chosen.returncode == 0, chosen.stderr
    assert [row["name"] for row in json.loads(chosen.stdout)] == ["lifeboat-titanic"]
    other = lifeboat_in(tmp_path, "--home", str(home), "--dataset", "penguins", "models")
    assert other.returncode == 1
    assert "error: no dataset spec 'penguins'" in other.stderr


def test_models_json_holds_what_the_registry_holds(bootstrapped: tuple[Path, str],
                                                   titanic: DatasetSpec) -> None:
    """The listing reads the embedded store without MLflow; its rows are MLflow's own."""
    home, _ = bootstrapped
    result = lifeboat(home, "models", "--json")
    assert result.returncode == 0, result.stderr
    registry = ModelRegistry(make_settings(home, search_iterations=None), titanic.model_name)
    through_mlflow = registry.get("1")
    assert json.loads(result.stdout) == [json.loads(json.dumps(asdict(through_mlflow)))]
    assert through_mlflow.aliases == ["champion"]


def test_history_json_holds_the_first_champion(bootstrapped: tuple[Path, str]) -> None:
    home, _ = bootstrapped
    result = lifeboat(home, "models", "history", "--json")
    assert result.returncode == 0, result.stderr
    [change] = json.loads(result.stdout)
    assert (change["from_version"], change["to_version"]) == (None, "1")
    assert change["changed_by"] == "training"


def test_a_drift_check_from_the_command_line_is_a_recorded_run(
        bootstrapped: tuple[Path, str], titanic: DatasetSpec, tmp_path: Path) -> None:
    home, _ = bootstrapped
    scored = lifeboat(home, "predict", str(titanic.bundled_path()), "-o",
                      str(tmp_path / "scored.csv"))
    assert scored.returncode == 0, scored.stderr
    checked = lifeboat(home, "drift", "--html", str(tmp_path / "drift.html"))
    assert checked.returncode in (0, 1), checked.stderr
    runs = json.loads(lifeboat(home, "jobs", "--json").stdout)
    drift_runs = [run for run in runs if run["job"] == "drift"]
    assert len(drift_runs) == 1
    [run] = drift_runs
    assert (run["trigger"], run["status"]) == ("cli", "succeeded")
    assert run["counts"] == {"checked": 1, "drifted": checked.returncode}
    assert run["seconds"] > 0
    table = lifeboat(home, "jobs", COLUMNS="200").stdout
    row = next(line for line in table.splitlines() if re.search(r"│\s*drift\s*│", line))
    took = [cell.strip() for cell in row.split("│")][5]
    assert re.fullmatch(r"\d+ ms|\d+\.\d s|\d+ min \d+ s", took), row


def test_serve_listens_on_the_port_option(bootstrapped: tuple[Path, str],
                                          processes: list[subprocess.Popen]) -> None:
    home, _ = bootstrapped
    port = free_port()
    env = {**os.environ, "LIFEBOAT_HOME": str(home), "LIFEBOAT_PORT": str(free_port())}
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    server = subprocess.Popen([sys.executable, "-m", "lifeboat", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    processes.append(server)
    wait_ready(server, f"http://127.0.0.1:{port}")
    assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200


def test_listings_import_neither_mlflow_nor_pandas(bootstrapped: tuple[Path, str]) -> None:
    """`lifeboat models` reads the embedded registry without MLflow; `lifeboat jobs` reads
    a table without pandas or Alembic."""
    home, _ = bootstrapped
    assert {"mlflow", "pandas", "sqlalchemy", "sklearn"} & imported_by(home, "models") == set()
    assert {"mlflow", "pandas", "alembic", "sklearn", "sqlalchemy"} & imported_by(
        home, "jobs") == set()


def test_jobs_lists_what_recent_runs_reads(bootstrapped: tuple[Path, str],
                                           titanic: DatasetSpec) -> None:
    """The embedded database read with sqlite3 gives the rows SQLAlchemy gives."""
    home, _ = bootstrapped
    assert lifeboat(home, "ingest", str(titanic.bundled_path())).returncode == 0
    settings = make_settings(home)
    database = Database(settings.db_url)
    through_sqlalchemy = [(run.id, run.job, run.trigger, run.status, as_utc(run.started_at),
                           run.finished_at and as_utc(run.finished_at), run.counts, run.error)
                          for run in recent_runs(database, titanic.name, 50)]
    database.dispose()
    listed = [(run.id, run.job, run.trigger, run.status, run.started_at, run.finished_at,
               run.counts, run.error) for run in listed_runs(settings, titanic.name, 50)]
    assert listed == through_sqlalchemy
    assert ("ingest", "cli") in [(job, trigger) for _, job, trigger, *_ in listed]


def test_jobs_json_on_either_database(tmp_path: Path, database_url: str,
                                      titanic: DatasetSpec) -> None:
    home = tmp_path / "home"
    loaded = lifeboat(home, "ingest", str(titanic.bundled_path()), DATABASE_URL=database_url)
    assert loaded.returncode == 0, loaded.stderr
    listed = lifeboat(home, "jobs", "--json", DATABASE_URL=database_url)
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert (run["job"], run["trigger"], run["status"]) == ("ingest", "cli", "succeeded")
    assert run["counts"]["rows_loaded"] == 1309 and run["seconds"] > 0

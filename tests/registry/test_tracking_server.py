"""Lifeboat on a shared MLflow tracking server: runs and versions in its PostgreSQL store,
artifacts in S3 through its proxy, the champion loaded and moved by processes that know
only `MLFLOW_TRACKING_URI`, and a server that is down named in one line, at once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from playwright.sync_api import Browser, expect

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.registry import CHAMPION, ModelRegistry, TrackingServerUnavailable, run_url
from lifeboat.serving import create_app
from lifeboat.training import train
from tests.support.homes import make_settings, trained_home
from tests.support.live_server import free_port, live_server
from tests.support.mlflow_server import MlflowServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROWS = 25
# What MLflow's default HTTP retries would spend on a refused connection: about 4 minutes.
# Lifeboat's defaults must name the server in a small fraction of that.
PATIENCE_SECONDS = 15
LOAD_AND_SCORE = """
import json, sys
import pandas as pd
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.features import feature_view
from lifeboat.registry import ModelRegistry
from lifeboat.scoring import Predictor
spec = load_spec("titanic")
version, model = ModelRegistry(Settings(), spec.model_name).load_champion()
rows = pd.read_csv(sys.argv[1], na_values=spec.missing_values, keep_default_na=False)
rows = rows.rename(columns=lambda name: spec.canonical(name) or name)
probabilities = Predictor(spec, model, version, feature_view(spec)).probabilities(rows)
print(json.dumps({"version": version.version, "probabilities": probabilities.tolist()}))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec,
           mlflow_server: MlflowServer) -> Settings:
    """A home whose runs, versions and artifacts all live on the tracking server."""
    return trained_home(tmp_path_factory.mktemp("served") / "home", titanic,
                        mlflow_tracking_uri=mlflow_server.url, search_iterations=1)


@pytest.fixture
def passengers(tmp_path: Path, titanic: DatasetSpec) -> Path:
    path = tmp_path / "passengers.csv"
    path.write_text("".join(titanic.bundled_path().read_text().splitlines(True)[: ROWS + 1]))
    return path


def server_client(server: MlflowServer) -> MlflowClient:
    """A client of the server's own, with nothing of Lifeboat's in between."""
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def only_the_tracking_uri(settings: Settings, tracking_uri: str) -> dict[str, str]:
    """A process's environment with the server's URL and the home, and no S3 endpoint or
    credentials: artifacts can only come through the server."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "MLFLOW_", "FSSPEC_"))
           and name not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "MLFLOW_TRACKING_URI": tracking_uri,
            "LIFEBOAT_HOME": str(settings.resolved_home)}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_training_logs_its_run_and_registers_its_version_on_the_server(
        served: Settings, mlflow_server: MlflowServer, titanic: DatasetSpec) -> None:
    client = server_client(mlflow_server)
    champion = client.get_model_version_by_alias(titanic.model_name, CHAMPION)
    logged = client.get_run(champion.run_id)
    assert logged.info.status == "FINISHED"
    assert 0.5 < logged.data.metrics["test_roc_auc"] <= 1
    assert logged.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert client.get_experiment(logged.info.experiment_id).name == f"lifeboat-{titanic.name}"
    keys = mlflow_server.artifact_keys()
    experiment = f"artifacts/{logged.info.experiment_id}/"
    assert any(key.startswith(experiment) and key.endswith("/MLmodel") for key in keys)
    assert any(key.startswith(f"{experiment}{champion.run_id}/") and
               key.endswith("/drift_reference.json") for key in keys)
    assert not served.artifact_root.exists()


def test_a_process_with_only_the_tracking_uri_scores_with_the_champion(
        served: Settings, mlflow_server: MlflowServer, titanic: DatasetSpec, passengers: Path,
        tmp_path: Path) -> None:
    """The CLI scores with the compiled scorer, the script with the pipeline itself: both
    downloaded through the server by processes that have no way to reach the bucket."""
    env = only_the_tracking_uri(served, mlflow_server.url)
    output = tmp_path / "scored.csv"
    scored = run(["-m", "lifeboat", "predict", str(passengers), "-o", str(output)], env, tmp_path)
    assert scored.returncode == 0, scored.stderr
    loaded = run(["-c", LOAD_AND_SCORE, str(passengers)], env, tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    pipeline = json.loads(loaded.stdout.splitlines()[-1])
    champion = ModelRegistry(served, titanic.model_name).require_champion()
    assert pipeline["version"] == champion.version
    compiled = pd.read_csv(output)["probability"].to_numpy()
    assert len(compiled) == ROWS
    np.testing.assert_allclose(compiled, pipeline["probabilities"], rtol=1e-5)


def test_a_promotion_and_a_rollback_move_the_alias_every_client_sees(
        served: Settings, mlflow_server: MlflowServer, titanic: DatasetSpec,
        tmp_path: Path) -> None:
    database = Database(served.db_url)
    second = train(served, database, titanic, promote=False).version
    database.dispose()
    before = ModelRegistry(served, titanic.model_name).require_champion().version
    assert second != before
    env = only_the_tracking_uri(served, mlflow_server.url)
    promoted = run(["-m", "lifeboat", "promote", second], env, tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    client = server_client(mlflow_server)
    assert client.get_model_version_by_alias(titanic.model_name, CHAMPION).version == second
    rolled_back = run(["-m", "lifeboat", "rollback"], env, tmp_path)
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert client.get_model_version_by_alias(titanic.model_name, CHAMPION).version == before
    assert ModelRegistry(served, titanic.model_name).require_champion().version == before


def test_models_links_each_version_to_its_run_in_the_mlflow_ui(
        served: Settings, mlflow_server: MlflowServer, titanic: DatasetSpec) -> None:
    client = server_client(mlflow_server)
    with TestClient(create_app(served)) as service:
        versions = service.get("/models").json()["versions"]
    assert versions
    for version in versions:
        registered = client.get_model_version(titanic.model_name, version["version"])
        experiment = client.get_run(registered.run_id).info.experiment_id
        assert version["run_url"] == (f"{mlflow_server.url}/#/experiments/{experiment}"
                                      f"/runs/{registered.run_id}")
    with TestClient(create_app(served.model_copy(
            update={"mlflow_ui_url": "https://mlflow.example.com/"}))) as service:
        linked = service.get("/models").json()["versions"][0]["run_url"]
    assert linked.startswith("https://mlflow.example.com/#/experiments/")
    run_id = linked.rsplit("/", 1)[-1]
    assert client.get_run(run_id).info.run_id == run_id
    ui = httpx.get(f"{mlflow_server.url}/", timeout=10)  # the page the link's routes live in
    assert ui.status_code == 200 and "<title>MLflow</title>" in ui.text


def test_the_models_tab_links_each_version_to_its_run_page_in_the_mlflow_ui(
        served: Settings, browser: Browser) -> None:
    """The link the Models tab shows opens the MLflow UI on that run (its name shown)."""
    expect.set_options(timeout=60_000)  # the MLflow UI is a large single-page app
    with live_server(create_app(served)) as url:
        versions = httpx.get(f"{url}/models").json()["versions"]
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.goto(url)
        tab.get_by_role("tab", name="Models").click()
        for version in versions:
            link = tab.locator(f'#models-table tbody[data-version="{version["version"]}"] '
                               "a.run-link")
            expect(link).to_have_attribute("href", version["run_url"])
        tab.goto(versions[-1]["run_url"])
        expect(tab.get_by_text("train-titanic").first).to_be_visible()
        expect(tab.get_by_text(versions[-1]["run_url"].rsplit("/", 1)[-1])).to_be_visible()
        context.close()


def test_the_run_link_follows_the_settings(tmp_path: Path) -> None:
    embedded = make_settings(tmp_path)
    assert embedded.tracking_ui_url is None
    assert run_url(embedded, "1", "abc") is None
    served = make_settings(tmp_path, mlflow_tracking_uri="http://mlflow:5000")
    assert run_url(served, "1", "abc") == "http://mlflow:5000/#/experiments/1/runs/abc"
    public = make_settings(tmp_path, mlflow_tracking_uri="http://mlflow:5000",
                           mlflow_ui_url="https://ml.example.com/mlflow/")
    assert run_url(public, "1", "abc") == "https://ml.example.com/mlflow/#/experiments/1/runs/abc"
    assert run_url(public, None, "abc") is None


def test_a_server_that_is_down_is_named_in_seconds_not_minutes(
        tmp_path: Path, titanic: DatasetSpec) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    registry = ModelRegistry(make_settings(tmp_path, mlflow_tracking_uri=down),
                             titanic.model_name)
    started = time.monotonic()
    with pytest.raises(TrackingServerUnavailable, match=f"server at {down} does not answer"):
        registry.champion()
    assert time.monotonic() - started < PATIENCE_SECONDS


def test_the_cli_names_a_server_that_is_down_in_one_line(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    listed = run(["-m", "lifeboat", "models"],
                 only_the_tracking_uri(make_settings(tmp_path / "home"), down), tmp_path)
    assert listed.returncode == 1
    assert listed.stderr.strip() == (f"error: the MLflow tracking server at {down} does not "
                                     "answer (no connection): start it, or point "
                                     "MLFLOW_TRACKING_URI at one that runs")


def test_ready_and_models_say_the_server_is_down(tmp_path: Path, titanic: DatasetSpec) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(tmp_path / "home", mlflow_tracking_uri=down)
    with TestClient(create_app(settings)) as service:
        ready = service.get("/ready")
        models = service.get("/models")
    assert ready.status_code == 503
    assert ready.json()["checks"]["model"].startswith(f"the MLflow tracking server at {down} ")
    assert models.status_code == 503
    assert down in models.json()["detail"]

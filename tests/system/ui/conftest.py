"""What the UI tests share: a served, trained champion with an ingestion history, and a
second service whose gate refused a version, each opened in a fresh Chromium tab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page
from pydantic import SecretStr

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.serving import create_app
from lifeboat.training import train
from tests.support.homes import trained_home
from tests.support.live_server import live_server
from tests.support.ui import ADMIN_KEY, ui_tab


@pytest.fixture(scope="module")
def settings(trained_settings: Settings, titanic: DatasetSpec,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The trained champion, logging into a database of its own that has an ingestion
    history (one clean file, one with bad rows) for the Monitoring tab."""
    folder = tmp_path_factory.mktemp("browser")
    database_url = f"sqlite:///{folder / 'lifeboat.db'}"
    database = Database(database_url)
    upgrade(database)
    _ingest_history(database, titanic, folder)
    database.dispose()
    return trained_settings.model_copy(update={
        "database_url": database_url, "api_key": SecretStr(ADMIN_KEY),
        "drift_window_size": 100})

@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(create_app(settings)) as base_url:
        yield f"{base_url}/"

@pytest.fixture(scope="module")
def gated_url(titanic: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry of its own (the Models tests promote and roll back), where the gate compared
    a second version with the first: the same data and seed train the same model, so it
    refused v2 (a tie). Its page under the dataset's prefix, as a service of several
    datasets serves it."""
    settings = trained_home(tmp_path_factory.mktemp("gated") / "home", titanic)
    database = Database(settings.db_url)
    train(settings, database, titanic, promote=True)
    database.dispose()
    with live_server(create_app(settings.model_copy(update={
            "api_key": SecretStr(ADMIN_KEY)}))) as base_url:
        yield f"{base_url}/datasets/{titanic.name}/"

def _ingest_history(database: Database, titanic: DatasetSpec, folder: Path) -> None:
    passengers = pd.read_csv(titanic.bundled_path(), dtype=str, keep_default_na=False)
    clean, dirty = passengers.iloc[:60], passengers.iloc[60:100].copy()
    dirty.loc[dirty.index[:3], "age"] = "-5"
    dirty.loc[dirty.index[3:5], "sex"] = "unknown"
    zone = LandingZone(str(folder / "landing"))
    for name, rows in (("clean.csv", clean), ("dirty.csv", dirty)):
        rows.to_csv(folder / name, index=False)
        ingest_file(database, titanic, str(folder / name), zone)

@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    with ui_tab(browser, base_url) as tab:
        yield tab

@pytest.fixture
def gated_page(browser: Browser, gated_url: str) -> Iterator[Page]:
    with ui_tab(browser, gated_url) as tab:
        yield tab

@pytest.fixture
def passengers_csv(titanic: DatasetSpec, tmp_path: Path) -> tuple[Path, list[str]]:
    """Seven rows of the bundled passenger list, from every class, as they are in the file."""
    rows = pd.read_csv(titanic.bundled_path(), dtype=str, keep_default_na=False).iloc[::200]
    path = tmp_path / "passengers.csv"
    rows.to_csv(path, index=False)
    return path, rows["name"].tolist()

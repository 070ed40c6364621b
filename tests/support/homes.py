"""Lifeboat homes for tests: settings isolated from the developer's environment, and a home
with a trained champion in it."""

from __future__ import annotations

from pathlib import Path

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.features import materialize, open_online_store
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.training import train


def make_settings(home: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    return Settings(_env_file=None, home=home, database_url=database_url,
                    **{"mlflow_tracking_uri": None, "search_iterations": 2, **overrides})


def trained_home(home: Path, spec: DatasetSpec, database_url: str | None = None,
                 **overrides: object) -> Settings:
    """A home with the bundled data loaded, features materialized and a champion trained
    (in `database_url`, and the online store and other settings `overrides` name)."""
    settings = make_settings(home, database_url, **overrides)
    settings.ensure_home()
    db = Database(settings.db_url)
    upgrade(db)
    ingest_file(db, spec, str(spec.bundled_path()), LandingZone(settings.landing_url))
    store = open_online_store(settings.online_store_url)
    materialize(db, spec, store)
    store.close()
    train(settings, db, spec, promote=True)
    db.dispose()
    return settings

"""Jobs that more than one trigger runs: the API's /retrain today, the scheduler and the
drift monitor later. Each is the CLI's stage functions in order, nothing more."""

from __future__ import annotations

import pandas as pd

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import materialize, open_online_store
from lifeboat.training import TrainingResult, train


def retrain(settings: Settings, database: Database, spec: DatasetSpec,
            recent: tuple[pd.DataFrame, pd.Series] | None = None) -> TrainingResult:
    """Features for rows loaded since the last run, then a challenger, promoted only if better
    (on the held-out rows, and on `recent` labelled view rows when given)."""
    store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
    try:
        materialize(database, spec, store)
    finally:
        store.close()
    return train(settings, database, spec, promote=True, recent=recent)

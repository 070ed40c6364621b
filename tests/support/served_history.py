"""History for a served app's monitoring routes to show: predictions made over HTTP, the
true outcomes of some, and a drift check over them (the browser's Monitoring tab and the
API's conformance test both need `/drift` and `/monitoring/summary` to have content)."""

from __future__ import annotations

import httpx
import pandas as pd

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.monitoring.drift_check import check_drift


def drift_and_feedback_history(settings: Settings, titanic: DatasetSpec, base_url: str) -> None:
    """A hundred predictions, their true outcomes for thirty of them, and a drift check
    (`settings.drift_window_size` at most 100, for the check to have a full window)."""
    passengers = pd.read_csv(titanic.bundled_path(), na_values=titanic.missing_values,
                             keep_default_na=False).iloc[:100]
    records = passengers[titanic.input_columns]
    body = {"records": [{k: v for k, v in row.items() if not pd.isna(v)}
                        for row in records.astype(object).to_dict("records")]}
    predictions = httpx.post(f"{base_url}predict", json=body, timeout=60).json()["predictions"]
    survived = passengers[titanic.target.column].astype(int).tolist()
    for prediction, actual in list(zip(predictions, survived, strict=True))[:30]:
        assert httpx.post(f"{base_url}feedback", json={
            "id": prediction["id"], "actual": actual}).status_code == 200
    database = Database(settings.db_url)
    check_drift(settings, database, titanic)
    database.dispose()

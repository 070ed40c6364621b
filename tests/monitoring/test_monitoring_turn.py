"""Outcomes that come by themselves, end to end on PostgreSQL and Redis: a service serving the
customers model scores customers by id; a transactions file covering the 30 days after those
predictions is ingested; one monitoring turn (the `drift` job, as the jobs process runs it)
labels every prediction by the spec's rule, and live accuracy, live ROC AUC and the
window's estimated accuracy show in /metrics and /monitoring/summary, with no /feedback
call."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score
from sqlalchemy import select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, Feedback, upgrade
from lifeboat.features import materialize, open_online_store
from lifeboat.features.snapshots import current_snapshot
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.orchestration import JobContext, run
from lifeboat.registry import ModelRegistry
from lifeboat.serving import create_app
from lifeboat.synthetic.customers import write_customers
from lifeboat.training import train
from tests.support.homes import make_settings
from tests.support.services import scratch_postgres_database

SCORED = 240  # customers scored by id, in one request: the drift check's window
REDIS_DB = 3  # a Redis database of this module's own


@dataclass
class Served:
    settings: Settings
    database: Database
    spec: DatasetSpec
    threshold: float


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Served]:
    """A customers champion trained on generated data in PostgreSQL, its features in Redis."""
    spec = load_spec("customers")
    home = tmp_path_factory.mktemp("outcomes") / "home"
    files = write_customers(home.parent / "generated", 5, customers=500, transactions=25_000)
    store_url = f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    with scratch_postgres_database("lifeboat_outcomes") as url:
        settings = make_settings(
            home, url, dataset="customers", redis_url=store_url, drift_window_size=SCORED,
            live_accuracy_window=1000, auto_retrain=False)
        settings.ensure_home()
        database = Database(settings.db_url)
        upgrade(database)
        for path in files:
            ingest_file(database, spec, str(path), LandingZone(settings.landing_url))
        store = open_online_store(settings.online_store_url)
        materialize(database, spec, store)
        store.close()
        train(settings, database, spec, promote=True)
        champion = ModelRegistry(settings, spec.model_name).champion()
        try:
            yield Served(settings, database, spec, champion.threshold)
        finally:
            database.dispose()
            redis.Redis.from_url(store_url).flushdb()


def test_one_monitoring_turn_labels_every_prediction_and_measures_the_model(
        served: Served, tmp_path: Path) -> None:
    settings, database, spec = served.settings, served.database, served.spec
    customers = current_snapshot(database, spec).rows["customer_id"]
    with TestClient(create_app(settings)) as client:
        ids = customers.sample(SCORED, random_state=4).tolist()
        scored = client.post("/predict", json={"entity_ids": ids})
        assert scored.status_code == 200, scored.text
        predictions = scored.json()["predictions"]
        assert client.get("/past-predictions", params={"limit": 1}).json()["total"] == SCORED

        buyers = _later_transactions(spec, database, predictions, tmp_path)
        turn = run(JobContext(settings, database, spec), "drift", "schedule")
        assert turn.counts["retrained"] == 0  # no retrain: the policy is off here
        metrics = client.get("/metrics").text
        summary = client.get("/monitoring/summary").json()

    outcomes = _outcomes(database)
    assert {source for _, source in outcomes.values()} == {"derived"}
    actual = np.array([outcomes[p["id"]][0] for p in predictions])
    assert actual.tolist() == [int(p["entity_id"] in buyers) for p in predictions]
    assert 0 < actual.sum() < len(actual)

    predicted = np.array([p["prediction"] for p in predictions])
    probability = np.array([p["probability"] for p in predictions])
    accuracy, auc = (predicted == actual).mean(), roc_auc_score(actual, probability)
    assert auc > 0.6  # the buyers were drawn mostly among the likeliest
    assert _metric(metrics, "lifeboat_live_accuracy") == pytest.approx(accuracy)
    assert _metric(metrics, "lifeboat_live_roc_auc") == pytest.approx(auc)
    assert _metric(metrics, "lifeboat_live_accuracy_samples") == SCORED
    live = summary["live"]
    assert (live["accuracy"], live["roc_auc"], live["samples"]) == (
        pytest.approx(accuracy), pytest.approx(auc), SCORED)

    expected = np.where(probability >= served.threshold, probability, 1 - probability).mean()
    check, = summary["drift"]
    assert check["estimated_accuracy"] == pytest.approx(expected)
    assert _metric(metrics, "lifeboat_estimated_accuracy") == pytest.approx(expected)


def _later_transactions(spec: DatasetSpec, database: Database, predictions: list[dict],
                        folder: Path) -> set[str]:
    """A transactions file for the 30 days after the predictions, ingested: a large completed
    purchase by most of the likeliest half and a few of the rest, small purchases and large
    refunds besides, and one event a day past the horizon so that every label is decided.
    Returns who made a large purchase."""
    rng = np.random.default_rng(7)
    ranked = sorted(predictions, key=lambda p: p["probability"])
    start = datetime.now(UTC)
    events, buyers = [], set()
    for rank, prediction in enumerate(ranked):
        customer = prediction["entity_id"]
        likely = rank >= len(ranked) / 2
        if rng.random() < (0.7 if likely else 0.15):
            buyers.add(customer)
            events.append((customer, start + timedelta(days=rng.uniform(1, 29)), "completed",
                           rng.uniform(301, 900)))
        events.append((customer, start + timedelta(days=rng.uniform(1, 29)), "completed",
                       rng.uniform(5, 300)))
        if rng.random() < 0.2:
            events.append((customer, start + timedelta(days=rng.uniform(1, 29)), "refunded",
                           rng.uniform(301, 900)))
    events.append((ranked[0]["entity_id"], start + timedelta(days=31), "failed", 10.0))
    path = folder / "transactions-later.json"
    path.write_text("".join(json.dumps({
        "transaction_id": f"L{number:07d}", "customer_id": customer, "amount": round(amount, 2),
        "currency": "USD", "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "payment_method": "card", "status": status}) + "\n"
        for number, (customer, moment, status, amount) in enumerate(events)))
    report = ingest_file(database, spec, str(path), LandingZone(str(folder / "landing")))
    assert report.rows_loaded == len(events)
    return buyers


def _outcomes(database: Database) -> dict[str, tuple[int, str]]:
    with database.session() as session:
        rows = session.execute(select(Feedback.prediction_id, Feedback.actual, Feedback.source))
        return {row.prediction_id: (row.actual, row.source) for row in rows}


def _metric(text: str, name: str) -> float:
    match = re.search(rf'^{name}{{dataset="customers"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} is not in /metrics"
    return float(match.group(1))

"""Outcomes derived from later events: a logged customers prediction is labelled by the spec's
rule (a completed purchase above $300 in the 30 days after it) once the events loaded cover
those 30 days; never before, never over an outcome a caller sent. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, Feedback, Prediction, ensure_dataset_table
from lifeboat.db.models import as_utc
from lifeboat.monitoring.outcomes import derive_outcomes
from lifeboat.orchestration import JobContext, run
from lifeboat.scoring.prediction_history import save_feedback
from tests.support.homes import make_settings

MADE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # when the predictions were made
DAY = timedelta(days=1)
_ids = count()


@pytest.fixture(scope="module")
def customers() -> DatasetSpec:
    return load_spec("customers")


def _events(database: Database, spec: DatasetSpec,
            rows: list[tuple[str, datetime, str, float]]) -> None:
    """(customer, time, status, amount) transactions, as ingestion loads them."""
    table = ensure_dataset_table(database.engine, spec.events)
    with database.engine.begin() as connection:
        connection.execute(insert(table), [
            {"transaction_id": f"T{next(_ids)}", "customer_id": customer, "timestamp": time,
             "status": status, "amount": amount, "currency": "USD", "payment_method": "card"}
            for customer, time, status, amount in rows])


def _predictions(database: Database, entities: list[str | None], made: datetime = MADE,
                 dataset: str = "customers") -> list[str]:
    """One logged prediction per entity (None: a record without a key), a second apart."""
    ids = []
    with database.session() as session:
        for offset, entity in enumerate(entities):
            ids.append(f"p{next(_ids):05d}")
            session.add(Prediction(
                id=ids[-1], created_at=made + timedelta(seconds=offset), dataset=dataset,
                source="api", entity_id=entity, input={}, prediction=0,
                label="no_large_purchase", probability=0.2, model_name="m", model_version="1",
                latency_ms=1.0))
    return ids


def _outcomes(database: Database) -> dict[str, tuple[int, str]]:
    """prediction id → (actual, source)."""
    with database.session() as session:
        rows = session.execute(select(Feedback.prediction_id, Feedback.actual,
                                      Feedback.source)).all()
    return {row.prediction_id: (row.actual, row.source) for row in rows}


def test_each_prediction_is_labelled_by_the_spec_s_rule(database: Database,
                                                        customers: DatasetSpec) -> None:
    """1 only for a completed purchase above $300 in (made, made + 30 days]; the n-th case's
    prediction is made n seconds after MADE."""
    second = timedelta(seconds=1)
    cases = {
        "inside": [(MADE + 10 * DAY, "completed", 350.0)],
        "at the horizon's end": [(MADE + second + 30 * DAY, "completed", 301.0)],
        "at the prediction's moment": [(MADE + 2 * second, "completed", 900.0)],
        "after the horizon": [(MADE + 3 * second + 30 * DAY + second, "completed", 900.0)],
        "before the prediction": [(MADE - DAY, "completed", 900.0)],
        "refunded": [(MADE + 5 * DAY, "refunded", 500.0)],
        "failed": [(MADE + 5 * DAY, "failed", 500.0)],
        "at the amount": [(MADE + 5 * DAY, "completed", 300.0)],
        "small then large": [(MADE + 2 * DAY, "completed", 20.0),
                             (MADE + 20 * DAY, "completed", 320.0)],
        "no events": [],
    }
    expected = {"inside": 1, "at the horizon's end": 1, "small then large": 1}
    entities = list(cases)
    ids = dict(zip(entities, _predictions(database, entities), strict=True))
    _events(database, customers, [(entity, *event) for entity, events in cases.items()
                                  for event in events])
    _events(database, customers, [("someone else", MADE + 40 * DAY, "failed", 1.0)])

    assert derive_outcomes(database, customers) == len(cases)
    outcomes = _outcomes(database)
    assert {entity: outcomes[ids[entity]] for entity in entities} == {
        entity: (expected.get(entity, 0), "derived") for entity in entities}


def test_nothing_is_labelled_before_the_events_cover_the_horizon(
        database: Database, customers: DatasetSpec) -> None:
    """A large purchase 3 days in is known early, but a 0 is not: labelling the early 1s
    alone would flatter live accuracy. Both wait for an event 30 days on."""
    buyer, idle = _predictions(database, ["buyer", "idle"])
    _events(database, customers, [("buyer", MADE + 3 * DAY, "completed", 800.0),
                                  ("idle", MADE + 29 * DAY, "completed", 10.0)])
    assert derive_outcomes(database, customers) == 0 and _outcomes(database) == {}
    _events(database, customers, [("idle", MADE + 30 * DAY + timedelta(minutes=1),
                                   "completed", 10.0)])
    assert derive_outcomes(database, customers) == 2
    assert _outcomes(database) == {buyer: (1, "derived"), idle: (0, "derived")}


def test_an_outcome_a_caller_sent_is_kept_and_a_rerun_adds_nothing(
        database: Database, customers: DatasetSpec) -> None:
    sent, derived = _predictions(database, ["buyer", "buyer"])
    assert save_feedback(database, "customers", sent, 0) == 0
    _events(database, customers, [("buyer", MADE + 3 * DAY, "completed", 800.0),
                                  ("buyer", MADE + 40 * DAY, "failed", 1.0)])
    assert derive_outcomes(database, customers) == 1
    first = _received(database)
    assert _outcomes(database) == {sent: (0, "api"), derived: (1, "derived")}

    assert derive_outcomes(database, customers) == 0
    assert _received(database) == first
    save_feedback(database, "customers", derived, 0)  # a caller's word replaces a derived one
    assert _outcomes(database) == {sent: (0, "api"), derived: (0, "api")}
    assert derive_outcomes(database, customers) == 0
    assert _outcomes(database)[derived] == (0, "api")


def _received(database: Database) -> dict[str, datetime]:
    with database.session() as session:
        return {row.prediction_id: as_utc(row.received_at)
                for row in session.execute(select(Feedback.prediction_id, Feedback.received_at))}


def test_a_turn_labels_the_newest_first_and_the_next_turns_the_rest(
        database: Database, customers: DatasetSpec) -> None:
    """At most `limit` a turn; the backlog left behind is not skipped by the turns after."""
    ids = _predictions(database, [f"c{number}" for number in range(7)])
    _events(database, customers, [("c0", MADE + 40 * DAY, "failed", 1.0)])
    assert derive_outcomes(database, customers, limit=3) == 3
    assert set(_outcomes(database)) == set(ids[-3:])
    assert derive_outcomes(database, customers, limit=3) == 3
    assert derive_outcomes(database, customers, limit=3) == 1
    assert set(_outcomes(database)) == set(ids)
    assert derive_outcomes(database, customers, limit=3) == 0


def test_a_prediction_logged_late_is_still_labelled(database: Database,
                                                    customers: DatasetSpec) -> None:
    """Predictions reach the log in batches, or after a spill: one made before the turn that
    labelled its neighbours, written after it, gets its outcome at the next turn."""
    made = datetime.now(UTC) - DAY
    first, = _predictions(database, ["c1"], made=made)
    _events(database, customers, [("c1", made + 40 * DAY, "completed", 400.0)])
    assert derive_outcomes(database, customers) == 1
    late, = _predictions(database, ["c1"], made=made - timedelta(minutes=5))
    assert derive_outcomes(database, customers) == 1
    assert set(_outcomes(database)) == {first, late}


def test_only_this_dataset_s_predictions_of_an_entity(database: Database,
                                                      customers: DatasetSpec) -> None:
    _predictions(database, [None])  # a record without its key
    _predictions(database, ["c1"], dataset="churn")
    _events(database, customers, [("c1", MADE + 40 * DAY, "completed", 400.0)])
    assert derive_outcomes(database, customers) == 0
    assert derive_outcomes(database, load_spec("titanic")) == 0  # its target is no future event
    assert _outcomes(database) == {}


def test_the_outcomes_job_derives_them_and_so_does_the_drift_job_first(
        database: Database, customers: DatasetSpec, tmp_path: Path) -> None:
    """What the scheduler and Airflow run: `outcomes` alone, and `drift`, which derives before
    it checks (here nothing serves yet, so there is no check)."""
    settings = make_settings(tmp_path / "home", database.url, dataset="customers")
    context = JobContext(settings, database, customers)
    _predictions(database, ["c1", "c2"])
    _events(database, customers, [("c1", MADE + 40 * DAY, "completed", 400.0)])
    assert run(context, "outcomes", "cli").counts == {"derived": 2}
    _predictions(database, ["c2"], made=MADE + 20 * DAY)
    _events(database, customers, [("c1", MADE + 55 * DAY, "completed", 400.0)])
    assert run(context, "drift", "schedule").counts == {
        "derived": 1, "checked": 0, "drifted": 0, "retrain_due": 0, "retrained": 0}

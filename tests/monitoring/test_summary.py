"""The Monitoring tab's summary, on SQLite and PostgreSQL: every prediction counted by the
database (over time and by probability), and each drift check's corrected cut-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from lifeboat.db import Database, DriftReport, Feedback, Prediction
from lifeboat.monitoring import monitoring_summary

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LOGGED = 6000  # more than the 5,000 the tab used to read


def _log(database: Database, count: int, every: timedelta, dataset: str = "titanic") -> None:
    """`count` predictions, `every` apart from START; every third one "survived", with a
    probability that walks 0, 0.001, ..., 0.999 and back to 0."""
    rows = [{"id": f"{dataset}-{n:06d}", "created_at": START + n * every, "dataset": dataset,
             "source": "batch", "input": {}, "prediction": int(n % 3 == 0),
             "label": "survived" if n % 3 == 0 else "died", "probability": (n % 1000) / 1000,
             "model_name": "m", "model_version": "1", "latency_ms": 1.0}
            for n in range(count)]
    with database.session() as session:
        session.execute(insert(Prediction), rows)


def test_predictions_over_time_count_every_prediction(database: Database) -> None:
    _log(database, LOGGED, timedelta(seconds=30))  # 50 hours
    _log(database, 10, timedelta(seconds=1), dataset="customers")
    summary = monitoring_summary(database, "titanic")
    assert summary.predictions == LOGGED
    assert (summary.bucket, summary.bucket_seconds) == ("1h", 3600)
    counted = summary.predictions_over_time
    assert sum(point.count for point in counted) == LOGGED
    assert sum(point.count for point in counted if point.label == "survived") == LOGGED // 3
    assert counted[0].bucket == START and counted[-1].bucket == START + timedelta(hours=49)
    assert {point.count for point in counted} == {40, 80}  # per hour: 120 by class


def test_buckets_start_on_whole_units_whatever_the_first_moment(database: Database) -> None:
    first = START + timedelta(minutes=7, seconds=13, microseconds=450_000)
    with database.session() as session:
        session.add_all(Prediction(
            id=f"p{n}", created_at=first + timedelta(seconds=n), dataset="titanic", source="api",
            input={}, prediction=0, label="died", probability=0.2, model_name="m",
            model_version="1", latency_ms=1.0) for n in range(3))
    summary = monitoring_summary(database, "titanic")
    assert summary.bucket == "1min"
    assert [(p.bucket, p.count) for p in summary.predictions_over_time] == [
        (START + timedelta(minutes=7), 3)]


def test_the_probability_histogram_counts_every_prediction_in_5_percent_bins(
        database: Database) -> None:
    _log(database, LOGGED, timedelta(seconds=1))
    bins = monitoring_summary(database, "titanic").probabilities
    assert [(b.start, b.end) for b in bins[:2]] == [(0.0, 0.05), (0.05, 0.1)]
    assert len(bins) == 20 and bins[-1].end == 1.0
    assert [b.count for b in bins] == [LOGGED // 20] * 20  # 50 of each 1,000 per bin


def test_live_accuracy_counts_every_labelled_prediction(database: Database) -> None:
    _log(database, LOGGED, timedelta(seconds=30))
    with database.session() as session:  # every survivor's outcome; died for the first 1,000
        session.execute(insert(Feedback), [
            {"prediction_id": f"titanic-{n:06d}", "actual": 0 if n < 1000 else 1,
             "received_at": START, "source": "api"} for n in range(0, LOGGED, 3)])
    points = monitoring_summary(database, "titanic").live_accuracy
    assert sum(point.samples for point in points) == LOGGED // 3
    assert sum(point.accuracy * point.samples for point in points) == pytest.approx(
        LOGGED // 3 - 334)  # 0, 3, ..., 999: 334 survivors who died


def _report(database: Database, p_values: list[float | None], correction: str) -> None:
    features = [{"feature": f"f{n}", "test": "ks", "statistic": 0.1, "p_value": p, "psi": 0.0,
                 "drifted": False, "missing_share": 0.0, "reference_missing_share": 0.0}
                for n, p in enumerate(p_values)]
    with database.session() as session:
        session.add(DriftReport(
            dataset="titanic", model_name="m", model_version="1", window_start=START,
            window_end=START, window_size=100, drifted=True, drift_share=2 / 7, p_value=0.05,
            correction=correction, features=features, prediction_drift={}, html=""))


@pytest.mark.parametrize(("correction", "threshold"), [
    ("bonferroni", 0.05 / 7),  # whatever was flagged: 0.004 was, the cut-off is 0.0071
    ("fdr", 0.05 * 3 / 7),  # Benjamini-Hochberg: the third smallest is under 0.05 * 3 / 7
])
def test_the_drift_threshold_is_the_corrected_cut_off_of_each_check(
        database: Database, correction: str, threshold: float) -> None:
    _report(database, [0.9, 1e-5, 0.004, 0.009, 0.2, 0.3, None], correction)
    (check,) = monitoring_summary(database, "titanic").drift
    assert check.threshold == pytest.approx(threshold)

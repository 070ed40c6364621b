"""The monitoring loop's metrics come from the database (any process may have written the
rows); the service's own counts add up across worker processes."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lifeboat.config import Settings
from lifeboat.db import Database, DriftReport, Feedback, IngestionRun, Prediction, Retrain
from lifeboat.metrics import exposition
from lifeboat.monitoring.collector import MonitoringCollector
from lifeboat.monitoring.live_accuracy import (
    LiveAccuracy,
    estimated_accuracy,
    live_accuracy,
    roc_auc,
)
from tests.support.live_server import serving_with_workers

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _prediction(number: int, predicted: int, version: str = "3",
                probability: float = 0.5) -> Prediction:
    return Prediction(id=f"p{number:04d}", created_at=NOW + timedelta(seconds=number),
                      dataset="titanic", source="api", input={}, prediction=predicted,
                      label="survived" if predicted else "died", probability=probability,
                      model_name="m", model_version=version, latency_ms=1.0)


def _label(database: Database, outcomes: list[tuple[int, int]], version: str = "3",
           probabilities: list[float] | None = None) -> None:
    """(predicted, actual) pairs, oldest first, as logged predictions with feedback."""
    probabilities = probabilities or [0.5] * len(outcomes)
    with database.session() as session:
        for number, (predicted, actual) in enumerate(outcomes):
            prediction = _prediction(number, predicted, version, probabilities[number])
            session.add(prediction)
            session.flush()
            session.add(Feedback(prediction_id=prediction.id, actual=actual, received_at=NOW))


def _value(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_live_accuracy_counts_the_latest_labelled_predictions_of_the_serving_version(
        database: Database) -> None:
    # 10 old misses, then 8 hits and 2 misses; another version's labels do not count
    _label(database, [(1, 0)] * 10 + [(1, 1)] * 8 + [(0, 1)] * 2)
    with database.session() as session:
        other = _prediction(999, 1, version="2")
        session.add(other)
        session.flush()
        session.add(Feedback(prediction_id=other.id, actual=0, received_at=NOW))
    latest = live_accuracy(database, "titanic", "3", heldout_accuracy=0.9, window=10)
    assert (latest.accuracy, latest.samples) == (0.8, 10)
    assert latest.drop == pytest.approx(0.1)
    everything = live_accuracy(database, "titanic", "3", heldout_accuracy=None, window=100)
    assert (everything.accuracy, everything.samples, everything.drop) == (0.4, 20, None)
    nothing = live_accuracy(database, "titanic", "9", heldout_accuracy=0.9, window=10)
    assert (nothing.accuracy, nothing.samples, nothing.drop) == (None, 0, None)


def test_live_roc_auc_ranks_the_window_s_probabilities_against_its_outcomes(
        database: Database) -> None:
    """The same window as live accuracy; none while one class alone came back."""
    probabilities = [0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.4, 0.1, 0.65, 0.35]
    outcomes = [(int(p >= 0.5), actual) for p, actual in
                zip(probabilities, [1, 1, 0, 0, 0, 1, 1, 0, 0, 1], strict=True)]
    _label(database, [(0, 0)] * 5 + outcomes, probabilities=[0.5] * 5 + probabilities)
    latest = live_accuracy(database, "titanic", "3", heldout_accuracy=None, window=10)
    assert latest.accuracy == 0.6
    assert latest.roc_auc == pytest.approx(roc_auc_score([a for _, a in outcomes], probabilities))
    newest = live_accuracy(database, "titanic", "3", heldout_accuracy=None, window=1)
    assert (newest.accuracy, newest.roc_auc) == (0.0, None)


def test_roc_auc_counts_ties_half_as_scikit_learn_does() -> None:
    rng = np.random.default_rng(3)
    actual = rng.integers(0, 2, 500)
    probability = np.round(rng.random(500) * 0.5 + actual * 0.3, 1)  # many ties
    assert roc_auc(actual, probability) == pytest.approx(roc_auc_score(actual, probability))
    assert roc_auc(np.ones(5), np.linspace(0, 1, 5)) is None


def test_estimated_accuracy_is_the_chance_each_served_class_is_right() -> None:
    """A prediction served as 1 (p at or above the threshold) is right with chance p, one
    served as 0 with chance 1 - p."""
    window = np.array([0.9, 0.2, 0.6, 0.5])
    assert estimated_accuracy(window, 0.5) == pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4)
    assert estimated_accuracy(window, 0.7) == pytest.approx((0.9 + 0.8 + 0.4 + 0.5) / 4)


def test_estimated_accuracy_matches_the_accuracy_of_calibrated_probabilities() -> None:
    """Outcomes drawn with the stated probabilities: the estimate made without them is the
    accuracy measured with them, within sampling noise (CBPE's premise)."""
    rng = np.random.default_rng(11)
    probability = rng.beta(0.6, 0.9, 20_000)
    actual = rng.random(20_000) < probability
    for threshold in (0.3, 0.5, 0.62):
        measured = ((probability >= threshold) == actual).mean()
        assert estimated_accuracy(probability, threshold) == pytest.approx(measured, abs=0.01)


def test_the_collector_reads_drift_retrains_accuracy_and_ingestion_from_the_database(
        database: Database) -> None:
    with database.session() as session:
        for drifted, share, age_p in ((False, 0.0, 0.4), (True, 0.25, 0.0001)):
            session.add(DriftReport(
                dataset="titanic", model_name="m", model_version="3", window_start=NOW,
                window_end=NOW, window_size=200, drifted=drifted, drift_share=share,
                p_value=0.05, correction="bonferroni", html="<html></html>",
                features=[{"feature": "age", "p_value": age_p, "psi": 0.3},
                          {"feature": "sex", "p_value": 0.5, "psi": 0.01}],
                prediction_drift={"class_mix": {"p_value": 0.2}, "probability": {"p_value": 0.3}},
                estimated_accuracy=0.9 - share))
            session.flush()
        session.add_all([Retrain(dataset="titanic", reason="drift", status="promoted"),
                         Retrain(dataset="titanic", reason="drift", status="kept_champion"),
                         Retrain(dataset="titanic", reason="drift", status="promoted")])
        session.add(IngestionRun(dataset="titanic", source="f.csv", checksum="x", status="done",
                                 finished_at=NOW, rows_total=40, rows_rejected=10))
    collector = MonitoringCollector(database, "titanic",
                                    lambda: LiveAccuracy("3", 0.75, 120, heldout_accuracy=0.8,
                                                         roc_auc=0.81))
    text = exposition(collector)[0].decode()
    titanic = 'dataset="titanic"'
    assert _value(text, f"lifeboat_drift_checks_total{{{titanic}}}") == 2
    assert _value(text, f"lifeboat_drift_detected_total{{{titanic}}}") == 1
    assert _value(text, f"lifeboat_drift_share{{{titanic}}}") == 0.25
    assert _value(text, f'lifeboat_feature_drift_p_value{{{titanic},feature="age"}}') == 0.0001
    assert _value(text, f'lifeboat_feature_psi{{{titanic},feature="age"}}') == 0.3
    assert _value(text, f'lifeboat_prediction_drift_p_value{{{titanic},signal="class_mix"}}') == 0.2
    assert _value(text, f'lifeboat_retrains_total{{{titanic},outcome="promoted",reason="drift"}}') == 2
    assert _value(text, f'lifeboat_retrains_total{{{titanic},outcome="kept_champion",'
                        'reason="drift"}') == 1
    assert _value(text, f"lifeboat_live_accuracy{{{titanic}}}") == 0.75
    assert _value(text, f"lifeboat_live_accuracy_drop{{{titanic}}}") == pytest.approx(0.05)
    assert _value(text, f"lifeboat_live_roc_auc{{{titanic}}}") == 0.81
    assert _value(text, f"lifeboat_estimated_accuracy{{{titanic}}}") == 0.65  # the latest's
    assert _value(text, f"lifeboat_last_ingestion_rejected_ratio{{{titanic}}}") == 0.25


def test_two_datasets_collectors_make_one_family_per_metric_with_a_series_each(
        database: Database) -> None:
    """The text format allows each name once: one service serving two datasets must merge
    their collectors' families, not print them one after the other."""
    with database.session() as session:
        session.add_all([Retrain(dataset="titanic", reason="drift", status="promoted"),
                         Retrain(dataset="customers", reason="manual", status="failed"),
                         Retrain(dataset="customers", reason="manual", status="failed")])
    text = exposition(MonitoringCollector(database, "titanic", lambda: None),
                      MonitoringCollector(database, "customers",
                                          lambda: LiveAccuracy("1", 0.5, 60, heldout_accuracy=0.7)))[0]
    text = text.decode()
    families = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    assert len(families) == len(set(families)) and "lifeboat_retrains_total" in families
    assert _value(text, 'lifeboat_retrains_total{dataset="titanic",outcome="promoted",'
                        'reason="drift"}') == 1
    assert _value(text, 'lifeboat_retrains_total{dataset="customers",outcome="failed",'
                        'reason="manual"}') == 2
    assert _value(text, 'lifeboat_drift_checks_total{dataset="titanic"}') == 0
    assert _value(text, 'lifeboat_drift_checks_total{dataset="customers"}') == 0
    assert _value(text, 'lifeboat_live_accuracy{dataset="customers"}') == 0.5
    assert 'lifeboat_live_accuracy{dataset="titanic"}' not in text
    assert "lifeboat_live_roc_auc" not in text  # one class only, or no outcome: no AUC


def test_a_database_outage_leaves_the_process_metrics_in_the_scrape(tmp_path) -> None:
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:1/none")
    collector = MonitoringCollector(unreachable, "titanic", lambda: None)
    text = exposition(collector)[0].decode()
    assert "lifeboat_prediction_log_pending" in text
    assert "lifeboat_drift_checks_total" not in text
    unreachable.dispose()


def test_a_second_running_retrain_of_a_dataset_is_refused_by_the_database(
        database: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with database.session() as session:
        session.add(Retrain(dataset="titanic", reason="drift", status="running"))
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(Retrain(dataset="titanic", reason="accuracy", status="running"))
    with database.session() as session:  # a finished one, or another dataset, is fine
        session.add_all([Retrain(dataset="titanic", reason="drift", status="promoted"),
                         Retrain(dataset="customers", reason="drift", status="running")])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_count_every_prediction_once_in_metrics(trained_settings: Settings,
                                                            tmp_path) -> None:
    with serving_with_workers(trained_settings.home, tmp_path / "metrics") as base:
        record = {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female"}
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            assert httpx.post(base + "/predict", json=record).status_code == 200
        text = httpx.get(base + "/metrics").text
    assert len(list((tmp_path / "metrics").glob("counter_*.db"))) == 2  # both workers counted
    counted = re.findall(r'^lifeboat_predictions_total\{[^}]*\} (\S+)$', text, re.MULTILINE)
    assert sum(map(float, counted)) == 40
    assert _value(text, 'lifeboat_prediction_latency_seconds_count{dataset="titanic"}') == 40

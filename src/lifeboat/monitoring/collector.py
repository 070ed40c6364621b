"""The monitoring loop's metrics, read from the database when Prometheus scrapes.

Drift reports, retrains and feedback are rows that any process may have written (the
service, `lifeboat drift`, the scheduler, Airflow): reading them at scrape time makes
every worker report the same values, and a restart loses none of them. Each scrape costs
a few indexed queries, every 15 s or so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Row, func, select

from lifeboat.db import Database, DriftReport, IngestionRun, JobRun, Retrain
from lifeboat.db.models import as_utc
from lifeboat.monitoring.live_accuracy import LiveAccuracy


class MonitoringCollector(Collector):
    """`accuracy` gives the serving model's live accuracy (None while no model serves)."""

    def __init__(self, database: Database, dataset: str,
                 accuracy: Callable[[], LiveAccuracy | None]) -> None:
        self.database = database
        self.dataset = dataset
        self.accuracy = accuracy

    def collect(self) -> Iterator[Metric]:
        yield from self._drift()
        yield from self._retrains()
        yield from self._accuracy()
        yield from self._ingestion()
        yield from self._jobs()

    def _drift(self) -> Iterator[Metric]:
        with self.database.session() as session:
            checks, detected = session.execute(
                select(func.count(), func.count().filter(DriftReport.drifted))
                .where(DriftReport.dataset == self.dataset)).one()
            latest = session.execute(  # the numbers only, not the report's page
                select(DriftReport.drift_share, DriftReport.features, DriftReport.prediction_drift)
                .where(DriftReport.dataset == self.dataset)
                .order_by(DriftReport.created_at.desc(), DriftReport.id.desc()).limit(1)).first()
        yield CounterMetricFamily("lifeboat_drift_checks", "Windowed drift checks run.",
                                  value=checks)
        yield CounterMetricFamily("lifeboat_drift_detected",
                                  "Drift checks that found drift after multiple-testing "
                                  "correction.", value=detected)
        if latest is None:
            return
        yield GaugeMetricFamily("lifeboat_drift_share",
                                "Share of features drifted in the latest check.",
                                value=latest.drift_share)
        yield _per_feature(latest, "p_value", "lifeboat_feature_drift_p_value",
                           "Latest check's p-value per feature (KS or chi-squared), uncorrected.")
        yield _per_feature(latest, "psi", "lifeboat_feature_psi",
                           "Latest check's population stability index per feature.")
        signals = GaugeMetricFamily("lifeboat_prediction_drift_p_value",
                                    "Latest check's p-value of prediction drift, by signal.",
                                    labels=["signal"])
        for signal, result in latest.prediction_drift.items():
            if isinstance(result, dict) and result.get("p_value") is not None:
                signals.add_metric([signal], result["p_value"])
        yield signals

    def _retrains(self) -> Iterator[Metric]:
        with self.database.session() as session:
            counts = session.execute(
                select(Retrain.reason, Retrain.status, func.count())
                .where(Retrain.dataset == self.dataset)
                .group_by(Retrain.reason, Retrain.status)).all()
        family = CounterMetricFamily("lifeboat_retrains", "Retrains, by what started them and "
                                     "how they ended.", labels=["reason", "outcome"])
        for reason, outcome, count in counts:
            family.add_metric([reason, outcome], count)
        yield family

    def _accuracy(self) -> Iterator[Metric]:
        live = self.accuracy()
        if live is None:
            return
        yield GaugeMetricFamily("lifeboat_live_accuracy_samples",
                                "Labelled predictions live accuracy is measured on.",
                                value=live.samples)
        if live.accuracy is not None:
            yield GaugeMetricFamily("lifeboat_live_accuracy",
                                    "Accuracy of the serving model on its recent labelled "
                                    "predictions (feedback).", value=live.accuracy)
        if live.drop is not None:
            yield GaugeMetricFamily("lifeboat_live_accuracy_drop",
                                    "Held-out accuracy minus live accuracy.", value=live.drop)

    def _ingestion(self) -> Iterator[Metric]:
        with self.database.session() as session:
            latest = session.execute(
                select(IngestionRun.rows_total, IngestionRun.rows_rejected)
                .where(IngestionRun.dataset == self.dataset, IngestionRun.finished_at.is_not(None))
                .order_by(IngestionRun.finished_at.desc()).limit(1)).first()
        if latest is not None and latest.rows_total:
            yield GaugeMetricFamily("lifeboat_last_ingestion_rejected_ratio",
                                    "Share of the latest ingestion run's rows rejected by "
                                    "validation.", value=latest.rows_rejected / latest.rows_total)

    def _jobs(self) -> Iterator[Metric]:
        with self.database.session() as session:
            counts = session.execute(
                select(JobRun.job, JobRun.trigger, JobRun.status, func.count())
                .where(JobRun.dataset == self.dataset)
                .group_by(JobRun.job, JobRun.trigger, JobRun.status)).all()
            succeeded = session.execute(
                select(JobRun.job, func.max(JobRun.finished_at))
                .where(JobRun.dataset == self.dataset, JobRun.status == "succeeded")
                .group_by(JobRun.job)).all()
        # `job_name`, not `job`: Prometheus's own `job` label (the scrape job) would rename it.
        runs = CounterMetricFamily("lifeboat_job_runs", "Job runs (ingest, score, drift, "
                                   "pipeline), by trigger and status.",
                                   labels=["job_name", "trigger", "status"])
        for job, trigger, status, count in counts:
            runs.add_metric([job, trigger, status], count)
        yield runs
        last = GaugeMetricFamily("lifeboat_job_last_success_timestamp_seconds",
                                 "When each job last succeeded (Unix time).",
                                 labels=["job_name"])
        for job, finished_at in succeeded:
            last.add_metric([job], as_utc(finished_at).timestamp())
        yield last


def _per_feature(report: Row, key: str, name: str, documentation: str) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["feature"])
    for feature in report.features:
        if feature.get(key) is not None:
            family.add_metric([feature["feature"]], feature[key])
    return family

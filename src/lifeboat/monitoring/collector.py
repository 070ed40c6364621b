"""The monitoring loop's metrics, read from the database when Prometheus scrapes.

Drift reports, retrains and outcomes are rows that any process may have written (the
service, `lifeboat drift`, the scheduler, Airflow): reading them at scrape time makes
every worker report the same values, and a restart loses none of them. Each scrape costs
a few indexed queries, every 15 s or so.

Every family carries a `dataset` label: a service serving several datasets has one collector
per dataset, and `exposition` merges their families into one per name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Row, func, select

from lifeboat.db import DUPLICATE_RUN, Database, DriftReport, IngestionRun, JobRun, Retrain, as_utc
from lifeboat.monitoring.live_accuracy import LiveAccuracy

Family = TypeVar("Family", CounterMetricFamily, GaugeMetricFamily)


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

    def _family(self, kind: type[Family], name: str, documentation: str,
                labels: tuple[str, ...] = ()) -> Family:
        return kind(name, documentation, labels=["dataset", *labels])

    def _single(self, kind: type[Family], name: str, documentation: str,
                value: float) -> Family:
        family = self._family(kind, name, documentation)
        family.add_metric([self.dataset], value)
        return family

    def _drift(self) -> Iterator[Metric]:
        with self.database.session() as session:
            checks, detected = session.execute(
                select(func.count(), func.count().filter(DriftReport.drifted))
                .where(DriftReport.dataset == self.dataset)).one()
            latest = session.execute(  # the numbers only, not the report's page
                select(DriftReport.drift_share, DriftReport.features, DriftReport.prediction_drift,
                       DriftReport.estimated_accuracy)
                .where(DriftReport.dataset == self.dataset)
                .order_by(DriftReport.created_at.desc(), DriftReport.id.desc()).limit(1)).first()
        yield self._single(CounterMetricFamily, "lifeboat_drift_checks",
                           "Windowed drift checks run.", checks)
        yield self._single(CounterMetricFamily, "lifeboat_drift_detected",
                           "Drift checks that found drift after multiple-testing correction.",
                           detected)
        if latest is None:
            return
        yield self._single(GaugeMetricFamily, "lifeboat_drift_share",
                           "Share of features drifted in the latest check.", latest.drift_share)
        if latest.estimated_accuracy is not None:
            yield self._single(GaugeMetricFamily, "lifeboat_estimated_accuracy",
                               "Accuracy the latest check's window should have by its "
                               "calibrated probabilities at the serving threshold (CBPE), "
                               "without labels.", latest.estimated_accuracy)
        yield self._per_feature(latest, "p_value", "lifeboat_feature_drift_p_value",
                                "Latest check's p-value per feature (KS or chi-squared), "
                                "uncorrected.")
        yield self._per_feature(latest, "psi", "lifeboat_feature_psi",
                                "Latest check's population stability index per feature.")
        signals = self._family(GaugeMetricFamily, "lifeboat_prediction_drift_p_value",
                               "Latest check's p-value of prediction drift, by signal.",
                               ("signal",))
        for signal, result in latest.prediction_drift.items():
            if isinstance(result, dict) and result.get("p_value") is not None:
                signals.add_metric([self.dataset, signal], result["p_value"])
        yield signals

    def _per_feature(self, report: Row, key: str, name: str, documentation: str) -> Metric:
        family = self._family(GaugeMetricFamily, name, documentation, ("feature",))
        for feature in report.features:
            if feature.get(key) is not None:
                family.add_metric([self.dataset, feature["feature"]], feature[key])
        return family

    def _retrains(self) -> Iterator[Metric]:
        with self.database.session() as session:
            counts = session.execute(
                select(Retrain.reason, Retrain.status, func.count())
                .where(Retrain.dataset == self.dataset)
                .group_by(Retrain.reason, Retrain.status)).all()
        family = self._family(CounterMetricFamily, "lifeboat_retrains",
                              "Retrains, by what started them and how they ended.",
                              ("reason", "outcome"))
        for reason, outcome, count in counts:
            family.add_metric([self.dataset, reason, outcome], count)
        yield family

    def _accuracy(self) -> Iterator[Metric]:
        live = self.accuracy()
        if live is None:
            return
        yield self._single(GaugeMetricFamily, "lifeboat_live_accuracy_samples",
                           "Labelled predictions live accuracy is measured on.", live.samples)
        if live.accuracy is not None:
            yield self._single(GaugeMetricFamily, "lifeboat_live_accuracy",
                               "Accuracy of the serving model on its recent labelled "
                               "predictions (feedback or derived outcomes).", live.accuracy)
        if live.roc_auc is not None:
            yield self._single(GaugeMetricFamily, "lifeboat_live_roc_auc",
                               "ROC AUC of the serving model's probabilities on the same "
                               "labelled predictions, when both classes are among them.",
                               live.roc_auc)
        if live.drop is not None:
            yield self._single(GaugeMetricFamily, "lifeboat_live_accuracy_drop",
                               "Held-out accuracy minus live accuracy.", live.drop)

    def _ingestion(self) -> Iterator[Metric]:
        with self.database.session() as session:
            latest = session.execute(
                select(IngestionRun.rows_total, IngestionRun.rows_rejected)
                .where(IngestionRun.dataset == self.dataset, IngestionRun.finished_at.is_not(None),
                       IngestionRun.status != DUPLICATE_RUN)  # it validated nothing
                .order_by(IngestionRun.finished_at.desc()).limit(1)).first()
        if latest is not None and latest.rows_total:
            yield self._single(GaugeMetricFamily, "lifeboat_last_ingestion_rejected_ratio",
                               "Share of the latest ingestion run's rows rejected by "
                               "validation.", latest.rows_rejected / latest.rows_total)

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
        runs = self._family(CounterMetricFamily, "lifeboat_job_runs",
                            "Job runs (ingest, score, drift, pipeline), by trigger and status.",
                            ("job_name", "trigger", "status"))
        for job, trigger, status, count in counts:
            runs.add_metric([self.dataset, job, trigger, status], count)
        yield runs
        last = self._family(GaugeMetricFamily, "lifeboat_job_last_success_timestamp_seconds",
                            "When each job last succeeded (Unix time).", ("job_name",))
        for job, finished_at in succeeded:
            last.add_metric([self.dataset, job], as_utc(finished_at).timestamp())
        yield last

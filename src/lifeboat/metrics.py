"""Prometheus metrics, named by Prometheus conventions (counters end in `_total`, durations
in `_seconds`; labels have few values).

Two kinds. What a process does (predictions served, rows ingested) is counted where it
happens, in prometheus-client's default registry, or, when the service runs several worker
processes, in the shared files of its multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`), which
/metrics sums. What the monitoring loop decides (drift reports, live accuracy, retrains) is
read from the database at scrape time: a drift check run by the CLI, the scheduler or
Airflow is visible through any worker, and a restart loses none of it.

One service may serve several datasets: every metric about one dataset's model or data
carries a `dataset` label (an extension of the design's metric contract), so their series
never mix. What the process shares between datasets (the prediction log, HTTP requests) has
none.

Several processes are scraped (the serving replicas, the jobs process), each with its
`instance` label: what a process counts is summed across instances, what the database says
is the same on every replica and is taken once (`max`), never summed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

INGESTED_ROWS = Counter(
    "lifeboat_ingested_rows", "Rows read by ingestion, by outcome.", ["dataset", "status"]
)
VALIDATION_ISSUES = Counter(
    "lifeboat_validation_issues", "Problems found by row-level validation, by issue type.",
    ["dataset", "issue"]
)
PREDICTIONS = Counter(
    "lifeboat_predictions",
    "Predictions served, by dataset, model version, source and predicted class.",
    ["dataset", "model_version", "source", "prediction"],
)
PREDICTION_LATENCY = Histogram(
    "lifeboat_prediction_latency_seconds",
    "Time to score a prediction: features and model, per record of a request.",
    ["dataset"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
PREDICTION_PROBABILITY = Histogram(
    "lifeboat_prediction_probability", "The positive class's predicted probability.",
    ["dataset"],
    buckets=tuple(round(0.1 * step, 1) for step in range(1, 11)),
)
OUTLIERS = Counter(
    "lifeboat_prediction_outliers",
    "Served records with a value outside the training range or a category training never "
    "saw, by field (an outlier, not drift).",
    ["dataset", "feature"],
)
MODEL_INFO = Gauge(
    "lifeboat_model_info", "1 for the model version a serving process has loaded, per dataset.",
    ["dataset", "name", "version"], multiprocess_mode="livemax",
)
SHADOW_PREDICTIONS = Counter(
    "lifeboat_shadow_predictions",
    "Served predictions also scored by the challenger (shadow mode), by whether the two "
    "predicted the same class.",
    ["dataset", "champion_version", "challenger_version", "agreement"],
)
PREDICTION_LOG_PENDING = Gauge(
    "lifeboat_prediction_log_pending",
    "Served predictions not yet in the database: queued in memory, or spilled to disk.",
    ["where"], multiprocess_mode="livesum",
)
PREDICTION_LOG_WRITTEN = Counter(
    "lifeboat_prediction_log_written", "Predictions written to the database by the log's writer."
)
PREDICTION_LOG_SPILLED = Counter(
    "lifeboat_prediction_log_spilled",
    "Predictions left to the journal on disk because the database could not take them (or "
    "the queue was full), to be replayed.",
)
ONLINE_STORE_REFILLS = Counter(
    "lifeboat_online_store_refills",
    "Times the service found the online store without its feature view (Redis restarted "
    "or flushed) and refilled it from the offline store.", ["dataset"],
)
PREDICTION_LOG_REJECTED = Counter(
    "lifeboat_prediction_log_rejected",
    "Predictions the database refused outright (a value it will never take), set aside on disk.",
)

HTTP_REQUESTS = Counter(
    "lifeboat_http_requests",
    "HTTP requests answered, by method, route template (`unmatched` for a path no route "
    "serves) and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "lifeboat_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SCHEDULER_HEARTBEAT = Gauge(
    "lifeboat_scheduler_heartbeat_timestamp_seconds",
    "When the scheduler last finished a turn of a job (Unix time), whatever the run's "
    "outcome: a stuck or dead scheduler stops it.",
    ["dataset", "job_name"], multiprocess_mode="livemax",
)
SCHEDULER_INTERVAL = Gauge(
    "lifeboat_scheduler_interval_seconds",
    "How often the scheduler runs a job: the heartbeat's expected period.",
    ["dataset", "job_name"], multiprocess_mode="livemax",
)


def scheduler_turn(dataset: str, job: str, interval: float) -> None:
    """Marks a finished turn of a scheduled job. `job_name`, not `job`: Prometheus's own
    `job` label (the scrape job) would rename it."""
    SCHEDULER_INTERVAL.labels(dataset, job).set(interval)
    SCHEDULER_HEARTBEAT.labels(dataset, job).set(time.time())


def serve_process_metrics(host: str, port: int) -> bool:
    """Serves this process's own metrics at http://host:port/metrics (the jobs process's:
    its heartbeat, the rows its ingestion counted), from a thread. False, with a warning,
    when the port is taken: the jobs must run without their metrics rather than not at all.
    Only this process's registry, even in multiprocess mode: the serving workers' shared
    files are the service's /metrics to sum, and summing them here too would count twice."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        log.warning("the jobs' metrics are not served on %s:%s: %s", host, port, exc)
        return False
    log.info("the jobs' metrics are served on http://%s:%s/metrics", host, port)
    return True


def share_between_processes(folder: Path) -> None:
    """Makes processes started from now on (the service's workers) count into `folder`,
    which /metrics sums; counts left there by an earlier run are dropped."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(folder)


def exposition(*collectors: Collector) -> tuple[bytes, str]:
    """The text /metrics answers: this process's (or all workers') metrics, then the
    given collectors' (read from the database at this moment)."""
    if os.environ.get(MULTIPROCESS_DIR):
        process = CollectorRegistry()
        MultiProcessCollector(process)
    else:
        process = REGISTRY
    scraped = generate_latest(_Merged(collectors)) if collectors else b""
    return generate_latest(process) + scraped, CONTENT_TYPE_LATEST


class _Merged(Collector):
    """Several collectors as one: families of the same name (one per dataset, told apart
    by their labels) become one family, since the text format allows a name only once."""

    def __init__(self, collectors: tuple[Collector, ...]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for collector in self.collectors:
            for metric in _scraped(collector):
                if metric.name in families:
                    families[metric.name].samples.extend(metric.samples)
                else:
                    families[metric.name] = metric
        yield from families.values()


def _scraped(collector: Collector) -> list[Metric]:
    """One collector's metrics; none when its source is down, so a database outage does
    not take the process metrics (which show the outage) down with it."""
    try:
        return list(collector.collect())
    except Exception:  # noqa: BLE001 - any failure of the source: skip it this scrape
        log.warning("metrics from %s are left out of this scrape", type(collector).__name__,
                    exc_info=True)
        return []

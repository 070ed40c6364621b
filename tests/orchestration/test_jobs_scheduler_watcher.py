"""Jobs, the embedded scheduler and the watcher, in real processes: a file dropped into raw/
is ingested and scored exactly once, however many schedulers run and whatever kills them;
the scheduler runs the monitoring loop of every served dataset, once an interval between
schedulers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from sqlalchemy import func, select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import (
    Database,
    DriftReport,
    JobRun,
    Prediction,
    ScoredFile,
    dataset_table,
    upgrade,
)
from lifeboat.errors import JobFailed
from lifeboat.features import feature_view
from lifeboat.metrics import exposition
from lifeboat.monitoring.collector import MonitoringCollector
from lifeboat.orchestration import JobContext, recent_runs, run, run_job
from lifeboat.orchestration.file_scoring import MARKER, ready_files
from lifeboat.orchestration.scheduler import run_schedule, schedule, watch_landing_zone
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from tests.support.homes import make_settings
from tests.support.object_storage import StorageLocation

SECONDS = 180


@pytest.fixture
def job_settings(trained_settings: Settings, database_url: str, tmp_path: Path) -> Settings:
    """The session's champion (its registry is only read), this test's own database and
    landing zone."""
    return make_settings(trained_settings.home, database_url,
                         storage_url=str(tmp_path / "landing"))


@pytest.fixture
def context(job_settings: Settings, titanic: DatasetSpec) -> Iterator[JobContext]:
    database = Database(job_settings.db_url)
    upgrade(database)
    yield JobContext(job_settings, database, titanic)
    database.dispose()


def _drop(settings: Settings, frame: pd.DataFrame, name: str) -> Path:
    """Writes under a hidden name, then renames: a watcher never sees half a file."""
    raw = Path(settings.landing_url) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    hidden = raw / f".{name}"
    write_passengers(frame, hidden)
    return hidden.rename(raw / name)


def _scheduled(database: Database) -> pd.DataFrame:
    columns = ["id", "entity_id", "input", "features"]
    with database.session() as session:
        rows = session.execute(select(*(Prediction.__table__.c[name] for name in columns))
                               .where(Prediction.source == "scheduled")).all()
    return pd.DataFrame(rows, columns=columns)


def _scored_files(database: Database) -> list[tuple[str, str, int]]:
    with database.session() as session:
        return [(row.file, row.status, row.predictions) for row in session.scalars(
            select(ScoredFile).order_by(ScoredFile.file))]


def _wait_until(check: Callable[[], bool], processes: list[subprocess.Popen],
                what: str) -> None:
    deadline = time.monotonic() + SECONDS
    while not check():
        for process in processes:
            assert process.poll() is None, f"a job process exited early while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _start(command: str, settings: Settings) -> subprocess.Popen:
    env = {**os.environ, "LIFEBOAT_HOME": str(settings.home), "DATABASE_URL": settings.db_url,
           "LIFEBOAT_STORAGE_URL": settings.landing_url, "LIFEBOAT_SEARCH_ITERATIONS": "2",
           "LIFEBOAT_INGEST_EVERY_SECONDS": "0.5", "LIFEBOAT_SCORE_EVERY_SECONDS": "0.5",
           "LIFEBOAT_DRIFT_CHECK_SECONDS": "3600", "LIFEBOAT_LOG_LEVEL": "WARNING"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "lifeboat", command], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_dropped_file_is_ingested_then_scored_once_and_every_run_recorded(
        context: JobContext) -> None:
    passengers = synthetic_passengers(120, seed=11)
    _drop(context.settings, passengers, "arrivals.csv")

    ingested = run(context, "ingest", "cli")
    assert ingested.counts["files"] == 1 and ingested.counts["rows_loaded"] == 120
    ready, = ready_files(context.zone)
    scored = run(context, "score", "schedule")
    again = run(context, "score", "schedule")

    assert scored.counts["files"] == 1 and scored.counts["predictions"] == 120
    assert again.counts["files"] == 0 and again.counts["predictions"] == 0
    logged = _scheduled(context.database)
    assert len(logged) == 120 and logged["id"].is_unique
    key = dataset_table(context.spec).c[context.spec.entity.key]
    with context.database.session() as session:
        assert set(logged["entity_id"]) == set(session.scalars(select(key)))  # derived keys
    view = feature_view(context.spec)
    expected = view.from_records(pd.DataFrame.from_records(logged["input"].tolist()))
    assert logged["features"].tolist() == [
        {name: None if pd.isna(value) else value for name, value in row.items()}
        for row in expected.to_dict("records")]
    assert _scored_files(context.database) == [(ready, "succeeded", 120)]
    assert (Path(context.settings.landing_url) / "scored" /
            (ready.removesuffix(".parquet") + ".predictions.parquet" + MARKER)).exists()
    runs = recent_runs(context.database, context.spec.name)
    assert [(r.job, r.trigger, r.status) for r in runs] == [
        ("score", "schedule", "succeeded"), ("score", "schedule", "succeeded"),
        ("ingest", "cli", "succeeded")]


def test_a_file_with_missing_values_is_scored_not_retried(context: JobContext) -> None:
    passengers = synthetic_passengers(50, seed=12)
    passengers.loc[::3, ["age", "fare", "embarked"]] = None
    _drop(context.settings, passengers, "gappy.csv")
    run(context, "ingest", "schedule")
    assert run(context, "score", "schedule").counts["predictions"] == 50
    assert run(context, "score", "schedule").counts == {"files": 0, "predictions": 0, "failed": 0}
    assert len(_scheduled(context.database)) == 50


def test_a_failing_job_is_recorded_with_its_error(context: JobContext) -> None:
    with pytest.raises(JobFailed, match="(?i)no such file"):
        run(context, "ingest_file", "airflow", source="/no/such/file.csv")
    failed, = recent_runs(context.database, context.spec.name)
    assert (failed.job, failed.trigger, failed.status) == ("ingest_file", "airflow", "failed")
    assert "no such file" in failed.error.lower() and failed.finished_at is not None


def test_run_job_builds_its_context_from_settings_and_reports_json(
        job_settings: Settings) -> None:
    report = run_job("score", trigger="airflow", settings=job_settings)
    assert report["status"] == "succeeded" and report["counts"]["files"] == 0
    assert isinstance(report["run_id"], int)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_schedulers_on_postgres_score_each_file_once(
        context: JobContext, processes: list[subprocess.Popen]) -> None:
    job_settings, database = context.settings, context.database
    passengers = synthetic_passengers(3000, seed=13)
    for i in range(6):
        _drop(job_settings, passengers.iloc[i * 500:(i + 1) * 500], f"batch-{i}.csv")
    processes += [_start("schedule", job_settings), _start("schedule", job_settings)]

    def all_scored() -> bool:
        files = _scored_files(database)
        return len(files) == 6 and all(status == "succeeded" for _, status, _ in files)

    _wait_until(all_scored, processes, "six files scored")
    logged = _scheduled(database)
    assert len(logged) == 3000 and logged["id"].is_unique
    with database.session() as session:
        pids = set(session.scalars(select(JobRun.pid).where(JobRun.job == "score")))
    assert len(pids) == 2, "both schedulers ran the score job"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_kill_9_mid_file_then_restart_scores_exactly_once(
        context: JobContext, processes: list[subprocess.Popen]) -> None:
    job_settings, database = context.settings, context.database
    rows = 200_000
    _drop(job_settings, synthetic_passengers(rows, seed=14), "big.csv")
    first = _start("schedule", job_settings)
    processes.append(first)

    def mid_file() -> bool:
        with database.session() as session:  # a count, not the rows: the check must be quick
            logged = session.scalar(select(func.count()).select_from(Prediction)
                                    .where(Prediction.source == "scheduled"))
        files = _scored_files(database)  # read after the count: still running, so mid-file now
        return bool(files) and files[0][1] == "running" and 0 < logged < rows

    _wait_until(mid_file, processes, "the file half scored")
    first.send_signal(signal.SIGKILL)
    first.wait()
    processes.append(_start("schedule", job_settings))
    _wait_until(lambda: _scored_files(database)[0][1] == "succeeded", processes[1:],
                "the restarted scheduler to finish the file")
    logged = _scheduled(database)
    assert len(logged) == rows and logged["id"].is_unique
    with database.session() as session:
        attempts = session.scalar(select(ScoredFile.attempts))
        count = session.scalar(select(func.count()).select_from(Prediction))
    assert attempts == 2 and count == rows


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_watcher_scores_a_file_as_soon_as_it_lands(
        context: JobContext, processes: list[subprocess.Popen]) -> None:
    job_settings, database = context.settings, context.database
    processes.append(_start("watch", job_settings))
    _wait_until(lambda: bool(recent_runs(database, "titanic")), processes,
                "the watcher's first runs")
    _drop(job_settings, synthetic_passengers(80, seed=15), "landed.csv")
    _wait_until(lambda: len(_scheduled(database)) == 80, processes, "the landed file scored")
    triggers = {(r.job, r.trigger) for r in recent_runs(database, "titanic")}
    assert {("ingest", "watch"), ("score", "watch")} <= triggers


def test_job_runs_are_counted_in_metrics_by_job_trigger_and_status(context: JobContext) -> None:
    run(context, "score", "schedule")
    run(context, "score", "schedule")
    with pytest.raises(JobFailed):
        run(context, "ingest_file", "watch", source="/no/such/file.csv")
    text = exposition(MonitoringCollector(context.database, "titanic", lambda: None))[0].decode()
    assert 'lifeboat_job_runs_total{dataset="titanic",job_name="score",status="succeeded",trigger="schedule"} 2.0' in text
    assert 'lifeboat_job_runs_total{dataset="titanic",job_name="ingest_file",status="failed",trigger="watch"} 1.0' in text
    last = re.search(r'^lifeboat_job_last_success_timestamp_seconds\{dataset="titanic",job_name="score"\} (\S+)$', text,
                     re.MULTILINE)
    assert last and abs(float(last.group(1)) - time.time()) < 120
    assert 'lifeboat_job_last_success_timestamp_seconds{dataset="titanic",job_name="ingest_file"}' not in text


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_watcher_polls_object_storage_and_scores_what_lands(
        trained_settings: Settings, database_url: str, storage: StorageLocation,
        titanic: DatasetSpec) -> None:
    settings = make_settings(trained_settings.home, database_url, storage_url=storage.landing,
                             watch_poll_seconds=0.3)
    context = JobContext.from_settings(settings)
    early, late = synthetic_passengers(60, seed=16), synthetic_passengers(60, seed=17).iloc[30:]
    _put(storage, "raw/early.csv", early)  # landed while nothing watched
    stop = threading.Event()
    watcher = threading.Thread(target=watch_landing_zone, args=(context, stop), daemon=True)
    watcher.start()
    try:
        _wait_until(lambda: len(_scheduled(context.database)) == 60, [], "the early file scored")
        _put(storage, "raw/late.csv", late)
        _wait_until(lambda: len(_scheduled(context.database)) == 90, [], "the late file scored")
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not [name for name in storage.landed() if name.startswith("raw/")]
    assert sum(name.startswith("scored/") and name.endswith(MARKER)
               for name in storage.landed()) == 2
    context.database.dispose()


def test_the_scheduler_runs_the_monitoring_loop_of_every_served_dataset(
        context: JobContext, titanic: DatasetSpec) -> None:
    """The loop's one home: the scheduler (`lifeboat up`'s jobs process, `lifeboat
    schedule`) runs the `drift` job of each dataset served; the landing zone's jobs are the
    default dataset's."""
    customers = load_spec("customers")
    jobs = schedule(context.settings, [titanic, customers])
    assert [(every.job, every.spec.name) for every in jobs] == [
        ("ingest", "titanic"), ("score", "titanic"), ("drift", "titanic"), ("drift", "customers")]
    stop = threading.Event()
    scheduler = threading.Thread(target=run_schedule, args=(context, jobs, stop), daemon=True)
    scheduler.start()

    def turns() -> dict[str, list[tuple[str, str]]]:
        return {name: [(r.trigger, r.status) for r in recent_runs(context.database, name)
                       if r.job == "drift"] for name in ("titanic", "customers")}

    try:
        _wait_until(lambda: all(turns().values()), [], "a monitoring turn of each dataset")
    finally:
        stop.set()
        scheduler.join(timeout=SECONDS)
    assert turns() == {"titanic": [("schedule", "succeeded")],
                       "customers": [("schedule", "succeeded")]}


def test_a_scheduled_turn_is_skipped_when_another_process_checked_within_the_interval(
        context: JobContext) -> None:
    """Replicas of `lifeboat up` each run a scheduler on one database: the first to turn
    in an interval checks, the others skip, so an interval brings one check, not one per
    replica. Run without the interval (as Airflow runs it), a turn always runs."""
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    with context.database.session() as session:
        session.add(DriftReport(
            dataset="titanic", model_name="m", model_version="1", window_start=now,
            window_end=now, window_size=200, drifted=False, drift_share=0.0, p_value=0.05,
            correction="bonferroni", features=[], prediction_drift={}, html="<html></html>"))
    skipped = run(context, "drift", "schedule", unless_checked_within=60.0)
    assert skipped.counts == {"derived": 0, "checked": 0, "drifted": 0, "retrain_due": 0,
                              "retrained": 0, "skipped": 1}
    assert "skipped" not in run(context, "drift", "airflow").counts


def _put(storage: StorageLocation, name: str, frame: pd.DataFrame) -> None:
    with fsspec.open(f"{storage.landing}/{name}", "wb") as stream:
        stream.write(frame.to_csv(index=False).encode())

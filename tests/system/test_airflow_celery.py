"""The DAGs in dags/ run by Airflow as a deployment runs it, not by `airflow dags test`: the
scheduler, the DAG processor, the API server and a Celery worker, each a process of its own
(tests/support/airflow_cluster.py), with the metadata DB and Celery's result backend in a
scratch PostgreSQL database and a private redis-server as the broker.

The DAGs run in the order the data flows: files land and are ingested, a model is trained,
the files are scored, the drift check finds the latest predictions drifted and signals it,
and training runs on that signal. The scheduler starts the timetabled DAGs' runs, each when
unpaused, and training's second run on the drift asset; training's first run is triggered
through the REST API. Every task must have gone through Celery (its id on the task
instance, its result in Celery's table, its receipt in the worker's log), and each DAG must
have done its work in Lifeboat's database, landing zone and registry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lifeboat.datasets import DatasetSpec
from lifeboat.synthetic.passengers import synthetic_passengers
from tests.support.airflow import DRIFT, DagRun, Lifeboat, prepare_lifeboat, require_airflow
from tests.support.airflow_cluster import AirflowCluster
from tests.support.mlflow_server import running_mlflow_server
from tests.support.redis_server import RedisServer
from tests.support.services import scratch_postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def lifeboat(tmp_path_factory: pytest.TempPathFactory, titanic: DatasetSpec,
             s3_endpoint: str) -> Iterator[Lifeboat]:
    """The tasks' Lifeboat, on a tracking server of its own: what the workers train and
    promote goes through MLFLOW_TRACKING_URI, as in a deployment."""
    with scratch_postgres_database("lifeboat_celery") as url, running_mlflow_server(
            s3_endpoint, tmp_path_factory.mktemp("mlflow")) as tracking:
        yield prepare_lifeboat(tmp_path_factory.mktemp("lifeboat_home"), url, titanic,
                               tracking.url)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            lifeboat: Lifeboat) -> Iterator[AirflowCluster]:
    """Airflow's roles up, with Lifeboat's settings passed on to the tasks; all stopped after."""
    require_airflow(celery=True)
    broker = RedisServer().start()
    try:
        with scratch_postgres_database("airflow_celery") as metadata_url:
            cluster = AirflowCluster(tmp_path_factory.mktemp("airflow"), metadata_url,
                                     broker.url, lifeboat.env)
            try:
                migrated = cluster.migrate()
                started = cluster.start()
                print(f"airflow db migrate: {migrated:.0f} s; roles up in {started:.0f} s")
                yield cluster
            finally:
                cluster.stop()
    finally:
        broker.stop()


@dataclass
class Stage:
    run: DagRun
    before: dict[str, Any]
    after: dict[str, Any]


def _stage(lifeboat: Lifeboat, cluster: AirflowCluster, dag_id: str, *,
           trigger: bool = False) -> Stage:
    before = lifeboat.snapshot()
    run = cluster.run(dag_id, trigger=trigger)
    return Stage(run, before, lifeboat.snapshot())


@pytest.fixture(scope="module")
def ingested(lifeboat: Lifeboat, cluster: AirflowCluster, titanic: DatasetSpec) -> Stage:
    """The bundled passengers land, and passengers unlike them: scored last (name order),
    these make the latest predictions, the window drift_monitor finds drifted."""
    lifeboat.drop("passengers-1.csv", copy=titanic.bundled_path())
    lifeboat.drop("passengers-2.csv", synthetic_passengers(300, seed=12, shift=DRIFT))
    return _stage(lifeboat, cluster, "ingest_from_storage")


@pytest.fixture(scope="module")
def trained(lifeboat: Lifeboat, cluster: AirflowCluster, ingested: Stage) -> Stage:
    return _stage(lifeboat, cluster, "training_pipeline", trigger=True)


@pytest.fixture(scope="module")
def scored(lifeboat: Lifeboat, cluster: AirflowCluster, trained: Stage) -> Stage:
    return _stage(lifeboat, cluster, "scheduled_predictions")


@dataclass
class DriftStage:
    drift: DagRun
    training: DagRun
    before: dict[str, Any]
    after: dict[str, Any]


@pytest.fixture(scope="module")
def drift_checked(lifeboat: Lifeboat, cluster: AirflowCluster, scored: Stage) -> DriftStage:
    """drift_monitor with training_pipeline unpaused, as deployed: the drift asset its signal
    emits queues a run of training_pipeline, which the scheduler starts."""
    before = lifeboat.snapshot()
    known = cluster.run_ids("training_pipeline")
    with cluster.unpaused("training_pipeline"):
        drift = cluster.run("drift_monitor")
        training = cluster.next_run("training_pipeline", known)
    return DriftStage(drift, training, before, lifeboat.snapshot())


def test_ingest_from_storage_runs_on_the_worker_and_loads_each_file(
        ingested: Stage, cluster: AirflowCluster) -> None:
    run, before, after = ingested.run, ingested.before, ingested.after
    assert run.run_type == "scheduled"
    _assert_ran_on_celery(cluster, run, {"waiting_files": 1, "ingest_file": 2})
    assert [Path(url).name for url in run.result("waiting_files")] == [
        "passengers-1.csv", "passengers-2.csv"]
    assert before["rows"] == 0
    assert after["rows"] == after["good_rows"] == 1309 + 300
    assert after["raw"] == [] and len(after["good"]) == 2
    assert [job for job in after["job_runs"] if job[0] == "ingest_file"] == [
        ("ingest_file", "airflow", "succeeded")] * 2


def test_training_pipeline_runs_on_the_worker_and_registers_a_champion(
        trained: Stage, cluster: AirflowCluster) -> None:
    assert trained.run.run_type == "manual"
    _assert_ran_on_celery(cluster, trained.run, {"pipeline": 1})
    report = trained.run.result("pipeline")
    assert (report["status"], report["trigger"]) == ("succeeded", "airflow")
    assert trained.before["versions"] == []
    assert trained.after["versions"] == [report["counts"]["version"]] == [1]
    assert trained.after["champion"] == "1"


def test_scheduled_predictions_run_on_the_worker_and_score_each_row_once(
        scored: Stage, cluster: AirflowCluster) -> None:
    assert scored.run.run_type == "scheduled"
    _assert_ran_on_celery(cluster, scored.run, {"score": 1})
    report, after = scored.run.result("score"), scored.after
    assert scored.before["predictions"] == 0
    assert report["counts"]["files"] == len(after["good"]) == 2
    assert after["predictions"] == after["distinct_prediction_ids"] == after["good_rows"]
    assert report["counts"]["predictions"] == after["predictions"]
    assert [(status, attempts) for _, status, _, attempts in after["scored_files"]] == [
        ("succeeded", 1)] * 2


def test_drift_monitor_runs_on_the_worker_and_signals_the_drift(
        drift_checked: DriftStage, cluster: AirflowCluster) -> None:
    run, before, after = drift_checked.drift, drift_checked.before, drift_checked.after
    assert run.run_type == "scheduled"
    _assert_ran_on_celery(cluster, run, {"check_drift": 1, "retrain_due": 1, "signal_drift": 1})
    report = run.result("check_drift")
    assert report["counts"]["checked"] == 1 and report["counts"]["drifted"] == 1, report
    # The signal, run on the worker, emitted the asset event naming the check's job run.
    with cluster.metadata() as metadata:
        assert metadata.asset_events() == [{
            "extra": {"drift_job_run_id": report["run_id"], "reason": "drift"},
            "dag_id": "drift_monitor", "run_id": run.run_id}]
    assert after["drift_reports"] == before["drift_reports"] + 1


def test_training_pipeline_runs_on_the_worker_when_drift_signals(
        drift_checked: DriftStage, cluster: AirflowCluster) -> None:
    run, before, after = drift_checked.training, drift_checked.before, drift_checked.after
    assert run.run_type == "asset_triggered"
    _assert_ran_on_celery(cluster, run, {"pipeline": 1})
    report = run.result("pipeline")
    assert (report["status"], report["trigger"]) == ("succeeded", "airflow")
    # No row was loaded since the champion was trained: nothing to learn from, so nothing is
    # trained, registered or changed.
    assert (report["counts"]["trained"], report["counts"]["promoted"]) == (0, 0)
    for unchanged in ("versions", "champion", "predictions", "rows"):
        assert after[unchanged] == before[unchanged], unchanged
    assert [job for job in after["job_runs"] if job[0] == "pipeline"] == [
        ("pipeline", "airflow", "succeeded")] * 2


def _assert_ran_on_celery(cluster: AirflowCluster, run: DagRun, executed: dict[str, int]) -> None:
    """Each task instance of `run` that was executed (so many of each task id) went through
    Celery: the scheduler recorded Celery's task id, Celery's result backend holds that task
    as succeeded, and the worker's log received it."""
    with cluster.metadata() as metadata:
        instances = metadata.query(
            "SELECT task_id, map_index, state, queue, external_executor_id FROM task_instance "
            "WHERE dag_id = :dag_id AND run_id = :run_id AND state = 'success'",
            dag_id=run.dag_id, run_id=run.run_id)
    celery_ids = [row.external_executor_id for row in instances]
    assert Counter(row.task_id for row in instances) == executed, instances
    assert all(row.queue == "default" for row in instances), instances
    assert all(celery_ids), f"a task instance without a Celery task id: {instances}"
    assert cluster.celery_results(celery_ids) == dict.fromkeys(celery_ids, "SUCCESS")
    worker_log = cluster.log("celery-worker")
    assert all(f"[{celery_id}] received" in worker_log for celery_id in celery_ids), (
        f"the worker's log does not name each of {celery_ids}:\n{cluster.tail('celery-worker')}")

"""The Airflow DAGs in dags/, run for real: Airflow 3 from its own venv (`.airflow/`, built by
`make airflow`) runs `airflow dags test <dag_id>` against a temporary AIRFLOW_HOME (SQLite
metadata DB), each task running Lifeboat in the project's venv against a scratch PostgreSQL
database and a temporary LIFEBOAT_HOME. After each run the test reads what it left: rows in
the DB, versions in the MLflow registry, predictions and scored files, job runs, and the
asset events Airflow recorded. Each DAG runs twice; the second run changes nothing.

The stages build on one another (files land → ingested → trained → scored → drift checked),
as module fixtures, so any one test can run alone and pulls in the stages it needs.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lifeboat.datasets import DatasetSpec
from lifeboat.spark import stop_spark
from lifeboat.synthetic.passengers import synthetic_passengers
from tests.support.airflow import (
    AIRFLOW,
    AIRFLOW_VENV,
    DAG_IDS,
    DAGS,
    DRIFT,
    DRIFT_ASSET,
    DagRun,
    Lifeboat,
    Metadata,
    clean_env,
    json_lines,
    output_tail,
    prepare_lifeboat,
    require_airflow,
)
from tests.support.paths import ROOT
from tests.support.services import scratch_postgres_database
from tests.support.spark_cluster import SparkCluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
RUN_SECONDS = 900

# Run inside Airflow's venv: each DAG as Airflow's own DagBag loads it, as JSON.
DAG_SHAPES = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
shapes = {}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for t in dag.tasks:
        mapped = type(t).__name__.endswith("MappedOperator")
        kwargs = t.partial_kwargs if mapped else vars(t)
        tasks[t.task_id] = {
            "operator": t.operator_name, "mapped": mapped,
            "upstream": sorted(t.upstream_task_ids),
            "python": kwargs.get("python"),
            "retries": kwargs.get("retries", getattr(t, "retries", None)),
            "outlets": [getattr(o, "name", str(o)) for o in (t.outlets or [])],
        }
    schedule = dag.schedule
    params = {name: {"default": dag.params[name], "enum": dag.params.get_param(name).schema.get("enum")}
              for name in dag.params}
    shapes[dag_id] = {
        "schedule": (schedule if isinstance(schedule, str) else
                     [getattr(a, "name", str(a)) for a in schedule] if isinstance(schedule, list)
                     else getattr(schedule, "total_seconds", lambda: repr(schedule))()),
        "catchup": dag.catchup, "tags": sorted(dag.tags), "doc_md": dag.doc_md or "",
        "max_active_runs": dag.max_active_runs, "tasks": tasks, "params": params,
    }
print("DAG_SHAPES" + json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()},
                                 "dags": shapes}))
"""


@dataclass
class Airflow:
    """Airflow 3 from `.airflow/`, with its own AIRFLOW_HOME and SQLite metadata DB."""

    home: Path
    env: dict[str, str]
    workdir: Path
    runs: list[DagRun] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(AIRFLOW), *args], env=env or self.env, cwd=self.workdir,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, (
            f"`airflow {' '.join(args)}` exited {result.returncode}:\n{output_tail(result)}")
        return result

    def metadata(self) -> Metadata:
        return Metadata(f"sqlite:///{self.home / 'airflow.db'}")

    def test_dag(self, dag_id: str, conf: dict[str, Any] | None = None,
                 **env: str) -> DagRun:
        """`airflow dags test <dag_id>` (with the run's `conf`, over the DAG's params, and
        more environment), then the run's outcome as Airflow recorded it."""
        started = time.monotonic()
        given = ["--conf", json.dumps(conf)] if conf else []
        result = subprocess.run([str(AIRFLOW), "dags", "test", *given, dag_id],
                                env={**self.env, **env},
                                cwd=self.workdir, capture_output=True, text=True,
                                timeout=RUN_SECONDS)
        seconds = time.monotonic() - started
        log = self.home / f"{dag_id}-{len(self.runs)}.log"
        log.write_text(result.stdout + result.stderr)
        with self.metadata() as metadata:
            latest = metadata.latest_run(dag_id)
            assert latest is not None, f"no run of {dag_id} recorded:\n{output_tail(result)}"
            run = metadata.dag_run(dag_id, latest[0], seconds)
        assert result.returncode == 0 and run.state == "success", (
            f"`airflow dags test {dag_id}` exited {result.returncode}, run {run.state}, tasks "
            f"{run.tasks} (log: {log}):\n{output_tail(result)}")
        self.runs.append(run)
        print(f"airflow dags test {dag_id}: {run.state} in {seconds:.0f} s")
        return run

    def asset_events(self) -> list[dict[str, Any]]:
        with self.metadata() as metadata:
            return metadata.asset_events()

    def queued_runs(self) -> list[str]:
        with self.metadata() as metadata:
            return metadata.queued_runs()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """A migrated Airflow metadata DB with the DAGs serialized into it (once per module)."""
    require_airflow()
    home = tmp_path_factory.mktemp("airflow_home")
    workdir = tmp_path_factory.mktemp("airflow_cwd")  # no .env of the checkout is read
    env = {**clean_env(),
           "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           # Unpaused, as in a deployment: an asset event queues a run of training_pipeline.
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
    airflow = Airflow(home, env, workdir)
    airflow.cli("db", "migrate")
    airflow.cli("dags", "reserialize")
    return home, env, workdir


@pytest.fixture(scope="module")
def scratch_database_url() -> Iterator[str]:
    """This module's own database: its stages build on one another's rows."""
    with scratch_postgres_database("lifeboat_airflow") as url:
        yield url


@pytest.fixture(scope="module")
def lifeboat(scratch_database_url: str, tmp_path_factory: pytest.TempPathFactory,
             titanic: DatasetSpec) -> Lifeboat:
    return prepare_lifeboat(tmp_path_factory.mktemp("lifeboat_home"), scratch_database_url,
                            titanic)


@pytest.fixture(scope="module")
def airflow(airflow_home: tuple[Path, dict[str, str], Path], lifeboat: Lifeboat) -> Airflow:
    """The DAGs' runner, passing Lifeboat's settings on to the tasks."""
    home, airflow_env, workdir = airflow_home
    return Airflow(home, {**airflow_env, **lifeboat.env}, workdir)


# --- the stages, each run twice -------------------------------------------------------------


@dataclass
class Stage:
    first: DagRun
    second: DagRun
    before: dict[str, Any]
    after_first: dict[str, Any]
    after_second: dict[str, Any]


@pytest.fixture(scope="module")
def ingested(lifeboat: Lifeboat, airflow: Airflow, titanic: DatasetSpec) -> Stage:
    """Two files land; ingest_from_storage runs; the first lands again unchanged; it runs again."""
    first_file = lifeboat.drop("passengers-1.csv", copy=titanic.bundled_path())
    lifeboat.drop("passengers-2.csv", synthetic_passengers(300, seed=11))
    before = lifeboat.snapshot()
    first = airflow.test_dag("ingest_from_storage")
    after_first = lifeboat.snapshot()
    lifeboat.drop("passengers-1.csv", copy=titanic.bundled_path())  # the same bytes again
    assert first_file.exists()
    second = airflow.test_dag("ingest_from_storage")
    return Stage(first, second, before, after_first, lifeboat.snapshot())


@pytest.fixture(scope="module")
def trained(lifeboat: Lifeboat, airflow: Airflow, ingested: Stage) -> Stage:
    return _twice(lifeboat, airflow, "training_pipeline")


@pytest.fixture(scope="module")
def scored(lifeboat: Lifeboat, airflow: Airflow, trained: Stage) -> Stage:
    return _twice(lifeboat, airflow, "scheduled_predictions")


def _twice(lifeboat: Lifeboat, airflow: Airflow, dag_id: str) -> Stage:
    """The DAG run twice in a row, with what the database held before, between and after."""
    before = lifeboat.snapshot()
    first = airflow.test_dag(dag_id)
    after_first = lifeboat.snapshot()
    second = airflow.test_dag(dag_id)
    return Stage(first, second, before, after_first, lifeboat.snapshot())


@dataclass
class DriftStage:
    steady: DagRun
    after_steady: dict[str, Any]
    events_after_steady: list[dict[str, Any]]
    queued_after_steady: list[str]
    drifted: DagRun
    before_drifted: dict[str, Any]
    after_drifted: dict[str, Any]
    events_after_drifted: list[dict[str, Any]]
    queued_after_drifted: list[str]
    drifted_file_ingest: DagRun
    drifted_file_score: DagRun


@pytest.fixture(scope="module")
def drift_checked(lifeboat: Lifeboat, airflow: Airflow, scored: Stage) -> DriftStage:
    """drift_monitor over the steady window the scoring left, then over a drifted one: a file
    of passengers unlike the training ones lands, is ingested and scored through the DAGs."""
    steady = airflow.test_dag("drift_monitor")
    after_steady = lifeboat.snapshot()
    events_after_steady, queued_after_steady = airflow.asset_events(), airflow.queued_runs()
    lifeboat.drop("passengers-3.csv", synthetic_passengers(300, seed=12, shift=DRIFT))
    drifted_file_ingest = airflow.test_dag("ingest_from_storage")
    drifted_file_score = airflow.test_dag("scheduled_predictions")
    before_drifted = lifeboat.snapshot()
    drifted = airflow.test_dag("drift_monitor")
    return DriftStage(steady, after_steady, events_after_steady, queued_after_steady,
                      drifted, before_drifted, lifeboat.snapshot(), airflow.asset_events(),
                      airflow.queued_runs(), drifted_file_ingest, drifted_file_score)


# --- the tests ------------------------------------------------------------------------------


def test_every_dag_imports_and_has_the_described_tasks(
        airflow_home: tuple[Path, dict[str, str], Path]) -> None:
    home, env, workdir = airflow_home
    airflow = Airflow(home, env, workdir)
    errors = json_lines(airflow.cli("dags", "list-import-errors", "--output", "json").stdout)
    assert errors == [], errors
    listed = json_lines(airflow.cli("dags", "list", "--output", "json").stdout)
    assert sorted(dag["dag_id"] for dag in listed) == list(DAG_IDS)

    # Parsed by Airflow's own DagBag, without LIFEBOAT_PYTHON: the default interpreter is the
    # checkout's .venv, found from the dags folder.
    shapes = subprocess.run([str(AIRFLOW_VENV / "bin" / "python"), "-c", DAG_SHAPES, str(DAGS)],
                            env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert shapes.returncode == 0, output_tail(shapes)
    line = next(line for line in shapes.stdout.splitlines() if line.startswith("DAG_SHAPES"))
    parsed = json.loads(line.removeprefix("DAG_SHAPES"))
    assert parsed["import_errors"] == {}
    dags = parsed["dags"]
    assert sorted(dags) == list(DAG_IDS)
    lifeboat_python = str(ROOT / ".venv" / "bin" / "python")

    def tasks(dag_id: str) -> dict[str, tuple[str, bool, list[str]]]:
        return {task_id: (task["operator"], task["mapped"], task["upstream"])
                for task_id, task in dags[dag_id]["tasks"].items()}

    assert tasks("ingest_from_storage") == {
        "waiting_files": ("@task.external_python", False, []),
        "ingest_file": ("@task.external_python", True, ["waiting_files"]),
    }
    assert tasks("training_pipeline") == {"pipeline": ("@task.external_python", False, [])}
    assert tasks("scheduled_predictions") == {"score": ("@task.external_python", False, [])}
    assert tasks("drift_monitor") == {
        "check_drift": ("@task.external_python", False, []),
        "retrain_due": ("@task.short_circuit", False, ["check_drift"]),
        "signal_drift": ("@task", False, ["check_drift", "retrain_due"]),
    }
    # Only the drift signal emits the asset, and training is scheduled on exactly that asset.
    outlets = {(dag_id, task_id): task["outlets"] for dag_id, dag in dags.items()
               for task_id, task in dag["tasks"].items() if task["outlets"]}
    assert outlets == {("drift_monitor", "signal_drift"): [DRIFT_ASSET]}
    assert dags["training_pipeline"]["schedule"] == [DRIFT_ASSET]
    assert dags["scheduled_predictions"]["schedule"] == 120
    assert dags["drift_monitor"]["schedule"] == 3600
    # The heavy jobs' DAGs take the engine as a parameter; checking drift is not heavy.
    engine = {"engine": {"default": "local", "enum": ["local", "spark"]}}
    assert {dag_id: dag["params"] for dag_id, dag in dags.items()} == {
        "ingest_from_storage": engine, "scheduled_predictions": engine,
        "training_pipeline": engine, "drift_monitor": {}}
    for dag_id, dag in dags.items():
        assert dag["catchup"] is False, dag_id
        assert dag["max_active_runs"] == 1, dag_id
        assert "lifeboat" in dag["tags"], dag_id
        assert "lifeboat " in dag["doc_md"], f"{dag_id}'s doc_md names no CLI equivalent"
        for task_id, task in dag["tasks"].items():
            assert task["retries"] and task["retries"] >= 1, (dag_id, task_id)
            if task["operator"] == "@task.external_python":
                assert task["python"] == lifeboat_python, (dag_id, task_id)


def test_ingest_from_storage_loads_each_waiting_file_once(ingested: Stage,
                                                          titanic: DatasetSpec) -> None:
    first, second = ingested.first, ingested.second
    assert ingested.before["raw"] == ["passengers-1.csv", "passengers-2.csv"]
    assert ingested.before["rows"] == 0
    # One mapped task per waiting file, each an `ingest_file` job run recorded as Airflow's.
    assert [Path(url).name for url in first.result("waiting_files")] == [
        "passengers-1.csv", "passengers-2.csv"]
    mapped = {key: value for key, value in first.results.items() if key[0] == "ingest_file"}
    assert sorted(index for _, index in mapped) == [0, 1]
    loaded = sum(report["counts"]["rows_loaded"] for report in mapped.values())
    assert all(report["status"] == "succeeded" and report["trigger"] == "airflow"
               for report in mapped.values())
    after = ingested.after_first
    assert loaded == 1309 + 300
    assert after["rows"] == loaded
    assert after["raw"] == []
    assert len(after["good"]) == 2 and after["good_rows"] == loaded
    assert [run for run in after["job_runs"] if run[0] == "ingest_file"] == [
        ("ingest_file", "airflow", "succeeded")] * 2

    # The second run finds the same bytes again: it ingests them, loads nothing, adds no file.
    assert [Path(url).name for url in second.result("waiting_files")] == ["passengers-1.csv"]
    assert second.result("ingest_file", 0)["counts"]["rows_loaded"] == 0
    again = ingested.after_second
    for unchanged in ("rows", "good", "good_rows", "raw", "predictions", "versions"):
        assert again[unchanged] == after[unchanged], unchanged


def test_training_pipeline_registers_and_promotes_a_model(trained: Stage) -> None:
    before, after, again = trained.before, trained.after_first, trained.after_second
    assert before["versions"] == [] and before["champion"] is None
    report = trained.first.result("pipeline")
    assert (report["job"], report["trigger"], report["status"]) == (
        "pipeline", "airflow", "succeeded")
    assert report["counts"]["promoted"] == 1
    # Registered in the MLflow registry under LIFEBOAT_HOME, and champion.
    assert after["versions"] == [report["counts"]["version"]] == [1]
    assert after["champion"] == "1"
    assert after["rows"] == before["rows"]  # nothing was waiting in raw/

    # Again, with no row loaded since the champion was trained: nothing to learn from, so
    # nothing is trained, registered or changed.
    second = trained.second.result("pipeline")
    assert second["status"] == "succeeded"
    assert (second["counts"]["trained"], second["counts"]["promoted"]) == (0, 0)
    for unchanged in ("versions", "champion", "rows", "good", "predictions", "scored_files",
                      "ingestion_runs"):
        assert again[unchanged] == after[unchanged], unchanged
    assert [run for run in again["job_runs"] if run[0] == "pipeline"] == [
        ("pipeline", "airflow", "succeeded")] * 2


def test_scheduled_predictions_scores_each_file_exactly_once(scored: Stage) -> None:
    before, after, again = scored.before, scored.after_first, scored.after_second
    assert before["predictions"] == 0
    report = scored.first.result("score")
    assert report["status"] == "succeeded" and report["trigger"] == "airflow"
    assert report["counts"]["files"] == len(after["good"]) == 2
    # Every good row scored once, each file claimed and finished once.
    assert after["predictions"] == after["distinct_prediction_ids"] == after["good_rows"]
    assert report["counts"]["predictions"] == after["predictions"]
    assert [(status, attempts) for _, status, _, attempts in after["scored_files"]] == [
        ("succeeded", 1)] * 2
    assert sum(predictions for *_, predictions, _ in after["scored_files"]) == after["good_rows"]

    second = scored.second.result("score")
    assert second["counts"]["files"] == 0 and second["counts"]["predictions"] == 0
    for unchanged in ("predictions", "scored_files", "rows", "versions", "champion"):
        assert again[unchanged] == after[unchanged], unchanged


def test_drift_monitor_triggers_training_only_on_drift(drift_checked: DriftStage) -> None:
    stage = drift_checked
    # A steady window: checked, no drift, the signal short-circuited, no asset event.
    steady = stage.steady.result("check_drift")
    assert steady["counts"]["checked"] == 1 and steady["counts"]["drifted"] == 0, steady
    assert steady["counts"]["retrain_due"] == 0, steady
    assert stage.steady.tasks[("retrain_due", -1)] == "success"
    assert stage.steady.tasks[("signal_drift", -1)] == "skipped"
    assert stage.events_after_steady == [] and stage.queued_after_steady == []

    # The drifted file went through the DAGs: ingested, then scored exactly once.
    assert stage.drifted_file_ingest.result("ingest_file", 0)["counts"]["rows_loaded"] > 0
    scored = stage.before_drifted
    assert scored["predictions"] == scored["distinct_prediction_ids"] == scored["good_rows"]
    assert len(scored["scored_files"]) == 3

    # A drifted window: one asset event, naming the check's job run, queues training_pipeline.
    drifted = stage.drifted.result("check_drift")
    assert drifted["counts"]["checked"] == 1 and drifted["counts"]["drifted"] == 1, drifted
    assert stage.drifted.tasks[("signal_drift", -1)] == "success"
    assert stage.events_after_drifted == [{
        "extra": {"drift_job_run_id": drifted["run_id"], "reason": "drift"},
        "dag_id": "drift_monitor",
        "run_id": stage.drifted.run_id}]
    assert stage.queued_after_drifted == ["training_pipeline"]

    # Checking does not heal: no retrain, no new version, nothing scored or loaded.
    after = stage.after_drifted
    assert after["retrains"] == 0
    assert after["drift_reports"] == stage.after_steady["drift_reports"] + 1
    for unchanged in ("versions", "champion", "predictions", "rows", "scored_files"):
        assert after[unchanged] == stage.before_drifted[unchanged], unchanged
    assert [run for run in after["job_runs"] if run[0] == "drift"] == [
        ("drift", "airflow", "succeeded")] * 2


@dataclass
class SparkStage:
    ingest: DagRun
    score: DagRun
    before: dict[str, Any]
    after: dict[str, Any]


@pytest.fixture(scope="module")
def scored_on_spark(lifeboat: Lifeboat, airflow: Airflow, drift_checked: DriftStage,
                    spark_cluster: SparkCluster) -> SparkStage:
    """A new file, ingested, then scored by scheduled_predictions run with the engine `spark`
    on the standalone cluster."""
    stop_spark()  # a standalone app holds every core it can: the task's app needs them
    lifeboat.drop("passengers-4.csv", synthetic_passengers(500, seed=13))
    ingest = airflow.test_dag("ingest_from_storage")
    before = lifeboat.snapshot()
    score = airflow.test_dag("scheduled_predictions", conf={"engine": "spark"},
                             LIFEBOAT_SPARK_MASTER=spark_cluster.master_url)
    return SparkStage(ingest, score, before, lifeboat.snapshot())


def test_scheduled_predictions_run_on_spark_with_the_engine_parameter(
        scored_on_spark: SparkStage, lifeboat: Lifeboat) -> None:
    stage = scored_on_spark
    assert stage.score.result("score")["counts"] == {"files": 1, "predictions": 500, "failed": 0}
    assert stage.after["predictions"] == stage.after["distinct_prediction_ids"] == (
        stage.before["predictions"] + 500)
    new = set(stage.after["scored_files"]) - set(stage.before["scored_files"])
    assert [(status, predictions) for _, status, predictions, _ in new] == [("succeeded", 500)]
    (output,) = (lifeboat.landing / "scored").glob("passengers-4*.predictions.parquet")
    assert output.is_dir() and (output / "_SUCCESS").exists()
    assert len(pd.read_parquet(output)) == 500

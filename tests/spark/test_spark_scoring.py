"""Batch scoring on the standalone cluster: the same predictions, ids and log as the local
engine, and exactly once through reruns, the other engine and a worker lost mid-job."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, Prediction, upgrade
from lifeboat.errors import IngestError
from lifeboat.scoring import score_file
from lifeboat.spark import score_on_spark, stop_spark
from lifeboat.spark import scoring as spark_scoring
from lifeboat.synthetic.passengers import synthetic_passengers
from tests.support.cli import lifeboat
from tests.support.spark_cluster import SparkCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def on_cluster(trained_settings: Settings, spark_cluster: SparkCluster) -> Settings:
    return trained_settings.model_copy(update={"spark_master": spark_cluster.master_url})


def _passengers_parquet(folder: Path, rows: int, row_group: int) -> Path:
    """Generated passengers as the titanic3 file spells them, in many row groups: one file,
    several tasks."""
    frame = synthetic_passengers(rows, seed=7).astype(str).replace({"nan": ""})
    path = folder / "passengers.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=row_group)
    return path


def _logged(database: Database) -> pd.DataFrame:
    with database.engine.connect() as connection:
        return pd.read_sql(select(Prediction.id, Prediction.probability, Prediction.prediction,
                                  Prediction.input, Prediction.features, Prediction.source)
                           .order_by(Prediction.id), connection)


def test_spark_and_local_give_the_same_predictions_ids_and_log(
        on_cluster: Settings, titanic: DatasetSpec, postgres: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_scoring, "ROWS_PER_TASK", 1500)
    source = _passengers_parquet(tmp_path, 6000, 500)
    settings = on_cluster.model_copy(update={"database_url": postgres.url})
    spark = score_on_spark(settings, postgres, titanic, str(source))
    local_db = Database(f"sqlite:///{tmp_path / 'local.db'}")
    upgrade(local_db)
    local = score_file(settings, local_db, titanic, str(source),
                       str(tmp_path / "local.predictions.parquet"))
    assert spark.rows == local.rows == spark.logged == local.logged == 6000
    assert spark.with_issues == local.with_issues
    parts = sorted(Path(spark.output).glob("part-*.parquet"))
    assert len(parts) == 4 and (Path(spark.output) / "_SUCCESS").exists()
    scored = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    expected = pd.read_parquet(local.output)
    assert scored["row"].tolist() == list(range(1, 6001))
    pd.testing.assert_frame_equal(scored.drop(columns="probability"),
                                  expected.drop(columns="probability"))
    np.testing.assert_allclose(scored["probability"], expected["probability"], rtol=0, atol=1e-9)
    on_spark, on_local = _logged(postgres), _logged(local_db)
    assert on_spark["id"].tolist() == on_local["id"].tolist() == scored["prediction_id"].tolist()
    np.testing.assert_allclose(on_spark["probability"], on_local["probability"], atol=1e-9)
    assert on_spark["input"].tolist() == on_local["input"].tolist()
    assert on_spark["features"].tolist() == on_local["features"].tolist()


def test_a_rerun_on_either_engine_logs_nothing_twice(
        on_cluster: Settings, titanic: DatasetSpec, postgres: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_scoring, "ROWS_PER_TASK", 1000)
    source = _passengers_parquet(tmp_path, 3000, 500)
    settings = on_cluster.model_copy(update={"database_url": postgres.url})
    score_file(settings, postgres, titanic, str(source))
    with postgres.session() as session:  # the local run died after its first 1,234 rows
        ids = sorted(session.scalars(select(Prediction.id)))
        session.execute(Prediction.__table__.delete().where(Prediction.id > ids[1233]))
    resumed = score_on_spark(settings, postgres, titanic, str(source))
    assert (resumed.rows, resumed.logged, resumed.already_logged) == (3000, 3000 - 1234, 1234)
    again = score_on_spark(settings, postgres, titanic, str(source))
    assert (again.logged, again.already_logged) == (0, 3000)
    local = score_file(settings, postgres, titanic, str(source))
    assert (local.logged, local.already_logged) == (0, 3000)
    with postgres.session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 3000


def test_a_worker_lost_mid_job_loses_and_duplicates_nothing(
        on_cluster: Settings, titanic: DatasetSpec, postgres: Database, tmp_path: Path,
        spark_cluster: SparkCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_scoring, "ROWS_PER_TASK", 10_000)
    source = _passengers_parquet(tmp_path, 120_000, 5000)
    settings = on_cluster.model_copy(update={"database_url": postgres.url})
    done: dict[str, object] = {}
    job = threading.Thread(target=lambda: done.update(
        report=score_on_spark(settings, postgres, titanic, str(source))))
    job.start()
    try:
        assert _wait_for_first_logged(postgres, job) < 120_000  # the job is midway
        spark_cluster.kill_worker(spark_cluster.live_workers()[0])
        job.join(timeout=600)
    finally:
        spark_cluster.add_worker()
    report = done["report"]
    assert (report.rows, report.logged, report.already_logged) == (120_000, 120_000, 0)
    with postgres.session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 120_000
    scored = pd.read_parquet(report.output, columns=["row", "prediction_id"])
    assert scored["row"].sort_values().tolist() == list(range(1, 120_001))
    assert scored["prediction_id"].is_unique


def _wait_for_first_logged(database: Database, job: threading.Thread) -> int:
    while job.is_alive():
        with database.session() as session:
            if logged := session.scalar(select(func.count()).select_from(Prediction)):
                return logged
        time.sleep(0.05)
    pytest.fail("the job ended before anything was logged")


def test_a_part_that_cannot_be_read_fails_the_job_with_its_reason(
        on_cluster: Settings, titanic: DatasetSpec, postgres: Database, tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.csv").write_text(titanic.bundled_path().read_text())
    (folder / "b.csv").write_bytes(b"\x00\x01 not text at all \x02" * 10)
    settings = on_cluster.model_copy(update={"database_url": postgres.url})
    with pytest.raises(IngestError, match=r"cannot score .*b\.csv"):
        score_on_spark(settings, postgres, titanic, str(folder))


def test_cli_scores_a_folder_on_spark(on_cluster: Settings, titanic: DatasetSpec,
                                      postgres: Database, tmp_path: Path) -> None:
    stop_spark()  # a standalone app holds every core it can: the command's app needs them
    folder = tmp_path / "inputs"
    folder.mkdir()
    lines = titanic.bundled_path().read_text().splitlines(True)
    (folder / "a.csv").write_text("".join(lines))
    (folder / "b.csv").write_text("".join(lines[:-1]))  # other content: other ids
    result = lifeboat(on_cluster.home, "predict", str(folder), "--engine", "spark",
                      DATABASE_URL=postgres.url, LIFEBOAT_SPARK_MASTER=on_cluster.spark_master)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scored 2,617 rows with lifeboat-titanic" in result.stdout
    assert "logged 2,617 predictions (source batch)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "inputs.predictions").iterdir()) == [
        "_SUCCESS", "part-00000.parquet", "part-00001.parquet"]

"""The standalone cluster the Spark tests run on: a session reaches both workers' executors."""

from __future__ import annotations

import os

import pytest

from lifeboat.config import Settings
from lifeboat.errors import EngineUnavailable
from lifeboat.spark import spark_session
from tests.support.spark_cluster import SparkCluster


def test_tasks_run_in_executors_of_the_cluster(spark_cluster: SparkCluster, tmp_path) -> None:
    spark = spark_session(Settings(home=tmp_path, spark_master=spark_cluster.master_url))
    assert spark.sparkContext.master == spark_cluster.master_url
    pids = set(spark.sparkContext.parallelize(range(8), 8).map(lambda _: os.getpid()).collect())
    assert os.getpid() not in pids


def test_a_cluster_is_refused_a_database_file_only_this_machine_has(tmp_path) -> None:
    settings = Settings(_env_file=None, home=tmp_path, database_url=None,
                        spark_master="spark://spark-master.example:7077")
    with pytest.raises(EngineUnavailable, match="set DATABASE_URL to a database server"):
        spark_session(settings)

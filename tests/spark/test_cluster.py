"""The standalone cluster the Spark tests run on: a session reaches both workers' executors."""

from __future__ import annotations

import os

from lifeboat.config import Settings
from lifeboat.spark import spark_session
from tests.support.spark_cluster import SparkCluster


def test_tasks_run_in_executors_of_the_cluster(spark_cluster: SparkCluster, tmp_path) -> None:
    spark = spark_session(Settings(home=tmp_path, spark_master=spark_cluster.master_url))
    assert spark.sparkContext.master == spark_cluster.master_url
    pids = set(spark.sparkContext.parallelize(range(8), 8).map(lambda _: os.getpid()).collect())
    assert os.getpid() not in pids

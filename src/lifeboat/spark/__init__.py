"""The spark engine: the heavy jobs (batch scoring, materialization, ingestion) on a Spark
cluster, with the same spec, reader, compiled scorer and validator as the local engine, so
both give the same predictions, ids, features and validation outcomes.

Spark schedules the work and writes its output; each task runs Lifeboat's own code on its
part of the data. PySpark is an optional extra (`pip install 'lifeboat[spark]'`): nothing
here imports it until a job starts a session.
"""

from lifeboat.spark.aggregates import point_in_time_on_spark, read_sources
from lifeboat.spark.features import materialize_on_spark
from lifeboat.spark.ingestion import ingest_file_on_spark, ingest_on_spark
from lifeboat.spark.scoring import score_on_spark
from lifeboat.spark.session import spark_session, stop_spark

__all__ = [
    "ingest_file_on_spark",
    "ingest_on_spark",
    "materialize_on_spark",
    "point_in_time_on_spark",
    "read_sources",
    "score_on_spark",
    "spark_session",
    "stop_spark",
]

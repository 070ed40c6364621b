"""Batch scoring on Spark: `lifeboat predict --engine spark SOURCE`.

A file, a folder of files or a URL (a path, s3://, gs://) is split into parts
(`ingest.file_parts`): each CSV, JSON or gzip file whole, a Parquet file's row groups in runs
of about `ROWS_PER_TASK` rows. Each part is one Spark task. The task scores its part with
the champion's saved compiled scorer (JSON and ONNX, a few hundred kilobytes shipped with
the task: the executors need neither MLflow nor scikit-learn's model classes), logs its
predictions, and writes its rows whole to `part-NNNNN.parquet` in the output folder; the
driver adds `_SUCCESS` once every part is in, as Spark's own writers do.

Exactly once, whatever Spark does (a task retried after its executor was lost, a
speculative twin, a rerun of the job, a run on the local engine): a prediction's id derives
from its file's content, the model version and its row in the file, on both engines; a
chunk's rows already in the log are found by their ids and not logged again, and a part's
output file is replaced whole. Rows and issues are counted from each part's result, which
Spark takes from one successful attempt only; `logged` is counted in the log itself. A part
that cannot be read fails the job with its reason once every part has run (not retried: it
would only fail again); the others are scored and logged, as a rerun would do anyway.

Spark's own file readers are not used: Lifeboat's reader parses each part on its executor,
so a file reads exactly as on the local engine (missing tokens, malformed lines, spelling),
and object storage is reached through fsspec, with no Hadoop connector to install.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass

from fsspec.core import url_to_fs

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.errors import EngineUnavailable, IngestError
from lifeboat.features import feature_view
from lifeboat.files import content_checksum, write_whole
from lifeboat.ingest import FilePart, expand_source, file_parts
from lifeboat.registry import ModelRegistry, ModelVersion
from lifeboat.scoring import (
    BatchReport,
    PartScored,
    Predictor,
    champion_predictor,
    default_output,
    logged_from_file,
    saved_scorer_files,
    score_part,
    scorer_predictor,
)
from lifeboat.spark.session import spark_session

# A task's share of a Parquet file: enough rows that a task's start (a Python worker, the
# scorer loaded once per worker) is small beside its work.
ROWS_PER_TASK = 500_000
SUCCESS = "_SUCCESS"


@dataclass(frozen=True)
class _ScoringTask:
    """What every task needs: pickled into each task, so small and plain."""

    settings: Settings
    spec: DatasetSpec
    version: ModelVersion
    scorer_files: dict[str, bytes]
    logged_as: str
    output: str

    def __call__(self, numbered: tuple[int, FilePart, str]) -> PartScored | str:
        """The part's counts, or why it cannot be read: a fault of the data, which Spark's
        retries of a failed task would only meet again."""
        index, part, checksum = numbered
        try:
            return score_part(self.settings, _database(self.settings.db_url), _predictor(self),
                              part, checksum, part_file(self.output, index), self.logged_as)
        except IngestError as exc:
            return str(exc)


# Loaded once per Python worker, which Spark keeps for the next tasks.
_PREDICTORS: dict[tuple[str, str, str], Predictor] = {}
_DATABASES: dict[str, Database] = {}


def _predictor(task: _ScoringTask) -> Predictor:
    key = (task.spec.name, task.version.name, task.version.version)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = scorer_predictor(task.spec, task.version, feature_view(task.spec),
                                            task.scorer_files)
    return _PREDICTORS[key]


def _database(url: str) -> Database:
    if url not in _DATABASES:
        _DATABASES[url] = Database(url)
    return _DATABASES[url]


def part_file(output: str, index: int) -> str:
    return posixpath.join(output, f"part-{index:05d}.parquet")


def score_on_spark(settings: Settings, database: Database, spec: DatasetSpec, source: str,
                   output: str | None = None, logged_as: str = "batch",
                   version: str | None = None) -> BatchReport:
    """Scores every row of `source` on Spark with the champion (or `version`), writes the
    output folder and logs each prediction with source `logged_as`."""
    started = time.perf_counter()
    predictor = champion_predictor(settings, spec, version)
    served = predictor.version
    files = saved_scorer_files(ModelRegistry(settings, spec.model_name), served)
    if files is None:
        raise EngineUnavailable(f"{served.name} v{served.version} has no saved compiled scorer "
                                "(its classifier has no ONNX form): score it on the local engine")
    output = output or _default_output(source)
    urls = expand_source(source)
    context = spark_session(settings).sparkContext
    checksums = dict(context.parallelize(urls, len(urls)).map(_checksummed).collect())
    parts = [part for url in urls for part in file_parts(url, ROWS_PER_TASK)]
    before = sum(logged_from_file(database, predictor, checksums[url], logged_as) for url in urls)
    _clear(output)
    task = _ScoringTask(settings, spec, served, files, logged_as, output)
    numbered = [(index, part, checksums[part.url]) for index, part in enumerate(parts)]
    results = context.parallelize(numbered, len(numbered)).map(task).collect()
    if unreadable := [result for result in results if isinstance(result, str)]:
        raise IngestError("; ".join(unreadable))
    with write_whole(posixpath.join(output, SUCCESS), None):
        pass
    logged = sum(logged_from_file(database, predictor, checksums[url], logged_as)
                 for url in urls) - before
    rows = sum(result.rows for result in results)
    return BatchReport(source, output, served.name, served.version, rows, logged, rows - logged,
                       sum(result.with_issues for result in results),
                       sum(result.skipped_lines for result in results),
                       time.perf_counter() - started)


def _default_output(source: str) -> str:
    """`<stem>.predictions` beside the input: a folder, apart from the local engine's file."""
    return default_output(source.rstrip("/"), parquet=True).removesuffix(".parquet")


def _checksummed(url: str) -> tuple[str, str]:
    return url, content_checksum(url)


def _clear(output: str) -> None:
    """The output folder, made and emptied of an earlier run's parts and marker."""
    fs, path = url_to_fs(output)
    if fs.exists(path) and not fs.isdir(path):
        raise IngestError(f"cannot write {output}: the spark engine writes a folder of Parquet "
                          "parts, and a file is there")
    fs.makedirs(path, exist_ok=True)
    stale = [name for name in fs.ls(path, detail=False)
             if posixpath.basename(name).startswith("part-") or name.endswith(SUCCESS)]
    if stale:
        fs.rm(stale)

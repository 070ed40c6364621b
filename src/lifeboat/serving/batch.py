"""Batch scoring: `lifeboat predict FILE`. Any size of CSV (plain or gzip) or Parquet file is
read in bounded chunks, scored by the champion through `Predictor.probabilities` (the path
every route takes), written out next to the input, and logged as source `batch`.

Values are typed as the API types them. A value that cannot be used (not a number, out of
range, not an allowed category) does not stop the file: the row is scored with that field
missing, which the model imputes as it does any missing value, and the output's `issues`
column names each such field. A missing required field is named there too. Lines the parser
cannot split into the header's columns get no output row; they are counted, and the `row`
column (the file's data row number) shows where they were.

The log is written one transaction per chunk, in file order. Prediction ids derive from the
file's content, the model version and the row, so a rerun after a crash (or of the same file
with the same champion) writes the same ids and logs only the chunks not logged yet; a new
champion logs the file again. The output file appears, whole, only when the run succeeds.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.utils import infer_compression
from sqlalchemy import select
from sqlalchemy.orm import Session

from lifeboat.config import Settings
from lifeboat.datasets import ColumnSpec, DatasetSpec
from lifeboat.db import Database, Prediction
from lifeboat.db.bulk import insert_rows
from lifeboat.db.models import utcnow
from lifeboat.errors import IngestError, NoChampionError
from lifeboat.features import feature_view
from lifeboat.ingest import defuse_formulas, read_ahead, read_chunks
from lifeboat.ingest.sources import open_source
from lifeboat.registry import ModelRegistry
from lifeboat.serving.predictor import Predictor, view_mismatch
from lifeboat.validation import FileRejected, RowIssue

SOURCE = "batch"
Progress = Callable[[int], None]
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_PARQUET_SUFFIXES = (".parquet", ".pq")
_INPUT_SUFFIXES = (".gz", ".csv", ".tsv", ".txt", *_PARQUET_SUFFIXES)
_PLAIN_START = r"^[A-Za-z0-9]"  # cells that no spreadsheet runs as a formula


@dataclass(frozen=True)
class BatchReport:
    source: str
    output: str
    model_name: str
    model_version: str
    rows: int             # scored: one output row each
    logged: int           # written to the prediction log by this run
    already_logged: int   # logged by an earlier run of this file with this model
    with_issues: int      # scored with at least one field treated as missing
    skipped_lines: int    # lines that do not split into the header's columns
    seconds: float


def champion_predictor(settings: Settings, spec: DatasetSpec) -> Predictor:
    """The champion as the service loads it: refused when trained on other features."""
    registry = ModelRegistry(settings, spec.model_name)
    view = feature_view(spec)
    champion, model = registry.load_champion()
    if mismatch := view_mismatch(champion, view):
        raise NoChampionError(mismatch)
    return Predictor(spec, model, champion, view)


def default_output(source: str, parquet: bool) -> str:
    """`<stem>.predictions.csv` (or `.parquet` for a Parquet input) beside the input."""
    folder, name = posixpath.split(source)
    stem = name
    while stem.lower().endswith(_INPUT_SUFFIXES):
        stem = stem.rsplit(".", 1)[0]
    suffix = ".parquet" if parquet else ".csv"
    return posixpath.join(folder, f"{stem or name}.predictions{suffix}")


def score_file(settings: Settings, database: Database, spec: DatasetSpec, source: str,
               output: str | None = None, progress: Progress = lambda _rows: None) -> BatchReport:
    """Scores every row of `source`, writes `output` and logs each prediction as `batch`.

    Reading the next chunk, scoring this one and logging the one before overlap: Arrow's
    parser and the database driver wait without holding the GIL. A chunk is logged only
    once the one before it is committed, so the log always holds a prefix of the file.
    """
    started = time.perf_counter()
    predictor = champion_predictor(settings, spec)
    ids = _IdMaker(_checksum(source), predictor)
    output = output or default_output(source, _is_parquet(source))
    done: list[_Scored] = []
    logged: list[Future[int]] = []
    try:
        chunks = read_chunks(lambda: open_source(source), spec)
        with (_writer(output, spec) as write,
              ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifeboat-batch-log") as log):
            for chunk in read_ahead(chunks.chunks, "lifeboat-batch-read"):
                done.append(_score_chunk(predictor, chunk, ids, write))
                if logged:
                    logged[-1].result()
                logged.append(log.submit(_log, database, predictor, done[-1]))
                progress(len(chunk))
            written = sum(future.result() for future in logged)
    except FileRejected as rejected:
        raise IngestError(f"cannot score {source}: {rejected.reason}") from None
    rows = sum(scored.rows for scored in done)
    return BatchReport(source, output, predictor.version.name, predictor.version.version, rows,
                       written, rows - written, sum(scored.with_issues for scored in done),
                       len(chunks.malformed), time.perf_counter() - started)


@dataclass
class _Scored:
    logged: pd.DataFrame | None  # the log's rows; dropped once written, to free the memory
    rows: int
    latency_ms: float            # the model call's, as every route logs it
    with_issues: int


def _score_chunk(predictor: Predictor, chunk: pd.DataFrame, ids: _IdMaker,
                 write: Callable[[pa.Table], None]) -> _Scored:
    spec = predictor.spec
    scoring = time.perf_counter()
    inputs = _typed_inputs(chunk, spec)
    probability = predictor.probabilities(_model_frame(inputs, spec))
    latency_ms = (time.perf_counter() - scoring) * 1000
    prediction = (probability >= 0.5).astype(np.int64)
    label = np.array([spec.label_for(0), spec.label_for(1)], dtype=object)[prediction]
    prediction_id = ids.for_rows(chunk["row"].to_numpy())
    issues = _issues(inputs)
    write(_output_table(chunk, spec, issues, prediction_id, prediction, label, probability))
    logged = pd.DataFrame({
        "id": pd.arrays.ArrowStringArray(prediction_id),
        "input": pd.arrays.ArrowStringArray(_json_objects(inputs, spec)),
        "prediction": prediction, "label": label, "probability": probability,
    })
    return _Scored(logged, len(chunk), latency_ms, int(pc.sum(pc.is_valid(issues)).as_py() or 0))


@dataclass(frozen=True)
class _Field:
    """One input column of a chunk: the value the model sees and why a given one was dropped."""

    value: pa.Array           # float64 for numbers, trimmed text otherwise; null when missing
    issue: pa.Array           # the RowIssue name, or null


def _typed_inputs(chunk: pd.DataFrame, spec: DatasetSpec) -> dict[str, _Field]:
    missing = pa.array(["", *spec.missing_values], pa.string())
    return {name: _typed(chunk[name], spec.columns[name], missing) for name in spec.input_columns}


def _typed(column: pd.Series, rules: ColumnSpec, missing: pa.Array) -> _Field:
    """Types one column in Arrow as the API's record model does (trimmed text, numbers,
    bounds, allowed values); an unusable value becomes missing, with its issue.

    The spec's missing-value markers count as missing here too: the CSV reader drops them,
    but Parquet cells arrive as they were written."""
    text = pc.utf8_trim_whitespace(_text(column))
    text = pc.if_else(pc.is_in(text, value_set=missing), pa.scalar(None, pa.string()), text)
    given = pc.is_valid(text)
    if rules.type == "string":
        value, wrong = text, pa.array(np.zeros(len(text), dtype=bool))
    else:
        numeric = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
        value = pc.cast(pc.if_else(numeric, text, None), pa.float64())
        wrong = pc.and_(given, pc.invert(numeric))
        if rules.type == "integer":
            fraction = pc.fill_null(pc.not_equal(pc.floor(value), value), False)
            wrong = pc.or_(wrong, fraction)
    outside = _outside(value, rules)
    issue = _first_issue([
        (wrong, RowIssue.WRONG_TYPE), (outside, RowIssue.OUT_OF_RANGE if rules.allowed is None
                                       else RowIssue.NOT_ALLOWED),
        (pc.invert(given), RowIssue.MISSING_REQUIRED if rules.required else None)])
    value = pc.if_else(pc.or_(wrong, outside), pa.scalar(None, value.type), value)
    return _Field(value, issue)


def _text(column: pd.Series) -> pa.Array:
    """One contiguous Arrow array: some kernels (replace_with_mask) refuse chunked input."""
    text = pa.array(column, type=pa.string(), from_pandas=True)
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _outside(value: pa.Array, rules: ColumnSpec) -> pa.Array:
    outside = pa.array(np.zeros(len(value), dtype=bool))
    if rules.min is not None:
        outside = pc.or_(outside, pc.fill_null(pc.less(value, rules.min), False))
    if rules.max is not None:
        outside = pc.or_(outside, pc.fill_null(pc.greater(value, rules.max), False))
    if rules.allowed is not None:
        allowed = pa.array([str(v) if rules.type == "string" else float(v) for v in rules.allowed],
                           type=value.type)
        known = pc.is_in(value, value_set=allowed)
        outside = pc.or_(outside, pc.and_(pc.is_valid(value), pc.invert(known)))
    return outside


def _first_issue(cases: list[tuple[pa.Array, RowIssue | None]]) -> pa.Array:
    issue = pa.nulls(len(cases[0][0]), pa.string())
    for mask, name in reversed(cases):
        if name is not None:
            issue = pc.if_else(mask, pa.scalar(name.value), issue)
    return issue


def _model_frame(inputs: dict[str, _Field], spec: DatasetSpec) -> pd.DataFrame:
    """The raw-record frame `Predictor.probabilities` takes: numbers as float64, text as
    objects, missing as NaN (what the view's raw frame makes of API records)."""
    columns = {}
    for name, field in inputs.items():
        if spec.columns[name].type == "string":
            columns[name] = field.value.to_pandas().astype(object)
        else:
            columns[name] = field.value.to_numpy(zero_copy_only=False)
    return pd.DataFrame(columns)


def _issues(inputs: dict[str, _Field]) -> pa.Array:
    """One readable cell per row, `age: wrong_type; sex: not_allowed`, or null."""
    found = pa.nulls(len(next(iter(inputs.values())).issue), pa.string())
    for name, field in inputs.items():
        named = pc.binary_join_element_wise(pa.scalar(f"{name}: "), field.issue, "")
        # Null-skipping joins lose rows in pyarrow 25, so nulls are handled by coalesce.
        found = pc.coalesce(pc.binary_join_element_wise(found, named, "; "), found, named)
    return found


def _json_objects(inputs: dict[str, _Field], spec: DatasetSpec) -> pa.Array:
    """Each row's typed input as a JSON object, as the API logs a record: built column by
    column in Arrow, because a million json.dumps calls cost seconds."""
    parts = []
    for position, (name, field) in enumerate(inputs.items()):
        key = ("{" if position == 0 else ",") + json.dumps(name) + ":"
        parts.append(pc.binary_join_element_wise(
            pa.scalar(key), pc.fill_null(_json_values(field.value, spec.columns[name]), "null"), ""))
    return pc.binary_join_element_wise(*parts, pa.scalar("}"), "")


def _json_values(value: pa.Array, rules: ColumnSpec) -> pa.Array:
    if rules.type == "integer":
        return pc.cast(pc.cast(value, pa.int64()), pa.string())
    if rules.type == "float":
        text = pc.cast(value, pa.string())
        return pc.if_else(pc.match_substring_regex(text, r"[.eE]"), text,
                          pc.binary_join_element_wise(text, ".0", ""))
    escaped = pc.replace_substring(pc.replace_substring(value, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = pc.fill_null(pc.match_substring_regex(value, r"[\x00-\x1f]"), False)
    if not pc.any(control).as_py():
        return quoted
    rare = [json.dumps(text) for text in value.filter(control).to_pylist()]
    return pc.replace_with_mask(quoted, control, pa.array(rare, pa.string()))


def _output_table(chunk: pd.DataFrame, spec: DatasetSpec, issues: pa.Array, prediction_id: pa.Array,
                  prediction: np.ndarray, label: np.ndarray, probability: np.ndarray) -> pa.Table:
    """The rows as read (key and inputs), why a field was dropped, and the prediction."""
    columns = {"row": pa.array(chunk["row"].to_numpy(), pa.int64())}
    for name in (spec.entity.key, *spec.input_columns):
        columns[name] = _text(chunk[name])
    columns.update(issues=issues, prediction_id=prediction_id,
                   prediction=pa.array(prediction, pa.int64()),
                   label=pa.array(label, pa.string()),
                   probability=pa.array(probability, pa.float64()))
    return pa.table(columns)


class _IdMaker:
    """Prediction ids as UUIDs (version 8: application-defined) that a rerun reproduces:
    20 hex digits fixed by the file's content and the model, 12 counting the file's rows.
    Ids rise with the row, so the log's primary key index fills at its right edge."""

    def __init__(self, checksum: str, predictor: Predictor) -> None:
        version = predictor.version
        run = hashlib.sha256(f"{checksum}|{version.name}|{version.version}".encode()).hexdigest()
        prefix = f"{run[:8]}-{run[8:12]}-8{run[12:15]}-{'89ab'[int(run[15], 16) % 4]}{run[16:19]}-"
        self._prefix = np.frombuffer(prefix.encode(), dtype=np.uint8)

    def for_rows(self, rows: np.ndarray) -> pa.Array:
        digits = np.frombuffer(rows.astype(">u8").tobytes().hex().encode(), dtype=np.uint8)
        ids = np.empty((len(rows), 36), dtype=np.uint8)
        ids[:, :24] = self._prefix
        ids[:, 24:] = digits.reshape(-1, 16)[:, 4:]
        return pa.array(ids.view("S36").ravel(), pa.binary(36)).cast(pa.string())


def _log(database: Database, predictor: Predictor, scored: _Scored) -> int:
    """One transaction per chunk; a chunk an earlier run logged is skipped.

    Chunks commit in file order, so an earlier run of this file and model logged a prefix
    of its rows: the chunk's last id being there means all of it is, its first id missing
    means none is, and only a chunk straddling the end of that prefix is checked row by row.
    """
    logged, scored.logged = scored.logged, None
    ids, version = logged["id"], predictor.version
    with database.session() as session:
        if _is_logged(session, ids.iloc[-1]):
            return 0
        if _is_logged(session, ids.iloc[0]):
            done = set(session.scalars(select(Prediction.id).where(Prediction.id >= ids.iloc[0])
                                       .where(Prediction.id <= ids.iloc[-1])))
            logged = logged[~ids.isin(done)]
        return insert_rows(session, Prediction.__table__, logged, {
            "created_at": utcnow(), "dataset": predictor.spec.name, "source": SOURCE,
            "model_name": version.name, "model_version": version.version,
            "latency_ms": scored.latency_ms})


def _is_logged(session: Session, prediction_id: str) -> bool:
    return session.scalar(select(Prediction.id).where(Prediction.id == prediction_id)) is not None


@contextmanager
def _writer(output: str, spec: DatasetSpec) -> Iterator[Callable[[pa.Table], None]]:
    """Streams tables into the output; Parquet by its suffix, else CSV with formula cells
    defused. The file is written under a temporary name and renamed once complete."""
    target = output[:-3] if output.lower().endswith(".gz") else output
    parquet = target.lower().endswith(_PARQUET_SUFFIXES)
    with _partial(output) as stream:
        schema = _output_schema(spec)
        if parquet:
            sink = pq.ParquetWriter(stream, schema)
            yield sink.write_table
        else:
            sink = pa_csv.CSVWriter(stream, schema)
            yield lambda table: sink.write_table(_defused(table))
        sink.close()


def _output_schema(spec: DatasetSpec) -> pa.Schema:
    texts = [(name, pa.string()) for name in (spec.entity.key, *spec.input_columns)]
    return pa.schema([("row", pa.int64()), *texts, ("issues", pa.string()),
                      ("prediction_id", pa.string()), ("prediction", pa.int64()),
                      ("label", pa.string()), ("probability", pa.float64())])


@contextmanager
def _partial(output: str) -> Iterator[BinaryIO]:
    """A local output is written beside its target and renamed over it at the end, or
    removed on failure; an object store only shows an upload once it is complete."""
    fs, path = url_to_fs(output)
    local = isinstance(fs, LocalFileSystem)
    folder, name = posixpath.split(path)
    writing = posixpath.join(folder, f".{name}.partial") if local else path
    try:
        if local:
            fs.makedirs(folder, exist_ok=True)
        stream = fsspec.open(fs.unstrip_protocol(writing), "wb",
                             compression=infer_compression(name)).open()
    except OSError as exc:
        raise IngestError(f"cannot write {output}: {exc}") from exc
    try:
        with stream:
            yield stream
    except BaseException:
        if local:
            fs.rm(writing)
        raise
    if local:
        fs.mv(writing, path)


def _defused(table: pa.Table) -> pa.Table:
    """`defuse_formulas` on the few rows that may need it: a cell starting with a letter or
    a digit is never a formula, and most rows hold nothing else."""
    texts = [name for name in table.column_names if pa.types.is_string(table.schema.field(name).type)]
    risky = pa.array(np.zeros(table.num_rows, dtype=bool))
    for name in texts:
        odd = pc.invert(pc.match_substring_regex(table[name].combine_chunks(), _PLAIN_START))
        risky = pc.or_(risky, pc.fill_null(odd, False))
    if not pc.any(risky).as_py():
        return table
    defused = pa.Table.from_pandas(defuse_formulas(table.filter(risky).select(texts).to_pandas()),
                                   schema=table.select(texts).schema, preserve_index=False)
    for name in texts:
        column = pc.replace_with_mask(table[name].combine_chunks(), risky,
                                      defused[name].combine_chunks())
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _checksum(source: str) -> str:
    with open_source(source) as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _is_parquet(source: str) -> bool:
    with open_source(source) as stream:
        return stream.read(4) == b"PAR1"

"""Batch scoring: `lifeboat predict FILE`. Any size of CSV (plain or gzip) or Parquet file is
read in bounded chunks, scored by the champion's compiled scorer straight from Arrow columns
(a model it cannot replay through `Predictor.probabilities`, the path every route takes),
written out next to the input, and logged as source `batch`.

Values are typed as the API types them. A value that cannot be used (not a number, out of
range, not an allowed category) does not stop the file: the row is scored with that field
missing, which the model imputes as it does any missing value, and the output's `issues`
column names each such field. A missing required field is named there too. Lines the parser
cannot split into the header's columns get no output row; they are counted, and the `row`
column (the file's data row number) shows where they were.

A file may lack inputs the feature view stores under their own names (entities without the
aggregates of their events): those are read from the online store by each row's key, one
read per chunk, so a row scores as its entity does by id. A row whose key is missing
(`missing_required`) or unknown to the store (`unknown_entity`) is scored with them missing,
and the issue is named under the key's column. A file with every input, or without the
key's column, reads no store.

Each logged prediction keeps the row's key as its entity id and the view row it was scored
on, made JSON column by column as its input is.

`checked_records` types the rows of an upload to `POST /predict/csv` the same way: a bad
value is left out and named with its row, column and reason.

The log is written one transaction per chunk, in file order. Prediction ids derive from the
file's content, the model version and the row, so a rerun after a crash (or of the same file
with the same champion) writes the same ids and logs only the chunks not logged yet; a new
champion logs the file again. The output file appears, whole, only when the run succeeds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import posixpath
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fsspec.utils import infer_compression
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, Prediction, insert_table, utcnow
from lifeboat.errors import IngestError, NoChampionError
from lifeboat.features import OnlineStore, feature_view, open_online_store
from lifeboat.files import (
    SIGNATURE_BYTES,
    content_checksum,
    is_gzip,
    is_parquet,
    open_source,
    write_whole,
)
from lifeboat.ingest import FilePart, defuse_formulas, read_ahead, read_chunks, read_part
from lifeboat.registry import ModelRegistry, view_mismatch
from lifeboat.scoring.predictor import MAX_ENTITY_ID, Predictor, load_predictor
from lifeboat.validation import FILE_NUMBER, ColumnRule, FileRejected, RowIssue, table_rules

_GZIP_WINDOW = zlib.MAX_WBITS | 16  # zlib reads gzip's header and trailer
# Rows a chunk has at least: Arrow parses 4 MB blocks, ~50,000 such rows, so about one block.
# Logging is the slowest stage; with small chunks it starts sooner and has less left at the end.
_CHUNK_ROWS = 40_000
# Chunks logged at once, each over a connection of its own: PostgreSQL takes a COPY on one
# core, and the log's server work was the pipeline's slowest stage. SQLite has one writer.
_LOG_CONNECTIONS = {"postgresql": 2}
UNKNOWN_ENTITY = "unknown_entity"  # an `issues` kind: the online store holds no such key
_PARQUET_SUFFIXES = (".parquet", ".pq")
_INPUT_SUFFIXES = (".gz", ".csv", ".tsv", ".txt", *_PARQUET_SUFFIXES)


def _byte_set(members: bytes) -> np.ndarray:
    """A lookup table: which of the 256 byte values are in `members`."""
    table = np.zeros(256, dtype=bool)
    table[list(members)] = True
    return table


_NUMBER_BYTES = _byte_set(b"0123456789+-.eE")
# A cell starting with an ASCII letter or digit is never run as a formula by a spreadsheet.
_PLAIN_START = _byte_set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


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


@dataclass(frozen=True)
class BatchProgress:
    rows: int           # scored so far
    done: int           # the file's rows read so far, unreadable lines included
    total: int | None   # its rows: a CSV file's data lines, a Parquet file's footer count


def champion_predictor(settings: Settings, spec: DatasetSpec,
                       version: str | None = None) -> Predictor:
    """The champion (or the given version) as the service loads it: refused when trained on
    other features."""
    registry = ModelRegistry(settings, spec.model_name)
    view = feature_view(spec)
    served = registry.require_champion() if version is None else registry.get(version)
    if mismatch := view_mismatch(served, view):
        raise NoChampionError(mismatch)
    return load_predictor(registry, spec, served, view)


def default_output(source: str, parquet: bool) -> str:
    """`<stem>.predictions.csv` (or `.parquet` for a Parquet input) beside the input."""
    folder, name = posixpath.split(source)
    stem = name
    while stem.lower().endswith(_INPUT_SUFFIXES):
        stem = stem.rsplit(".", 1)[0]
    suffix = ".parquet" if parquet else ".csv"
    return posixpath.join(folder, f"{stem or name}.predictions{suffix}")


def score_file(settings: Settings, database: Database, spec: DatasetSpec, source: str,
               output: str | None = None,
               progress: Callable[[BatchProgress], None] = lambda _: None,
               logged_as: str = "batch", version: str | None = None) -> BatchReport:
    """Scores every row of `source` with the champion (or `version`), writes `output` and
    logs each prediction with source `logged_as`."""
    started = time.perf_counter()
    predictor = champion_predictor(settings, spec, version)
    parquet = _is_parquet(source)
    checksum, lines = _fingerprint(source)
    ids = _IdMaker(checksum, predictor, logged_as)
    meter = _Meter(_parquet_rows(source) if parquet else lines, progress)
    output = output or default_output(source, parquet)
    try:
        file = read_chunks(lambda: open_source(source), spec.scoring_source, _CHUNK_ROWS)
        chunks = read_ahead(file.chunks, "lifeboat-batch-read")
        first = next(chunks)  # the file's columns are known from here on
        with (_writer(output, spec) as write,
              _stored_inputs(settings, predictor, file.given) as fill):
            done, written = _pipeline(predictor, database, ids, logged_as,
                                      itertools.chain([first], chunks), write, meter.advance,
                                      fill)
    except FileRejected as rejected:
        raise IngestError(f"cannot score {source}: {rejected.reason}") from None
    meter.finish()
    rows = sum(scored.rows for scored in done)
    return BatchReport(source, output, predictor.version.name, predictor.version.version, rows,
                       written, rows - written, sum(scored.with_issues for scored in done),
                       len(file.malformed), time.perf_counter() - started)


@dataclass(frozen=True)
class PartScored:
    rows: int
    with_issues: int
    skipped_lines: int


def score_part(settings: Settings, database: Database, predictor: Predictor, part: FilePart,
               checksum: str, output: str, logged_as: str = "batch") -> PartScored:
    """One part of a file (`ingest.file_parts`) scored, logged and written whole to `output`
    (Parquet): a task of a distributed run. `checksum` is the whole file's, so each row gets
    the id a run over the whole file gives it, and a part run twice, or by the other engine,
    logs nothing twice. Chunks are logged as they are scored, each in its own transaction."""
    ids = _IdMaker(checksum, predictor, logged_as)
    rows = with_issues = 0
    try:
        file = read_part(part, predictor.spec.scoring_source, _CHUNK_ROWS)
        chunks = iter(file.chunks)
        first = next(chunks)
        with (_writer(output, predictor.spec) as write,
              _stored_inputs(settings, predictor, file.given) as fill):
            for chunk in itertools.chain([first], chunks):
                scored, table = _score_chunk(predictor, chunk, ids, fill)
                write(table)
                _log(database, predictor, scored, logged_as, None)
                rows, with_issues = rows + scored.rows, with_issues + scored.with_issues
    except FileRejected as rejected:
        raise IngestError(f"cannot score {part.url}: {rejected.reason}") from None
    return PartScored(rows, with_issues, len(file.malformed))


def logged_from_file(database: Database, predictor: Predictor, checksum: str,
                     logged_as: str = "batch") -> int:
    """How many predictions of the file (by its content's `checksum`) the log holds from
    this model and source: what a distributed run, whose tasks may run twice, counts before
    and after to know exactly how many it logged."""
    low, high = _IdMaker(checksum, predictor, logged_as).bounds()
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Prediction)
                              .where(Prediction.id.between(low, high))) or 0


def _pipeline(predictor: Predictor, database: Database, ids: _IdMaker, logged_as: str,
              chunks: Iterator[pd.DataFrame], write: Callable[[pa.Table], None],
              advance: Callable[[pd.DataFrame], None],
              fill: _Fill) -> tuple[list[_Scored], int]:
    """Scores chunk after chunk while the ones before are written out and logged, in threads
    of their own; Arrow's writer, its kernels, ONNX Runtime and the database driver work
    without holding the GIL, so these overlap. On PostgreSQL two chunks are logged at once,
    but a chunk commits only after the one before it, so the log always holds a prefix of
    the file.

    Returns the chunks' results and how many rows this run logged."""
    done: list[_Scored] = []
    logged: list[Future[int]] = []
    written: list[Future[None]] = []
    connections = _LOG_CONNECTIONS.get(database.engine.dialect.name, 1)
    with (ThreadPoolExecutor(connections, thread_name_prefix="lifeboat-batch-log") as log,
          ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifeboat-batch-write") as out):
        for chunk in chunks:
            scored, table = _score_chunk(predictor, chunk, ids, fill)
            if written:
                written[-1].result()
            if len(logged) >= connections:
                logged[-connections].result()
            written.append(out.submit(write, table))
            logged.append(log.submit(_log, database, predictor, scored, logged_as,
                                     logged[-1] if logged else None))
            done.append(scored)
            advance(chunk)
        for future in written:
            future.result()
        return done, sum(future.result() for future in logged)


class _Meter:
    """Reports progress over the file's rows: the reader numbers them as the file does, so a
    chunk's last row number is how far reading is. A CSV file's total counts lines, which
    a value spanning lines outnumbers: the end is reported as the whole file."""

    def __init__(self, total: int | None, report: Callable[[BatchProgress], None]) -> None:
        self.total, self.report, self.rows, self.done = total, report, 0, 0
        report(BatchProgress(0, 0, total))

    def advance(self, chunk: pd.DataFrame) -> None:
        self.rows += len(chunk)
        self.done = int(chunk["row"].iat[-1])
        done = self.done if self.total is None else min(self.done, self.total)
        self.report(BatchProgress(self.rows, done, self.total))

    def finish(self) -> None:
        self.report(BatchProgress(self.rows, self.total or self.done, self.total))


@dataclass
class _Scored:
    # The log's rows, made by the thread that logs them (their JSON is a large part of a
    # chunk's work); dropped once written, to free the memory.
    logged: Callable[[], pa.Table] | None
    rows: int
    latency_ms: float            # scoring's per row (a store read included), as every route logs it
    with_issues: int


def _score_chunk(predictor: Predictor, chunk: pd.DataFrame, ids: _IdMaker,
                 fill: _Fill) -> tuple[_Scored, pa.Table]:
    """The chunk's rows to log, and its rows for the output file."""
    spec, key = predictor.spec, predictor.spec.entity.key
    scoring = time.perf_counter()
    inputs = _typed_inputs(chunk, spec)
    entity_ids = _entity_ids(chunk[key])
    scored_inputs, key_issue = fill(entity_ids, inputs)
    view = _view_columns(predictor, scored_inputs)
    probability = predictor.view_probabilities(view)
    latency_ms = (time.perf_counter() - scoring) * 1000 / len(chunk)
    prediction = (probability >= predictor.version.threshold).astype(np.int64)
    label = pa.array([spec.label_for(0), spec.label_for(1)], pa.string()).take(prediction)
    prediction_id = ids.for_rows(chunk["row"].to_numpy())
    issues = _issues({key: key_issue, **{name: field.issue for name, field in inputs.items()}},
                     len(chunk))
    logged = partial(_log_rows, {
        "id": prediction_id, "entity_id": entity_ids, "prediction": prediction, "label": label,
        "probability": probability},
        {name: (field.value, spec.input_fields[name].type) for name, field in inputs.items()},
        {name: view[name] for name in predictor.view.columns})
    return (_Scored(logged, len(chunk), latency_ms, len(issues) - issues.null_count),
            _output_table(chunk, spec, issues, prediction_id, prediction, label, probability))


def _log_rows(columns: dict[str, Any], inputs: Mapping[str, tuple[pa.Array, str]],
              view: Mapping[str, Any]) -> pa.Table:
    """The prediction log's rows: the typed inputs and the view row, each as JSON."""
    return pa.table({**columns, "input": _json_objects(inputs), "features": _json_objects(
        {name: _view_json_column(column) for name, column in view.items()})})


def _view_columns(predictor: Predictor, inputs: dict[str, _Field]) -> Mapping[str, Any]:
    """The feature view of the typed Arrow columns, by the compiled scorer straight from them; for
    a model it cannot replay, `FeatureView.from_records` on the frame of records the routes
    build."""
    if predictor.fast is not None:
        return predictor.fast.view_columns({name: field.value for name, field in inputs.items()})
    return predictor.view.from_records(_model_frame(inputs, predictor.spec))


def _entity_ids(keys: pd.Series) -> pa.Array:
    """The rows' keys (trimmed by the reader) as entity ids: null where too long to be one."""
    text = _text(keys)
    usable = pc.less_equal(pc.utf8_length(text), MAX_ENTITY_ID)
    return pc.if_else(usable, text, pa.scalar(None, pa.string()))


# Inputs read from the online store, by entity id, for a chunk: the inputs to score, and
# each row's issue with its key (null, or None when no row has one).
_Fill = Callable[[pa.Array, dict[str, "_Field"]], tuple[dict[str, "_Field"], pa.Array | None]]


def _as_given(_entity_ids: pa.Array,
              inputs: dict[str, _Field]) -> tuple[dict[str, _Field], None]:
    return inputs, None


@contextmanager
def _stored_inputs(settings: Settings, predictor: Predictor,
                   given: Collection[str]) -> Iterator[_Fill]:
    """How a chunk's inputs are completed: from the online store, opened for the run, when
    the file has the entity key's column and lacks inputs the view stores under the same
    name; else as they are."""
    view = predictor.view
    absent = [name for name in predictor.spec.input_columns
              if name not in given and name in view.columns]
    if not absent or predictor.spec.entity.key not in given:
        yield _as_given
        return
    store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
    try:
        yield partial(_filled, store, predictor, absent)
    finally:
        store.close()


def _filled(store: OnlineStore, predictor: Predictor, absent: list[str], entity_ids: pa.Array,
            inputs: dict[str, _Field]) -> tuple[dict[str, _Field], pa.Array | None]:
    """The `absent` inputs as the store holds them for each row's entity, in one read; null
    for a row without a key or with one the store does not know, and named in its issue."""
    view, spec = predictor.view, predictor.spec
    keyed = pc.is_valid(entity_ids)
    vectors = store.read(view.key, entity_ids.filter(keyed).to_pylist())
    known = np.zeros(len(entity_ids), dtype=bool)
    known[np.flatnonzero(keyed.to_numpy(zero_copy_only=False))] = [v is not None for v in vectors]
    columns = list(view.columns)
    filled = dict(inputs)
    for name in absent:
        position = columns.index(name)
        stored = pa.array([None if v is None else v[position] for v in vectors], from_pandas=True)
        kind = pa.string() if spec.input_fields[name].type == "string" else pa.float64()
        filled[name] = _Field(pc.replace_with_mask(pa.nulls(len(entity_ids), kind), keyed,
                                                   stored.cast(kind)), None)
    issue = _first_issue([(pc.invert(keyed), RowIssue.MISSING_REQUIRED),
                          (pa.array(~known) if keyed.true_count else None, UNKNOWN_ENTITY)])
    return filled, issue


@dataclass(frozen=True)
class _Field:
    """One input column of a chunk: the value the model sees and why a given one was dropped."""

    value: pa.Array           # float64 for numbers, trimmed text otherwise; null when missing
    issue: pa.Array | None    # the RowIssue name, or null; None when no row has one


@dataclass(frozen=True)
class RowProblem:
    """Why a value of a file's row was not used, or why a line is no row at all."""

    row: int | None       # the file's data row, as `row` numbers it
    column: str | None    # None: the line does not split into the header's columns
    issue: str            # a RowIssue name (`wrong_type`, ...)
    reason: str           # the same in words, with the rule it broke
    value: str | None     # the text as given


def checked_records(spec: DatasetSpec,
                    chunk: pd.DataFrame) -> tuple[list[dict[str, Any]], list[RowProblem]]:
    """A chunk's rows as the records a request carries, typed exactly as this module types
    a file it scores: a value that cannot be used is left out (the model takes it as
    missing) and named with its row, column and reason. An upload over HTTP is read through
    this, so a file gets the same predictions and the same issues however it is scored."""
    rules = table_rules(spec).inputs
    rows = chunk["row"].tolist()
    columns: dict[str, list[Any]] = {}
    problems: list[RowProblem] = []
    for name, field in _typed_inputs(chunk, spec).items():
        values = field.value.to_pylist()
        whole = spec.input_fields[name].type == "integer"
        columns[name] = [v if v is None else int(v) for v in values] if whole else values
        if field.issue is None:
            continue
        given = chunk[name].tolist()
        problems += [RowProblem(rows[at], name, issue, _reason(rules[name], issue),
                                given[at] if isinstance(given[at], str) else None)
                     for at, issue in enumerate(field.issue.to_pylist()) if issue is not None]
    records = [{name: values[at] for name, values in columns.items() if values[at] is not None}
               for at in range(len(chunk))]
    return records, sorted(problems, key=lambda problem: problem.row or 0)


def _reason(rule: ColumnRule, issue: str) -> str:
    """An issue in the words a person fixing the file needs: the rule the value broke."""
    if issue == RowIssue.WRONG_TYPE:
        return f"not {rule.number_name}"
    if issue == RowIssue.TOO_LONG:
        return f"longer than {rule.max_length} characters"
    if issue == RowIssue.NOT_ALLOWED:
        return f"not one of {', '.join(str(value) for value in rule.allowed or ())}"
    if issue == RowIssue.OUT_OF_RANGE:
        low, high = (f"{bound:g}" if bound is not None else None for bound in (rule.low, rule.high))
        if low is not None and high is not None:
            return f"outside {low} to {high}"
        return f"below {low}" if low is not None else f"above {high}"
    return "required, but missing"


def _typed_inputs(chunk: pd.DataFrame, spec: DatasetSpec) -> dict[str, _Field]:
    return {name: _typed(chunk[name], rule) for name, rule in table_rules(spec).inputs.items()}


def _typed(column: pd.Series, rule: ColumnRule) -> _Field:
    """Types one column in Arrow as the API's record model does (numbers, bounds, allowed
    values, length); an unusable value becomes missing, with its issue. The reader has
    trimmed the text, dropped missing tokens and spelled categories as the spec does."""
    text = _text(column)
    given = pc.is_valid(text)
    value, wrong = text, None
    if rule.is_number:
        value, wrong = _numbers(text, given)
        if rule.whole:
            wrong = _or(wrong, pc.fill_null(pc.not_equal(pc.floor(value), value), False))
    elif rule.max_length is not None:
        long = pc.fill_null(pc.greater(pc.utf8_length(text), rule.max_length), False)
        wrong = long if pc.any(long).as_py() else None
    outside = _outside(value, rule)
    issue = _first_issue([
        (wrong, rule.bad_value),
        (outside, rule.outside),
        (pc.invert(given) if rule.required else None, RowIssue.MISSING_REQUIRED)])
    dropped = _or(wrong, outside)
    if dropped is not None:
        value = pc.if_else(dropped, pa.scalar(None, value.type), value)
    return _Field(value, issue)


def _text(column: pd.Series) -> pa.Array:
    """One contiguous Arrow array: some kernels (replace_with_mask) refuse chunked input."""
    text = pa.array(column, type=pa.string(), from_pandas=True)
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _numbers(text: pa.Array, given: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Number-shaped, finite text as float64, and which given values are not (None: none).

    When every byte is a digit, sign, point or exponent letter, Arrow's cast accepts exactly
    the text `FILE_NUMBER` does (the tests try every such string of up to five characters), at
    a fraction of the pattern's cost; other text is matched by the pattern."""
    if _NUMBER_BYTES[_data_bytes(text)].all():
        try:
            return _finite(pc.cast(text, pa.float64()), None)
        except pa.ArrowInvalid:
            pass
    numeric = pc.fill_null(pc.match_substring_regex(text, FILE_NUMBER), False)
    return _finite(pc.cast(pc.if_else(numeric, text, None), pa.float64()),
                   pc.and_(given, pc.invert(numeric)))


def _finite(value: pa.Array, wrong: pa.Array | None) -> tuple[pa.Array, pa.Array | None]:
    """A number too large for a float (1e999) is no usable number either, as the API's
    record model (no infinities) has it; kept, it would be logged as JSON no parser reads."""
    infinite = pc.fill_null(pc.is_inf(value), False)
    if not pc.any(infinite).as_py():
        return value, wrong
    return pc.if_else(infinite, pa.scalar(None, pa.float64()), value), _or(wrong, infinite)


def _data_bytes(text: pa.Array) -> np.ndarray:
    """All of a string array's UTF-8 bytes, value after value (a null adds none)."""
    offsets = _offsets(text)
    data = text.buffers()[2]
    if data is None:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]


def _offsets(text: pa.Array) -> np.ndarray:
    """Where each value of a string array starts in its data, and where the last one ends."""
    return np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + len(text) + 1]


def _or(left: pa.Array | None, right: pa.Array | None) -> pa.Array | None:
    """Either mask, None standing for one that holds nowhere."""
    if left is None or right is None:
        return right if left is None else left
    return pc.or_(left, right)


def _outside(value: pa.Array, rule: ColumnRule) -> pa.Array | None:
    outside = None
    if rule.low is not None:
        outside = _or(outside, pc.fill_null(pc.less(value, rule.low), False))
    if rule.high is not None:
        outside = _or(outside, pc.fill_null(pc.greater(value, rule.high), False))
    if rule.allowed is not None:
        allowed = pa.array(rule.allowed, type=value.type)
        known = pc.is_in(value, value_set=allowed)
        outside = _or(outside, pc.and_(pc.is_valid(value), pc.invert(known)))
    return outside


def _first_issue(cases: list[tuple[pa.Array | None, str]]) -> pa.Array | None:
    """The first case that holds, per row (null if none); None when none holds anywhere,
    the common case, which then costs nothing further."""
    issue = None
    for mask, name in reversed(cases):
        if mask is not None and pc.any(mask).as_py():
            otherwise = pa.scalar(None, pa.string()) if issue is None else issue
            issue = pc.if_else(mask, pa.scalar(str(name)), otherwise)
    return issue


def _model_frame(inputs: dict[str, _Field], spec: DatasetSpec) -> pd.DataFrame:
    """The raw-record frame `Predictor.probabilities` takes: numbers as float64, text as
    objects, missing as NaN (what the view's raw frame makes of API records)."""
    columns = {}
    for name, field in inputs.items():
        if spec.input_fields[name].type == "string":
            columns[name] = field.value.to_pandas().astype(object)
        else:
            columns[name] = field.value.to_numpy(zero_copy_only=False)
    return pd.DataFrame(columns)


def _issues(issues: Mapping[str, pa.Array | None], rows: int) -> pa.Array:
    """One readable cell per row, `age: wrong_type; sex: not_allowed`, or null."""
    found = pa.nulls(rows, pa.string())
    for name, issue in issues.items():
        if issue is None:
            continue
        named = pc.binary_join_element_wise(pa.scalar(f"{name}: "), issue, "")
        # Null-skipping joins lose rows in pyarrow 25, so nulls are handled by coalesce.
        found = pc.coalesce(pc.binary_join_element_wise(found, named, "; "), found, named)
    return found


def _json_objects(columns: Mapping[str, tuple[pa.Array, str]]) -> pa.Array:
    """Each row as a JSON object of the columns, each given with the type its values are
    written as (`integer`, `float`, `string`), null for missing: built column by column in
    Arrow, in one join, because a million json.dumps calls cost seconds.

    The join costs about the same per part and row whatever the part holds, so consecutive
    columns whose values repeat (classes, flags, ports) go in as one part: their members
    written once per distinct combination of values, then taken for each row."""
    parts: list[pa.Array | pa.Scalar] = []
    repeating: list[pa.DictionaryArray] = []  # `"key":value` of consecutive repeating columns
    rows = len(next(iter(columns.values()))[0])
    for position, (name, (value, kind)) in enumerate(columns.items()):
        key = pa.scalar(("{" if position == 0 else ",") + json.dumps(name) + ":")
        sample = value.slice(0, 1000)
        if 2 * len(pc.unique(sample)) <= len(sample):
            repeating.append(_members(key, value, kind))
            continue
        parts += _combined(repeating, rows)
        repeating = []
        parts += [key, pc.fill_null(_json_values(value, kind), "null")]
    parts += _combined(repeating, rows)
    return pc.binary_join_element_wise(*parts, pa.scalar("}"), "")


def _members(key: pa.Scalar, value: pa.Array, kind: str) -> pa.DictionaryArray:
    """`"key":value` per row, dictionary-encoded: written once per distinct value, and once
    for missing (the dictionary's last entry)."""
    encoded = pc.dictionary_encode(value)
    texts = pa.concat_arrays([_json_values(encoded.dictionary, kind), pa.array(["null"])])
    members = pc.binary_join_element_wise(key, texts, "")
    return pa.DictionaryArray.from_arrays(
        pc.fill_null(encoded.indices, len(members) - 1), members)


def _combined(columns: list[pa.DictionaryArray], rows: int) -> list[pa.Array]:
    """Dictionary-encoded members of consecutive columns as one part: each distinct
    combination of them joined once. Columns that vary together too much stay apart."""
    if len(columns) < 2:
        return [column.dictionary.take(column.indices) for column in columns]
    combination, bound = np.zeros(rows, dtype=np.int64), 1
    for column in columns:
        size = len(column.dictionary)
        if bound * size >= 1 << 62:
            combination, distinct = pd.factorize(combination)
            bound = len(distinct)
        combination = combination * size + column.indices.to_numpy(zero_copy_only=False)
        bound *= size
    codes, distinct = pd.factorize(combination)
    if 2 * len(distinct) > rows:
        return [column.dictionary.take(column.indices) for column in columns]
    running = np.maximum.accumulate(codes)  # factorize numbers values as they first appear
    first = np.flatnonzero(np.r_[True, running[1:] > running[:-1]])
    joined = pc.binary_join_element_wise(
        *(column.dictionary.take(column.indices.take(first)) for column in columns), "")
    return [joined.take(codes)]


def _view_json_column(column: Any) -> tuple[pa.Array, str]:
    """A view column (NumPy, Arrow or pandas) in Arrow, and how its values are written:
    missing (NaN, None) and infinite numbers, which JSON cannot hold, are null."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not isinstance(column, pa.Array):
        column = pa.array(np.asarray(column), from_pandas=True)
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        numbers = column.cast(pa.float64())
        return pc.if_else(pc.is_finite(numbers), numbers, pa.scalar(None, pa.float64())), "float"
    return column.cast(pa.string()), "string"


def _json_values(value: pa.Array, kind: str) -> pa.Array:
    if kind == "integer":
        return _integer_texts(value)
    if kind == "float":
        text = pc.cast(value, pa.string())
        return pc.if_else(pc.match_substring_regex(text, r"[.eE]"), text,
                          pc.binary_join_element_wise(text, ".0", ""))
    return _json_strings(value)


def _integer_texts(value: pa.Array) -> pa.Array:
    """Whole numbers (float64) as their digits. One beyond int64 (a 20-digit number, which
    the API takes too) is written by Python's int, which has no range: Arrow's cast refuses it."""
    huge = pc.fill_null(pc.greater_equal(pc.abs(value), 2.0**63), False)
    if not pc.any(huge).as_py():
        return pc.cast(pc.cast(value, pa.int64()), pa.string())
    texts = pc.cast(pc.cast(pc.if_else(huge, 0.0, value), pa.int64()), pa.string())
    digits = pa.array([str(int(number)) for number in value.filter(huge).to_pylist()], pa.string())
    return pc.replace_with_mask(texts, huge, digits)


def _json_strings(value: pa.Array) -> pa.Array:
    """Quoted, with quotes and backslashes escaped; a value with a control character is left
    to json.dumps. The escapes are only run on the values that have something to escape."""
    data = _data_bytes(value)
    escaped = value
    if (data == ord('"')).any() or (data == ord("\\")).any():
        special = pc.fill_null(pc.or_(pc.match_substring(value, '"'),
                                      pc.match_substring(value, "\\")), False)
        fixed = pc.replace_substring(pc.replace_substring(value.filter(special), "\\", "\\\\"),
                                     '"', '\\"')
        escaped = pc.replace_with_mask(value, special, fixed)
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    if not (data < 0x20).any():
        return quoted
    control = pc.fill_null(pc.match_substring_regex(value, r"[\x00-\x1f]"), False)
    rare = [json.dumps(text) for text in value.filter(control).to_pylist()]
    return pc.replace_with_mask(quoted, control, pa.array(rare, pa.string()))


def _output_table(chunk: pd.DataFrame, spec: DatasetSpec, issues: pa.Array, prediction_id: pa.Array,
                  prediction: np.ndarray, label: pa.Array, probability: np.ndarray) -> pa.Table:
    """The rows as read (key and inputs), why a field was dropped, and the prediction."""
    columns = {"row": pa.array(chunk["row"].to_numpy(), pa.int64())}
    for name in (spec.entity.key, *spec.input_columns):
        columns[name] = _text(chunk[name])
    columns.update(issues=issues, prediction_id=prediction_id,
                   prediction=pa.array(prediction, pa.int64()), label=label,
                   probability=pa.array(probability, pa.float64()))
    return pa.table(columns)


class _IdMaker:
    """Prediction ids as UUIDs (version 8: application-defined) that a rerun reproduces:
    20 hex digits fixed by the file's content, the model and the source logged, 12 counting
    the file's rows. Ids rise with the row, so the log's primary key index fills at its right
    edge."""

    def __init__(self, checksum: str, predictor: Predictor, logged_as: str) -> None:
        version = predictor.version
        run = hashlib.sha256(
            f"{checksum}|{version.name}|{version.version}|{logged_as}".encode()).hexdigest()
        prefix = f"{run[:8]}-{run[8:12]}-8{run[12:15]}-{'89ab'[int(run[15], 16) % 4]}{run[16:19]}-"
        self._prefix = np.frombuffer(prefix.encode(), dtype=np.uint8)

    def bounds(self) -> tuple[str, str]:
        """The lowest and the highest id the run can give."""
        prefix = self._prefix.tobytes().decode()
        return prefix + "0" * 12, prefix + "f" * 12

    def for_rows(self, rows: np.ndarray) -> pa.Array:
        digits = np.frombuffer(rows.astype(">u8").tobytes().hex().encode(), dtype=np.uint8)
        ids = np.empty((len(rows), 36), dtype=np.uint8)
        ids[:, :24] = self._prefix
        ids[:, 24:] = digits.reshape(-1, 16)[:, 4:]
        return pa.array(ids.view("S36").ravel(), pa.binary(36)).cast(pa.string())


def _log(database: Database, predictor: Predictor, scored: _Scored, logged_as: str,
         before: Future[int] | None) -> int:
    """One transaction per chunk, committed once the chunk `before` it is: a failure there
    rolls this one back too. Another run logging the same rows at the same moment (a task
    of a distributed run started twice) makes the insert fail on the primary key; the chunk
    is then looked at again, and its rows are found logged."""
    logged, scored.logged = scored.logged(), None
    try:
        return _log_once(database, predictor, logged, scored.latency_ms, logged_as, before)
    except IntegrityError:
        return _log_once(database, predictor, logged, scored.latency_ms, logged_as, before)


def _log_once(database: Database, predictor: Predictor, logged: pa.Table, latency_ms: float,
              logged_as: str, before: Future[int] | None) -> int:
    with database.session() as session:
        inserted = _log_unlogged(session, predictor, logged, latency_ms, logged_as)
        if before is not None:
            before.result()
    return inserted


def _log_unlogged(session: Session, predictor: Predictor, logged: pa.Table, latency_ms: float,
                  logged_as: str) -> int:
    """The chunk's rows not logged yet.

    Ids rise with the row and a chunk's rows are consecutive in the file, so the ids of its
    rows that are logged (by an earlier run that stopped midway, by the other engine, whose
    chunks end elsewhere) are exactly the logged ids between its first and its last: one
    count on the primary key's index, and their list only when some but not all are."""
    ids, version = logged["id"], predictor.version
    between = Prediction.id.between(ids[0].as_py(), ids[len(ids) - 1].as_py())
    done = session.scalar(select(func.count()).select_from(Prediction).where(between))
    if done == len(ids):
        return 0
    if done:
        found = list(session.scalars(select(Prediction.id).where(between)))
        logged = logged.filter(pc.invert(pc.is_in(ids, value_set=pa.array(found, pa.string()))))
    return insert_table(session, Prediction.__table__, logged, {
        "created_at": utcnow(), "dataset": predictor.spec.name, "source": logged_as,
        "model_name": version.name, "model_version": version.version,
        "latency_ms": latency_ms})


@contextmanager
def _writer(output: str, spec: DatasetSpec) -> Iterator[Callable[[pa.Table], None]]:
    """Streams tables into the output; Parquet by its suffix, else CSV with formula cells
    defused. The file is written under a temporary name and renamed once complete."""
    target = output[:-3] if output.lower().endswith(".gz") else output
    parquet = target.lower().endswith(_PARQUET_SUFFIXES)
    try:
        whole = write_whole(output, infer_compression(output))
    except OSError as exc:
        raise IngestError(f"cannot write {output}: {exc}") from exc
    with whole as stream:
        schema = _output_schema(spec)
        sink = pq.ParquetWriter(stream, schema) if parquet else pa_csv.CSVWriter(stream, schema)
        try:
            yield sink.write_table if parquet else lambda table: sink.write_table(_defused(table))
        finally:
            sink.close()  # on failure too: left open, its finaliser would write to a closed file


def _output_schema(spec: DatasetSpec) -> pa.Schema:
    texts = [(name, pa.string()) for name in (spec.entity.key, *spec.input_columns)]
    return pa.schema([("row", pa.int64()), *texts, ("issues", pa.string()),
                      ("prediction_id", pa.string()), ("prediction", pa.int64()),
                      ("label", pa.string()), ("probability", pa.float64())])


def _defused(table: pa.Table) -> pa.Table:
    """`defuse_formulas` on the few rows that may need it: a cell starting with a letter or
    a digit is never a formula, and most rows hold nothing else."""
    texts = [name for name in table.column_names if pa.types.is_string(table.schema.field(name).type)]
    risky = np.zeros(table.num_rows, dtype=bool)
    for name in texts:
        risky |= _odd_start(table[name].combine_chunks())
    if not risky.any():
        return table
    risky = pa.array(risky)
    defused = pa.Table.from_pandas(defuse_formulas(table.filter(risky).select(texts).to_pandas()),
                                   schema=table.select(texts).schema, preserve_index=False)
    for name in texts:
        column = pc.replace_with_mask(table[name].combine_chunks(), risky,
                                      defused[name].combine_chunks())
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _odd_start(text: pa.Array) -> np.ndarray:
    """Which values are empty or start with a byte other than an ASCII letter or digit:
    read off the first byte of each in Arrow's buffers, with no string made."""
    offsets, data = _offsets(text), text.buffers()[2]
    starts, empty = offsets[:-1], offsets[1:] == offsets[:-1]
    first = np.zeros(len(text), dtype=np.uint8)
    if data is not None and data.size:
        first = np.frombuffer(data, dtype=np.uint8)[np.minimum(starts, data.size - 1)]
    return (empty | ~_PLAIN_START[first]) & text.is_valid().to_numpy(zero_copy_only=False)


def _fingerprint(source: str) -> tuple[str, int | None]:
    """The file's SHA-256, which prediction ids derive from, and its data lines (of the text
    inside a gzip file), counted in the same pass: a CSV file's rows, the progress total."""
    lines = _Lines()
    return content_checksum(source, lines.add), lines.data_lines()


class _Lines:
    """Counts a text file's lines as its bytes stream by, inflating gzip members."""

    def __init__(self) -> None:
        self.count, self.last = 0, b"\n"
        self._inflate = None  # a zlib decompressor, for a gzip file
        self._known, self._first = True, True

    def add(self, block: bytes) -> None:
        if self._first and is_gzip(block):
            self._inflate = zlib.decompressobj(_GZIP_WINDOW)
        self._first = False
        try:
            text = block if self._inflate is None else self._inflated(block)
        except zlib.error:  # the reader rejects the file, with its reason
            self._known = False
            return
        if text:
            self.count += text.count(b"\n")
            self.last = text[-1:]

    def _inflated(self, block: bytes) -> bytes:
        text = [self._inflate.decompress(block)]
        while self._inflate.eof and self._inflate.unused_data:  # a next member
            rest = self._inflate.unused_data
            self._inflate = zlib.decompressobj(_GZIP_WINDOW)
            text.append(self._inflate.decompress(rest))
        return b"".join(text)

    def data_lines(self) -> int | None:
        """Lines after the header; a last line without a newline counts too."""
        if not self._known:
            return None
        return max(self.count + (self.last != b"\n") - 1, 0)


def _is_parquet(source: str) -> bool:
    with open_source(source) as stream:
        return is_parquet(stream.read(SIGNATURE_BYTES))


def _parquet_rows(source: str) -> int | None:
    """The row count a Parquet file's footer states; None if it cannot be read (the reader
    then rejects the file, with its reason)."""
    with open_source(source) as stream:
        try:
            return pq.ParquetFile(stream).metadata.num_rows
        except (pa.ArrowInvalid, OSError):
            return None

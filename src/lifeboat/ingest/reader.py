"""Reading any file a user drops: CSV (any common delimiter, UTF-8 with or without BOM, or
Latin-1), JSON lines or a JSON array of objects (json_records.py), any of these
gzip-compressed, or Parquet, as a stream of bounded chunks of text columns.

The content tells the format, not the file's name: Parquet and gzip by their magic bytes,
JSON by its first non-blank character (`{` lines of objects, `[` an array), CSV otherwise.
What cannot be read at all raises FileRejected with one reason; rows that cannot be parsed
are reported and skipped, never fatal.

Every format's values then go through one normalisation (`normalised`), so ingest, batch
scoring and the CSV upload read the same file the same way: trimmed, the spec's missing
tokens (matched after trimming) as missing, categories in the spec's spelling whatever
their case, and a target's texts as 1/0.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lifeboat.datasets import ColumnSpec, TableSpec
from lifeboat.files import SIGNATURE_BYTES, is_gzip, is_parquet, open_source
from lifeboat.ingest.json_records import (
    RecordReader,
    TextRecords,
    json_array_records,
    json_line_records,
)
from lifeboat.validation import FileRejected

Opener = Callable[[], BinaryIO]
T = TypeVar("T")
# A chunk's 1-based rows in the file, given the chunk and how many rows were parsed before it.
Numbering = Callable[[pa.Table, int], np.ndarray]
CHUNK_ROWS = 100_000
_SNIFF_BYTES = 64 * 1024
_JSON_ROW = "__row__"  # JSON records carry their row numbers through chunking in this column


@dataclass(frozen=True)
class MalformedLine:
    row: int | None  # 1-based data row, as the file counts them (None if the parser lost count)
    text: str


@dataclass
class FileChunks:
    """Chunks of the spec's columns as text, each with its file's 1-based `row`, plus skipped
    lines, and which of the spec's columns the file has at all (its header's; a JSON file's
    first records'), known once the first chunk is read: a column it lacks is all missing
    in every chunk, like one it has with empty cells, and only this tells them apart."""

    chunks: Iterator[pd.DataFrame]
    malformed: list[MalformedLine] = field(default_factory=list)
    given: set[str] = field(default_factory=set)

    def malformed_rows(self) -> tuple[list[int | None], list[str]]:
        return [line.row for line in self.malformed], [line.text for line in self.malformed]


@dataclass(frozen=True)
class FilePart:
    """What one task of a distributed job reads: a whole file, or a run of a Parquet file's
    row groups. Its rows keep the numbers they have in the whole file, so a part is
    validated and scored exactly as in a read of the file from its start."""

    url: str
    row_groups: tuple[int, ...] | None = None  # None: the whole file
    first_row: int = 0                          # the file's rows before the part


def file_parts(url: str, rows_per_part: int) -> list[FilePart]:
    """A Parquet file as runs of its row groups, each of about `rows_per_part` rows; any other
    file whole: CSV, JSON and gzip can only be parsed from their start (a value may hold a
    line break, a gzip stream has no seek points)."""
    with open_source(url) as stream:
        if not is_parquet(stream.read(SIGNATURE_BYTES)):
            return [FilePart(url)]
        stream.seek(0)
        try:
            metadata = pq.ParquetFile(stream).metadata
        except (pa.ArrowInvalid, OSError):
            return [FilePart(url)]  # the reader rejects it, with its reason
    parts, run, first, rows = [], [], 0, 0
    for group in range(metadata.num_row_groups):
        run.append(group)
        rows += metadata.row_group(group).num_rows
        if rows - first >= rows_per_part:
            parts.append(FilePart(url, tuple(run), first))
            run, first = [], rows
    if parts and rows == first:  # only empty row groups left: the last part reads them
        parts[-1] = FilePart(url, (*parts[-1].row_groups, *run), parts[-1].first_row)
    elif run or not parts:
        parts.append(FilePart(url, tuple(run), first))
    return parts


def read_part(part: FilePart, spec: TableSpec, chunk_rows: int = CHUNK_ROWS) -> FileChunks:
    return read_chunks(lambda: open_source(part.url), spec, chunk_rows, part)


def read_chunks(open_file: Opener, spec: TableSpec, chunk_rows: int = CHUNK_ROWS,
                part: FilePart | None = None) -> FileChunks:
    """The file's chunks; of a Parquet file, only `part`'s row groups when given."""
    head = _head(open_file)
    given: set[str] = set()
    if is_parquet(head):
        return FileChunks(_parquet_chunks(open_file, spec, chunk_rows, given, part), given=given)
    compressed = is_gzip(head)
    text_head = _decompressed_head(open_file) if compressed else head
    _reject_non_text(text_head)
    malformed: list[MalformedLine] = []
    start = text_head.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if start in (b"{", b"["):
        records = json_array_records if start == b"[" else json_line_records
        return FileChunks(_json_chunks(open_file, compressed, records, spec, chunk_rows, malformed,
                                       given), malformed, given)
    encoding = _encoding(open_file, compressed)
    header, delimiter = _header(text_head, encoding)
    columns = _column_map(header, spec)
    return FileChunks(
        _csv_chunks(open_file, compressed, encoding, delimiter, header, columns, spec,
                    chunk_rows, malformed),
        malformed,
        set(columns.values()),
    )


def read_ahead(items: Iterator[T], name: str) -> Iterator[T]:
    """Computes the next item in a worker thread while the caller works on this one.

    Arrow's parser, pandas and database drivers release the GIL for much of their work,
    so parsing the next chunk overlaps with validating, scoring or loading this one.
    """
    done = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as worker:
        pending = worker.submit(next, items, done)
        while (item := pending.result()) is not done:
            pending = worker.submit(next, items, done)
            yield item


def _head(open_file: Opener) -> bytes:
    with open_file() as stream:
        head = stream.read(_SNIFF_BYTES)
    if not head.strip():
        raise FileRejected("empty file")
    return head


def _decompressed_head(open_file: Opener) -> bytes:
    try:
        with open_file() as stream, gzip.GzipFile(fileobj=stream) as unzipped:
            head = unzipped.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected(f"unreadable gzip compression ({exc})") from None
    if not head.strip():
        raise FileRejected("empty file (after decompression)")
    return head


def _reject_non_text(head: bytes) -> None:
    if b"\x00" in head:
        raise FileRejected("not a text file: binary content (NUL bytes)")


@contextmanager
def _text_stream(open_file: Opener, compressed: bool) -> Iterator[BinaryIO]:
    with open_file() as stream:
        if compressed:
            with gzip.GzipFile(fileobj=stream) as unzipped:
                yield unzipped
        else:
            yield stream


def _encoding(open_file: Opener, compressed: bool) -> str:
    """UTF-8 if the whole file decodes as UTF-8 (BOM or not), else Latin-1, which always does."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with _text_stream(open_file, compressed) as stream:
            while block := stream.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected(f"unreadable gzip compression ({exc})") from None
    return "utf-8-sig"


def _header(head: bytes, encoding: str) -> tuple[list[str], str]:
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    first_line = text.splitlines()[0] if text.splitlines() else ""
    try:
        delimiter = csv.Sniffer().sniff(first_line, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    header = next(csv.reader([first_line], delimiter=delimiter))
    return [name.strip() for name in header], delimiter


def _column_map(header: list[str], spec: TableSpec) -> dict[str, str]:
    """File column → spec column, case-insensitively, across every accepted spelling."""
    mapped = {raw: spec.canonical(raw) for raw in header if spec.canonical(raw)}
    required = [name for name, column in spec.columns.items() if column.required]
    missing = [name for name in required if name not in mapped.values()]
    if missing:
        raise FileRejected(f"required columns missing: {', '.join(missing)}")
    return mapped


def _csv_chunks(open_file: Opener, compressed: bool, encoding: str, delimiter: str,
                header: list[str], columns: dict[str, str], spec: TableSpec, chunk_rows: int,
                malformed: list[MalformedLine]) -> Iterator[pd.DataFrame]:
    def skip(row: pa_csv.InvalidRow) -> str:
        # Arrow counts the header as row 1; data rows are numbered from 1.
        malformed.append(MalformedLine(None if row.number is None else row.number - 1, row.text))
        return "skip"

    # One parsing thread: with more, Arrow stops numbering the lines it skips.
    read = pa_csv.ReadOptions(encoding="utf8" if encoding == "utf-8-sig" else encoding,
                              block_size=1 << 22, column_names=_unique(header), skip_rows=1,
                              use_threads=False)
    parse = pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                invalid_row_handler=skip)
    # Every cell as text, none missing yet: `normalised` decides what is missing, after trimming.
    convert = pa_csv.ConvertOptions(column_types={name: pa.string() for name in _unique(header)},
                                    null_values=[], strings_can_be_null=False)
    with _text_stream(open_file, compressed) as stream:
        try:
            reader = pa_csv.open_csv(_without_bom(stream), read_options=read,
                                     parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise FileRejected(f"not a readable CSV file ({exc})") from None
        yield from _rechunk(_batches(reader), header, columns, spec, chunk_rows,
                            lambda table, parsed: _file_rows(parsed, table.num_rows, malformed))


def _batches(reader: pa_csv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    except pa.ArrowInvalid as exc:
        raise FileRejected(f"not a readable CSV file ({exc})") from None


def _parquet_chunks(open_file: Opener, spec: TableSpec, chunk_rows: int, given: set[str],
                    part: FilePart | None) -> Iterator[pd.DataFrame]:
    row_groups = part.row_groups if part is not None else None
    first_row = part.first_row if part is not None else 0
    with open_file() as stream:
        try:
            parquet = pq.ParquetFile(stream)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FileRejected(f"unreadable Parquet file ({exc})") from None
        header = list(parquet.schema_arrow.names)
        columns = _column_map(header, spec)
        given.update(columns.values())
        batches = (batch.cast(pa.schema([(name, pa.string()) for name in header]))
                   for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=row_groups))
        yield from _rechunk(batches, header, columns, spec, chunk_rows,
                            lambda table, parsed: _file_rows(first_row + parsed, table.num_rows,
                                                             None))


def _json_chunks(open_file: Opener, compressed: bool, records: RecordReader, spec: TableSpec,
                 chunk_rows: int, malformed: list[MalformedLine],
                 given: set[str]) -> Iterator[pd.DataFrame]:
    def unreadable(row: int, text: str) -> None:
        malformed.append(MalformedLine(row, text))

    header = [_JSON_ROW, *spec.columns]
    with _text_stream(open_file, compressed) as stream:
        batches = _json_batches(records(_without_bom(stream), spec, unreadable), spec, given)
        try:
            yield from _rechunk(batches, header, {name: name for name in spec.columns}, spec,
                                chunk_rows, lambda table, _parsed: table[_JSON_ROW].to_numpy())
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # found only as it is read
            raise FileRejected(f"unreadable gzip compression ({exc})") from None


def _json_batches(blocks: Iterator[TextRecords], spec: TableSpec,
                  given: set[str]) -> Iterator[pa.RecordBatch]:
    """Each block with every spec column, in one schema. Keys differ from record to record, so
    the first block holding records stands in for a header: required keys missing from all of
    its records reject the file, as a CSV header without them does, and its keys are the
    columns the file is `given`."""
    checked = False
    for block in blocks:
        if not checked and len(block.rows):
            given.update(_column_map(list(block.columns), spec).values())
            checked = True
        columns = [pa.array(block.rows, pa.int64())]
        columns += [block.columns.get(name, pa.nulls(len(block.rows), pa.string()))
                    for name in spec.columns]
        yield pa.RecordBatch.from_arrays(columns, [_JSON_ROW, *spec.columns])


def _rechunk(batches: Iterator[pa.RecordBatch], header: list[str], columns: dict[str, str],
             spec: TableSpec, chunk_rows: int, numbering: Numbering) -> Iterator[pd.DataFrame]:
    parsed = 0
    for group in _groups(batches, chunk_rows):
        table = pa.Table.from_batches(group)
        yield _frame(table, header, columns, spec, numbering(table, parsed))
        parsed += table.num_rows
    if parsed == 0:
        raise FileRejected("no data rows")


def _groups(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[list[pa.RecordBatch]]:
    """Batches gathered until they hold at least `rows` rows; the last group may hold fewer."""
    group: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        group.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield group
            group, count = [], 0
    if count:
        yield group


def _file_rows(parsed: int, count: int, malformed: list[MalformedLine] | None) -> np.ndarray:
    """The file's row numbers of the next `count` parsed rows: skipped lines keep their numbers.

    The p-th parsed row is row p + k, where k counts the skipped rows before it; a skipped row
    m (the j-th, 0-based) comes before parsed row p exactly when m - j <= p.
    """
    parsed_rows = np.arange(parsed + 1, parsed + count + 1)
    skipped = np.sort([line.row for line in malformed or () if line.row is not None])
    if not len(skipped):
        return parsed_rows
    return parsed_rows + np.searchsorted(skipped - np.arange(len(skipped)), parsed_rows, side="right")


def _frame(table: pa.Table, header: list[str], columns: dict[str, str], spec: TableSpec,
           rows: np.ndarray) -> pd.DataFrame:
    unique = _unique(header)
    frame = pd.DataFrame(index=range(table.num_rows))
    frame.insert(0, "row", rows)
    for raw, name in zip(header, unique, strict=True):
        canonical = columns.get(raw)
        if canonical and canonical not in frame:
            frame[canonical] = normalised(table.column(name), canonical, spec).to_pandas()
    for name in spec.columns:
        if name not in frame:
            frame[name] = pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame[["row", *spec.columns]]


def normalised(values: pa.Array | pa.ChunkedArray, name: str, spec: TableSpec) -> pa.Array:
    """One column's text as every reader of files sees it: trimmed; empty or one of the
    spec's missing tokens (themselves trimmed: `"?"` matches `" ?"`) is missing; a category
    of an `allowed` list in the spec's spelling (`" EAST "` is `east`); a target's texts as
    `1` and `0` (see TargetSpec.codes). Anything else stays as it is, for the caller's
    rules to judge."""
    text = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    text = pc.utf8_trim_whitespace(text.cast(pa.string()))
    missing = pa.array(["", *spec.missing_tokens], pa.string())
    text = pc.if_else(pc.is_in(text, value_set=missing), pa.scalar(None, pa.string()), text)
    codes = spec.value_codes().get(name)
    if codes is not None:
        return _coded(text, *codes)
    column = spec.columns[name]
    if column.type == "string" and column.allowed is not None:
        return _spelled(text, column)
    return text


def _coded(text: pa.Array, ones: frozenset[str], zeros: frozenset[str] | None) -> pa.Array:
    lowered = pc.utf8_lower(text)
    is_one = pc.is_in(lowered, value_set=pa.array(sorted(ones), pa.string()))
    is_zero = (pc.is_valid(text) if zeros is None
               else pc.is_in(lowered, value_set=pa.array(sorted(zeros), pa.string())))
    return pc.if_else(is_one, pa.scalar("1"), pc.if_else(is_zero, pa.scalar("0"), text))


def _spelled(text: pa.Array, column: ColumnSpec) -> pa.Array:
    spellings = [str(value) for value in column.allowed or ()]
    position = pc.index_in(pc.utf8_lower(text),
                           value_set=pa.array([value.lower() for value in spellings]))
    return pc.coalesce(pa.array(spellings, pa.string()).take(position), text)


def _unique(header: list[str]) -> list[str]:
    """Arrow needs distinct column names; a repeated header keeps its first occurrence's meaning."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return names


def _without_bom(stream: BinaryIO) -> BinaryIO:
    head = stream.read(3)
    if head == codecs.BOM_UTF8:
        return stream
    return io.BufferedReader(_Prefixed(head, stream))


class _Prefixed(io.RawIOBase):
    """A stream with a few already-read bytes put back in front."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix, self._rest = prefix, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size], self._prefix = self._prefix[:size], self._prefix[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

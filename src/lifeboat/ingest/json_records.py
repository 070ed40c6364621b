"""JSON files as text columns: JSON lines (one object per line) and JSON arrays of objects.

Values become text, as the CSV reader leaves them: a number as its text, `true`/`false`, a
nested object or list as its JSON, null as missing. Keys are matched to the spec's columns
like CSV headers; when two spellings of one column meet, a record's first non-null one counts.

Each record keeps its row in the file: for JSON lines its 1-based line number, for an array
its 1-based position. A line or element that is not a JSON object goes to `unreadable` with
its row and text and is skipped, never fatal.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from lifeboat.datasets import ColumnSpec, TableSpec
from lifeboat.validation import FileRejected

Unreadable = Callable[[int, str], None]  # a row that is not a JSON object: its number, its text
_BLOCK_BYTES = 1 << 22
_ARRAY_BLOCK_RECORDS = 50_000
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")
_DECODER = json.JSONDecoder(parse_int=str, parse_float=str)  # numbers keep the file's text


@dataclass(frozen=True)
class TextRecords:
    columns: dict[str, pa.Array]  # spec column → its values as text, for the columns present
    rows: np.ndarray              # each record's row in the file


RecordReader = Callable[[BinaryIO, TableSpec, Unreadable], Iterator[TextRecords]]


@dataclass(frozen=True)
class _Unparsed:
    text: str


def json_line_records(stream: BinaryIO, spec: TableSpec,
                      unreadable: Unreadable) -> Iterator[TextRecords]:
    """Blocks of whole lines, a few MB each. Arrow parses a block in one go; a block it
    rejects (a bad line) or could alter (see `_arrow_records`) is read line by line, so a
    bad line loses only its own row, not its block."""
    as_text: list[str] = []  # keys Arrow reads as times: read as text in every later block too
    for first, block in _line_blocks(stream):
        rows = _line_rows(first, block)
        if not len(rows):
            continue
        columns = _arrow_records(block, len(rows), spec, as_text)
        if columns is not None:
            yield TextRecords(columns, rows)
            continue
        lines = block.split(b"\n")
        yield _objects(((row, _parsed_line(lines[row - first])) for row in rows.tolist()), spec,
                       unreadable)


def json_array_records(stream: BinaryIO, spec: TableSpec,
                       unreadable: Unreadable) -> Iterator[TextRecords]:
    """The array is parsed whole, since where an element ends is known only by parsing all
    before it: unlike the other formats, memory grows with the file."""
    try:
        items = _DECODER.decode(stream.read().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise FileRejected(f"not a readable JSON array ({exc})") from None
    numbered = list(enumerate(items, 1))
    for start in range(0, len(numbered), _ARRAY_BLOCK_RECORDS):
        yield _objects(numbered[start:start + _ARRAY_BLOCK_RECORDS], spec, unreadable)


def _line_blocks(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """About _BLOCK_BYTES of whole lines at a time, each block with its first line's number."""
    first, rest = 1, b""
    while data := stream.read(_BLOCK_BYTES):
        data = rest + data
        end = data.rfind(b"\n") + 1
        block, rest = data[:end], data[end:]
        if block:
            yield first, block
            first += block.count(b"\n")
    if rest:
        yield first, rest


def _line_rows(first: int, block: bytes) -> np.ndarray:
    """The numbers of the block's non-blank lines, the lines that hold a record."""
    body = block.removesuffix(b"\n")
    if _BLANK_LINE.search(b"\n" + body + b"\n") is None:  # the usual case, without a Python loop
        return np.arange(first, first + body.count(b"\n") + 1)
    return np.array([first + i for i, line in enumerate(body.split(b"\n")) if line.strip()],
                    np.int64)


def _arrow_records(block: bytes, records: int, spec: TableSpec,
                   as_text: list[str]) -> dict[str, pa.Array] | None:
    """The block's spec columns as text, or None where Arrow's reading cannot be trusted: it
    failed, found other than one object per line, or typed a value whose text it would change
    (an integer past 64 bits it rounded to a double; a time it parsed, which is read again as
    text and added to `as_text`)."""
    try:
        table = _read_arrow(block, as_text)
        times = [field.name for field in table.schema if pa.types.is_temporal(field.type)]
        if times:
            as_text.extend(times)
            table = _read_arrow(block, as_text)
    except pa.ArrowInvalid:
        return None
    if table.num_rows != records:
        return None
    spellings = _spellings(table, spec)
    if not all(_keeps_text(column.type, spec.columns[canonical])
               for canonical, columns in spellings.items() for column in columns):
        return None
    return _coalesced(spellings)


def _read_arrow(block: bytes, as_text: list[str]) -> pa.Table:
    """Arrow infers each key's type; `as_text` keys are read as strings instead. One block,
    one thread: the caller's pipeline runs the parse beside validating and loading."""
    schema = pa.schema([(name, pa.string()) for name in as_text]) if as_text else None
    return pa_json.read_json(
        io.BytesIO(block),
        read_options=pa_json.ReadOptions(block_size=len(block) + 1, use_threads=False),
        parse_options=pa_json.ParseOptions(explicit_schema=schema))


def _keeps_text(kind: pa.DataType, column: ColumnSpec) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind) or (pa.types.is_floating(kind) and column.type == "float"))


def _parsed_line(line: bytes) -> dict | _Unparsed:
    try:
        value = _DECODER.decode(line.decode("utf-8"))
    except (ValueError, RecursionError):
        value = None
    return value if isinstance(value, dict) else _Unparsed(line.decode("utf-8", "replace").strip())


def _objects(numbered: Iterable[tuple[int, object]], spec: TableSpec,
             unreadable: Unreadable) -> TextRecords:
    """The JSON objects among the numbered values as text columns; any other value is unreadable."""
    records, rows = [], []
    for number, value in numbered:
        if isinstance(value, dict):
            records.append(value)
            rows.append(number)
        else:
            unreadable(number, value.text if isinstance(value, _Unparsed) else _text(value))
    keys = [key for key in dict.fromkeys(key for record in records for key in record)
            if spec.canonical(key) is not None]
    table = pa.table({key: pa.array([_text(record.get(key)) for record in records], pa.string())
                      for key in keys})
    return TextRecords(_coalesced(_spellings(table, spec)), np.array(rows, np.int64))


def _spellings(table: pa.Table, spec: TableSpec) -> dict[str, list[pa.ChunkedArray]]:
    """The table's columns by the spec column they spell, in the table's order."""
    spellings: dict[str, list[pa.ChunkedArray]] = {}
    for name in table.column_names:
        canonical = spec.canonical(name)
        if canonical is not None:
            spellings.setdefault(canonical, []).append(table[name])
    return spellings


def _coalesced(spellings: dict[str, list[pa.ChunkedArray]]) -> dict[str, pa.Array]:
    """Each spec column's text: per record, its first spelling that is not null."""
    return {canonical: pc.coalesce(*(column.cast(pa.string()) for column in columns))
            .combine_chunks() for canonical, columns in spellings.items()}


def _text(value: object) -> str | None:
    """A parsed JSON value as text; numbers were parsed as their text already."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)

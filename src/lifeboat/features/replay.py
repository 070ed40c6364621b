"""What every replay is built from: values and columns typed as pandas types them, without pandas.

A feature builder replays its view and its learned layer (`features.builder`) one record
at a time in plain Python, and column-wise in NumPy and Arrow; the compiled scorer's
encoder reads the same rows and columns. Each helper here states the pandas behaviour it
matches, so a replay composed of them agrees with the pandas pipeline bit for bit:
missing is NaN for numbers, None (row-wise) or null/NaN (column-wise) for text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Record = Mapping[str, Any]
Row = dict[str, Any]
Columns = dict[str, Any]
Text = pa.Array | np.ndarray  # Arrow strings (null for missing), or objects with NaN for missing
ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip removes from ASCII text
_PAIRS = "pairs"  # a saved mapping whose keys are not text, as its [key, value] pairs


def as_number(value: object) -> float:
    """A raw value as `pd.to_numeric(errors="coerce")` reads it: NaN when it is no number."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_text(value: object) -> object:
    """None for a missing text value, as the view's helpers read NaN."""
    return None if is_missing(value) else value


def ratio(numerator: float, denominator: float) -> float:
    """IEEE division as pandas divides columns: x/0 is ±inf and 0/0 NaN, never an error."""
    if denominator:
        return numerator / denominator
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(numerator) / denominator)


def first_known(*values: object) -> float:
    """The first value that is a number, as a chain of pandas `fillna` picks it."""
    for value in values:
        if value is not None and not math.isnan(value):
            return float(value)
    return math.nan


def number_column(column: Any) -> np.ndarray:
    if isinstance(column, pa.Array):
        return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return np.asarray(column, dtype=np.float64)


def text_column(column: Any) -> Text:
    """Arrow strings when every value is a str or missing (bytes infer as binary, and any
    other value fails), else the values as objects with NaN for missing."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    values = np.asarray(column, dtype=object)
    try:
        text = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = None
    if text is not None and (pa.types.is_string(text.type) or pa.types.is_null(text.type)):
        return text.cast(pa.string())
    return nan_for_none(values.copy())


def nan_for_none(values: np.ndarray) -> np.ndarray:
    values[pd.isna(values)] = np.nan
    return values


def equals(column: Text, value: str) -> np.ndarray:
    if isinstance(column, pa.Array):
        return pc.fill_null(pc.equal(column, value), False).to_numpy(zero_copy_only=False)
    return column == value


def distinct(column: Text) -> tuple[np.ndarray, list]:
    """Each row's index into the column's distinct values (-1 when missing), and the values."""
    if isinstance(column, pa.Array):
        encoded = pc.dictionary_encode(column)
        return (pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False),
                encoded.dictionary.to_pylist())
    code, unique = pd.factorize(np.asarray(column, dtype=object), use_na_sentinel=True)
    return code, list(unique)


def each_distinct(function: Callable[..., Any], *columns: Text) -> np.ndarray:
    """`function` per row, called once per distinct combination of the columns' values
    (missing values, None, NaN or null, are passed as NaN, as the view reads them alike)."""
    codes, uniques = [], []
    for column in columns:
        if isinstance(column, np.ndarray) and column.dtype == np.float64:  # by bits: -0.0 and
            code, bits = pd.factorize(np.ascontiguousarray(column).view(np.int64))  # 0.0 differ
            unique = bits.view(np.float64).tolist()
        else:
            code, unique = distinct(column)
        codes.append(code)
        uniques.append(unique + [np.nan])  # code -1 picks the NaN
    if len(columns) == 1:
        values = np.empty(len(uniques[0]), dtype=object)
        values[:] = [function(value) for value in uniques[0]]
        return values[codes[0]]
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for code, unique in zip(codes, uniques, strict=True):
        combined = combined * len(unique) + (code % len(unique))
    inverse, packed_values = pd.factorize(combined)
    values = []
    for packed in packed_values.tolist():
        parts = []
        for unique in reversed(uniques):
            packed, position = divmod(packed, len(unique))
            parts.append(unique[position])
        values.append(function(*reversed(parts)))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out[inverse]


def by_helper(values: pa.Array, rows: np.ndarray, helper: Callable[..., Any],
              *inputs: Any) -> pa.Array:
    """`values` with the masked rows recomputed by the view's own `helper` on `inputs`."""
    chosen = np.flatnonzero(rows)
    if not len(chosen):
        return values
    arguments = [column.take(chosen).to_pylist() if isinstance(column, pa.Array)
                 else column[chosen].tolist() for column in inputs]
    fixed = pa.array([as_text(helper(*row)) for row in zip(*arguments, strict=True)],
                     pa.string())
    return pc.replace_with_mask(values, pa.array(rows), fixed)


def ascii_rows(text: pa.Array) -> np.ndarray:
    """Which rows are ASCII strings, where Arrow's kernels provably agree with Python's."""
    return pc.fill_null(pc.string_is_ascii(text), False).to_numpy(zero_copy_only=False)


def positions(known: list[str], keys: Text | pd.Series) -> np.ndarray:
    """Each key's position among the known (text) keys, -1 when it is not one of them."""
    if isinstance(keys, pa.Array):
        return pc.fill_null(pc.index_in(keys, value_set=pa.array(known, pa.string())),
                            -1).to_numpy(zero_copy_only=False)
    return pd.Index(known, dtype=object).get_indexer(np.asarray(keys, dtype=object))


def values_at(column: Text | pd.Series, rows: np.ndarray) -> list:
    if isinstance(column, pa.Array):
        return column.take(rows).to_pylist()
    return np.asarray(column, dtype=object)[rows].tolist()


def plain(value: Any) -> Any:
    """Learned state as JSON holds it: a mapping keyed by numbers (a passenger class) as its
    pairs, since JSON would turn the keys into text."""
    if not isinstance(value, Mapping):
        return value
    if all(isinstance(key, str) for key in value):
        return {key: plain(item) for key, item in value.items()}
    return {_PAIRS: [[key, plain(item)] for key, item in value.items()]}


def unplain(value: Any) -> Any:
    """Learned state back from what `plain` wrote."""
    if not isinstance(value, Mapping):
        return value
    if set(value) == {_PAIRS}:
        return {key: unplain(item) for key, item in value[_PAIRS]}
    return {key: unplain(item) for key, item in value.items()}

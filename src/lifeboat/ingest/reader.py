"""Reading a raw file into typed rows the way its dataset spec describes them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lifeboat.datasets import ColumnSpec, DatasetSpec
from lifeboat.errors import IngestError


@dataclass
class ParsedFile:
    rows: pd.DataFrame
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rows_total: int = 0


def read_table(content: bytes, spec: DatasetSpec) -> ParsedFile:
    """Parses CSV bytes into canonical, typed columns; rows that cannot be parsed are set aside."""
    unreadable: list[list[str]] = []
    try:
        frame = pd.read_csv(
            io.BytesIO(content),
            dtype=str,
            keep_default_na=False,
            na_values=spec.missing_values,
            engine="python",
            on_bad_lines=lambda line: unreadable.append(line),
            quoting=csv.QUOTE_MINIMAL,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read the file as CSV: {exc}") from exc
    frame = _canonical_columns(frame, spec)
    parsed = ParsedFile(rows=frame, rows_total=len(frame) + len(unreadable))
    parsed.rejected.extend((-1, "line has the wrong number of fields") for _ in unreadable)
    _type_columns(parsed, spec)
    _assign_entity_ids(parsed, spec)
    return parsed


def _canonical_columns(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    renames = {raw: spec.canonical(raw) for raw in frame.columns if spec.canonical(raw)}
    frame = frame.rename(columns=renames)[list(renames.values())]
    required = [name for name, column in spec.columns.items() if column.required]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise IngestError(f"required columns missing from the file: {', '.join(missing)}")
    for name in spec.columns:
        if name not in frame.columns:
            frame[name] = None
    return frame[list(spec.columns)].reset_index(drop=True)


def _type_columns(parsed: ParsedFile, spec: DatasetSpec) -> None:
    """Coerces each column to its declared type; a row failing any rule is rejected with the reason."""
    frame = parsed.rows
    failed = pd.DataFrame(index=frame.index)
    for name, column in spec.columns.items():
        frame[name], failed[name] = _coerce(frame[name], column)
    rejected = failed.any(axis=1)
    for index in frame.index[rejected]:
        bad_columns = ", ".join(failed.columns[failed.loc[index]])
        parsed.rejected.append((int(index) + 1, f"invalid {bad_columns}"))
    parsed.rows = frame[~rejected].reset_index(drop=True)


def _coerce(raw: pd.Series, column: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    """The typed column and, per row, whether its value breaks the column's rules."""
    raw = raw.str.strip()
    present = raw.notna()
    if column.type == "string":
        value = raw
        bad = pd.Series(False, index=raw.index)
    else:
        value = pd.to_numeric(raw, errors="coerce")
        bad = present & value.isna()
        if column.type == "integer":
            bad |= value.notna() & (value % 1 != 0)
        if column.min is not None:
            bad |= value < column.min
        if column.max is not None:
            bad |= value > column.max
    if column.allowed is not None:
        allowed = {str(option) for option in column.allowed}
        as_text = value.map(lambda v: None if pd.isna(v) else f"{v:g}" if column.type != "string" else v)
        bad |= value.notna() & ~as_text.isin(allowed)
    if column.required:
        bad |= ~present
    if column.type == "integer":
        value = value.where(~bad).astype("Int64")
    return value, bad


def _assign_entity_ids(parsed: ParsedFile, spec: DatasetSpec) -> None:
    frame, key = parsed.rows, spec.entity.key
    if frame.empty:
        return
    if frame[key].isna().all() and spec.entity.derive_from:
        identity = frame[spec.entity.derive_from].astype(object).where(frame[spec.entity.derive_from].notna(), None)
        frame[key] = [spec.derive_entity_id(list(values)) for values in identity.itertuples(index=False)]
    elif frame[key].isna().any():
        raise IngestError(f"some rows have no {key} and the spec cannot derive one")
    frame[key] = frame[key].astype(str)
    first = ~frame[key].duplicated()
    parsed.rejected.extend((-1, f"duplicate {key} in the file") for _ in range(int((~first).sum())))
    parsed.rows = frame[first].replace({np.nan: None}).reset_index(drop=True)

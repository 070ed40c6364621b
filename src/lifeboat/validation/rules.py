"""Row-level validation of one chunk of a file against its dataset spec.

Types are coerced here, vectorised, because a value that is not a number must be reported
as `wrong_type` and then kept out of every other check. The rules on typed values (ranges,
allowed categories, required values) run through pandera, lazily, so every bad cell of a
chunk is reported in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from lifeboat.datasets import TableSpec
from lifeboat.db import STORED_INTEGER_MAX
from lifeboat.validation.column_rules import FILE_NUMBER, ColumnRule, table_rules
from lifeboat.validation.issues import RowIssue

ISSUE_COLUMNS = ["row", "column", "issue", "value"]
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' own text type: Arrow memory, no copy
_CHECK_ISSUES = {
    "in_range": RowIssue.OUT_OF_RANGE,
    "greater_than_or_equal_to": RowIssue.OUT_OF_RANGE,
    "less_than_or_equal_to": RowIssue.OUT_OF_RANGE,
    "isin": RowIssue.NOT_ALLOWED,
    "not_nullable": RowIssue.MISSING_REQUIRED,
}


@dataclass(frozen=True)
class ValidatedChunk:
    good: pd.DataFrame    # typed rows, entity key filled in
    bad: pd.DataFrame     # raw rows as read, plus `row` and a readable `issues` column
    issues: pd.DataFrame  # one line per bad cell: row, column, issue, value


def validate_chunk(raw: pd.DataFrame, spec: TableSpec, seen_keys: set[str]) -> ValidatedChunk:
    """`raw` holds the reader's normalised text (or NaN) in the spec's columns and a 1-based
    `row` (see `lifeboat.ingest.reader.normalised`); `seen_keys` spans chunks."""
    typed, type_issues = _coerce(raw, spec)
    rule_issues = _rule_issues(typed, spec, exclude=type_issues)
    typed[spec.entity.key] = _entity_keys(typed, spec)
    issues = pd.concat([type_issues, rule_issues], ignore_index=True)
    invalid_rows = set(issues["row"])
    duplicates = _duplicate_issues(typed, spec, seen_keys, invalid_rows)
    issues = pd.concat([issues, duplicates], ignore_index=True).sort_values(["row", "column"])
    rejected = typed["row"].isin(set(issues["row"]))
    return ValidatedChunk(
        good=typed[~rejected].reset_index(drop=True),
        bad=_with_reasons(raw[rejected.to_numpy()], issues),
        issues=issues.reset_index(drop=True),
    )


def reject_loaded_keys(validated: ValidatedChunk, raw: pd.DataFrame, spec: TableSpec,
                       loaded: set[str]) -> ValidatedChunk:
    """Moves good rows whose key an earlier file already loaded to the bad rows.

    The database answers which keys it holds, so this runs where the loader has a session.
    """
    key = spec.entity.key
    is_loaded = validated.good[key].isin(loaded)
    if not is_loaded.any():
        return validated
    repeats = validated.good[is_loaded]
    issues = _issue_rows(repeats["row"], key, RowIssue.ALREADY_LOADED, repeats[key])
    newly_bad = _with_reasons(raw[raw["row"].isin(set(repeats["row"])).to_numpy()], issues)
    return ValidatedChunk(
        good=validated.good[~is_loaded].reset_index(drop=True),
        bad=pd.concat([validated.bad, newly_bad], ignore_index=True),
        issues=pd.concat([validated.issues, issues], ignore_index=True),
    )


def malformed_issues(rows: list[int | None], lines: list[str]) -> pd.DataFrame:
    """Lines the parser could not split into the header's columns, by their row in the file."""
    return pd.DataFrame({"row": pd.array(rows, dtype="Int64"), "column": None,
                         "issue": RowIssue.MALFORMED_ROW.value, "value": lines},
                        columns=ISSUE_COLUMNS)


def _entity_keys(frame: pd.DataFrame, spec: TableSpec) -> pd.Series:
    """The key column as text (an integer key: 7, not 7.0); derived from identifying columns
    where the file has none."""
    key = frame[spec.entity.key].astype(_TEXT)
    if spec.entity.derive_from and key.isna().any():
        key = key.fillna(derived_entity_ids(spec, frame))
    return key


def derived_entity_ids(spec: TableSpec, frame: pd.DataFrame) -> pd.Series:
    """Stable ids from the spec's identifying columns (`entity.derive_from`): the same entity
    always gets the same key. pandas' row hash is fixed-keyed SipHash, so ids match across
    processes and runs."""
    parts = frame[spec.entity.derive_from].astype(str)  # Arrow-backed text; missing stays NaN
    hashes = pd.util.hash_pandas_object(parts, index=False).to_numpy()
    # 16 hex digits per hash, formatted in one pass rather than a million f-strings.
    hexed = np.frombuffer(hashes.astype(">u8").tobytes().hex().encode(), dtype="S16")
    return pd.Series(hexed.astype(str), index=frame.index, dtype=object)


def _coerce(raw: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Length checks and number parsing run in Arrow: pandas' string methods and to_numeric
    are several times slower on a million rows. The reader has trimmed the text already."""
    typed = {"row": pd.Series(raw["row"].to_numpy())}
    found = []
    for name, rule in table_rules(spec).columns.items():
        text = pa_arrow.array(raw[name], type=pa_arrow.string(), from_pandas=True)
        if rule.kind == "string":
            typed[name], too_long = _limited(text, rule.max_length)
            found.append(_issue_rows(raw["row"][too_long], name, rule.bad_value,
                                     raw[name][too_long].str.slice(0, 40) + "..."))
            continue
        typed[name], wrong, unstorable = _parsed(text, rule)
        for refused, issue in ((wrong, rule.bad_value), (unstorable, RowIssue.OUT_OF_RANGE)):
            found.append(_issue_rows(raw["row"][refused], name, issue, pd.Series(
                text.filter(refused).to_numpy(zero_copy_only=False))))
    frame = pd.DataFrame(typed, index=raw.index)
    return frame, pd.concat(found, ignore_index=True) if found else _no_issues()


def _parsed(text: pa_arrow.Array, rule: ColumnRule,
            ) -> tuple[pd.Series | np.ndarray, np.ndarray, np.ndarray]:
    """Typed values of a non-text column, which values could not be typed, and which whole
    numbers the dataset table cannot store (beyond its SQL INTEGER: one such value must
    cost its row, not the file's load)."""
    if not rule.is_number:
        return *_parse_times(text), np.zeros(len(text), dtype=bool)
    number, wrong = _parse_numbers(text, rule.whole)
    if not rule.whole:
        return number, wrong, np.zeros(len(number), dtype=bool)
    unstorable = np.abs(np.nan_to_num(number)) > STORED_INTEGER_MAX
    return pd.Series(np.where(unstorable, np.nan, number)).astype("Int64"), wrong, unstorable


def _parse_times(text: pa_arrow.Array) -> tuple[pd.Series, np.ndarray]:
    """ISO 8601 (a date, or a date and time with `Z` or an offset; without one, UTC) as UTC
    instants to the microsecond, what both databases keep. Times pandas cannot hold (before
    1677 or after 2262) are wrong like any other unreadable value."""
    values = pd.Series(pd.arrays.ArrowStringArray(text, dtype=_TEXT))
    moments = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    wrong = (moments.isna() & values.notna()).to_numpy()
    return moments.dt.as_unit("us"), wrong


def _limited(text: pa_arrow.Array, limit: int | None) -> tuple[pd.Series, np.ndarray]:
    """The column as text, and which values are longer than `limit` characters: those are
    kept out of the typed column, so no other rule reports them again."""
    too_long = np.zeros(len(text), dtype=bool)
    if limit is not None:
        too_long = pc.fill_null(pc.greater(pc.utf8_length(text), limit), False).to_numpy(
            zero_copy_only=False)
        if too_long.any():
            text = pc.if_else(pa_arrow.array(too_long), pa_arrow.scalar(None, pa_arrow.string()),
                              text)
    return pd.Series(pd.arrays.ArrowStringArray(text, dtype=_TEXT)), too_long


def _parse_numbers(text: pa_arrow.Array, whole: bool) -> tuple[np.ndarray, np.ndarray]:
    looks_numeric = pc.fill_null(pc.match_substring_regex(text, FILE_NUMBER), True)
    number = pc.cast(pc.if_else(looks_numeric, text, None), pa_arrow.float64())
    number = number.to_numpy(zero_copy_only=False)
    wrong = ~looks_numeric.to_numpy(zero_copy_only=False)
    if whole:
        wrong |= ~np.isnan(number) & (number % 1 != 0)
        number = np.where(wrong, np.nan, number)
    return number, wrong


def _rule_issues(typed: pd.DataFrame, spec: TableSpec, exclude: pd.DataFrame) -> pd.DataFrame:
    try:
        _schema(spec).validate(typed, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return _no_issues()
    cases = cases[cases["index"].notna() & cases["column"].notna()]
    kind = cases["check"].astype(str).str.extract(r"^([a-z_]+)", expand=False).map(_CHECK_ISSUES)
    positions = cases["index"].astype(int)
    found = pd.DataFrame({
        "row": typed.loc[positions.to_numpy(), "row"].to_numpy(),
        "column": cases["column"].to_numpy(),
        "issue": kind.to_numpy(),
        "value": cases["failure_case"].map(_as_text).to_numpy(),
    }).dropna(subset=["issue"])
    already = set(zip(exclude["row"], exclude["column"]))
    keep = [(row, column) not in already for row, column in zip(found["row"], found["column"])]
    return found[keep]


def _schema(spec: TableSpec) -> pa.DataFrameSchema:
    """Only the columns with a rule: pandera's per-column cost is paid for nothing otherwise."""
    return pa.DataFrameSchema(
        {name: pa.Column(checks=_checks(rule), nullable=not rule.required, coerce=False)
         for name, rule in table_rules(spec).columns.items() if rule.required or _checks(rule)},
        strict=False,
    )


def _checks(rule: ColumnRule) -> list[pa.Check]:
    checks = []
    if rule.low is not None:
        checks.append(pa.Check.ge(rule.low))
    if rule.high is not None:
        checks.append(pa.Check.le(rule.high))
    if rule.allowed is not None:
        checks.append(pa.Check.isin(list(rule.allowed)))
    return checks


def _duplicate_issues(typed: pd.DataFrame, spec: TableSpec, seen_keys: set[str],
                      invalid_rows: set[int]) -> pd.DataFrame:
    """A key seen earlier in the file makes the later row a duplicate; invalid rows claim no key."""
    key = spec.entity.key
    candidates = typed.loc[~typed["row"].isin(invalid_rows) & typed[key].notna(), ["row", key]]
    keys = candidates[key].tolist()
    repeated = candidates[key].duplicated().to_numpy() | np.fromiter(
        (k in seen_keys for k in keys), dtype=bool, count=len(keys))
    seen_keys.update(keys)
    duplicates = candidates[repeated]
    return _issue_rows(duplicates["row"], key, RowIssue.DUPLICATE_KEY, duplicates[key])


def _with_reasons(raw: pd.DataFrame, issues: pd.DataFrame) -> pd.DataFrame:
    """Each bad row's issues in one readable cell, in the order they were found.

    Built in plain Python: a pandas groupby with a Python join costs a Series per bad row.
    """
    reasons: dict[int, list[str]] = {}
    for row, column, issue in zip(issues["row"], issues["column"], issues["issue"]):
        reasons.setdefault(row, []).append(f"{column}: {issue}")
    joined = {row: "; ".join(texts) for row, texts in reasons.items()}
    return raw.assign(issues=raw["row"].map(joined)).reset_index(drop=True)


def _issue_rows(rows: pd.Series, column: str, issue: RowIssue, values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"row": rows.to_numpy(), "column": column, "issue": issue.value,
                         "value": values.map(_as_text).to_numpy()})


def _no_issues() -> pd.DataFrame:
    return pd.DataFrame(columns=ISSUE_COLUMNS)


def _as_text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

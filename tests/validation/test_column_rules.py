"""The three checkers derived from a spec's compiled column rules judge a value alike.

A value comes in by a file loaded into the database (pandera, `validate_chunk`), a file
scored in batch (Arrow, `scoring.batch`) or a record sent to the API (the pydantic request
model). Each value of the table below is read by the file reader as a cell of a CSV file,
and sent to the API as the JSON string the cell holds (and, when the cell is written as a
JSON number, as that number too); a missing cell is a field left out. All three accept
it, or all refuse it for the same reason. Datetimes are not request fields, so not here.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pandas as pd
import pytest
from pydantic import ValidationError

from lifeboat.datasets import DatasetSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.ingest import read_chunks
from lifeboat.scoring import batch
from lifeboat.serving.schemas import record_model
from lifeboat.validation import RowIssue, table_rules, validate_chunk

SPEC = DatasetSpec.model_validate({
    "name": "rules", "table": "rules", "missing_values": ["", "?"],
    "entity": {"key": "id"},
    "columns": {
        "id": {"type": "string"},
        "note": {"type": "string", "max_length": 5},
        "title": {"type": "string", "required": True, "max_length": 5},
        "colour": {"type": "string", "allowed": ["Red", "green"]},
        "count": {"type": "integer", "min": 0, "max": 10},
        "grade": {"type": "integer", "allowed": [1, 2, 3]},
        "needed": {"type": "integer", "required": True},
        "ratio": {"type": "float", "min": -1, "max": 1},
        "level": {"type": "float", "allowed": ["0.5", 1]},
        "y": {"type": "integer", "allowed": [0, 1]},
    },
    "target": {"column": "y", "labels": {0: "no", 1: "yes"}},
    "features": {"builder": "none", "view": "rules", "numeric": [], "categorical": []},
})
# A row every checker accepts; each case below changes one of its cells.
VALID = {"note": "ok", "title": "Mr", "colour": "Red", "count": "3", "grade": "2",
         "needed": "7", "ratio": "0.5", "level": "1"}
TOO_LONG, NOT_ALLOWED = RowIssue.TOO_LONG.value, RowIssue.NOT_ALLOWED.value
OUT_OF_RANGE, WRONG_TYPE = RowIssue.OUT_OF_RANGE.value, RowIssue.WRONG_TYPE.value
MISSING = RowIssue.MISSING_REQUIRED.value
# (column, the cell's text or None for missing, why it is refused or None). Not in it, as
# the checkers differ on them: an integer written with a fraction or an exponent ("3.0",
# "1e1": files read it, the API refuses it as text), the JSON number 2.5 for an integer with
# allowed values (the API says not_allowed), a float beyond a float's range ("1e999": batch
# says wrong_type, the others out_of_range), an integer beyond 64 bits (ingest cannot type
# it), and a missing token in a required text (the API keeps "?" as the text it is).
CASES = [
    ("note", "abcde", None), ("note", "abcdef", TOO_LONG), ("note", "héllo", None),
    ("note", "héllos", TOO_LONG), ("note", " abcde ", None), ("note", "?", None),
    ("note", None, None),
    ("title", "Sir", None), ("title", "Master", TOO_LONG), ("title", None, MISSING),
    ("colour", "Red", None), ("colour", "red", None), ("colour", " GREEN ", None),
    ("colour", "blue", NOT_ALLOWED), ("colour", "Re", NOT_ALLOWED), ("colour", None, None),
    ("count", "0", None), ("count", "10", None), ("count", "+3", None), ("count", "007", None),
    ("count", " 4 ", None), ("count", "-0", None), ("count", "-1", OUT_OF_RANGE),
    ("count", "11", OUT_OF_RANGE), ("count", "2.5", WRONG_TYPE), ("count", "abc", WRONG_TYPE),
    ("count", "١", WRONG_TYPE), ("count", "0x1", WRONG_TYPE), ("count", None, None),
    ("grade", "1", None), ("grade", "3", None), ("grade", "4", NOT_ALLOWED),
    ("grade", "0", NOT_ALLOWED), ("grade", "x", WRONG_TYPE), ("grade", None, None),
    ("needed", "5", None), ("needed", "-5", None), ("needed", "five", WRONG_TYPE),
    ("needed", None, MISSING),
    ("ratio", "-1", None), ("ratio", "1", None), ("ratio", ".5", None), ("ratio", "5.e-1", None),
    ("ratio", "1e-1", None), ("ratio", "-0.25", None), ("ratio", "1.5", OUT_OF_RANGE),
    ("ratio", "-1.01", OUT_OF_RANGE), ("ratio", "2e0", OUT_OF_RANGE),
    ("ratio", "nan", WRONG_TYPE), ("ratio", "inf", WRONG_TYPE), ("ratio", "1,5", WRONG_TYPE),
    ("ratio", "--1", WRONG_TYPE), ("ratio", ".", WRONG_TYPE), ("ratio", None, None),
    ("level", "0.5", None), ("level", "1", None), ("level", "1.0", None), ("level", "0.50", None),
    ("level", "2", NOT_ALLOWED), ("level", "0.25", NOT_ALLOWED), ("level", "x", WRONG_TYPE),
    ("level", None, None),
]
# The request model's error types, as the reasons files give.
REQUEST_REASONS = {
    "string_too_long": TOO_LONG, "literal_error": NOT_ALLOWED,
    "greater_than_equal": OUT_OF_RANGE, "less_than_equal": OUT_OF_RANGE,
    "integer_parsing": WRONG_TYPE, "float_parsing": WRONG_TYPE, "int_from_float": WRONG_TYPE,
    "finite_number": WRONG_TYPE, "missing": MISSING,
}
JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _rows() -> list[dict[str, str | None]]:
    return [{"id": str(number), **VALID, column: text, "y": "1"}
            for number, (column, text, _) in enumerate(CASES)]


def _file_chunk() -> pd.DataFrame:
    """The cases as one CSV file's rows, as the reader hands them to both file checkers."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(SPEC.columns))
    writer.writeheader()
    writer.writerows({name: "" if value is None else value for name, value in row.items()}
                     for row in _rows())
    data = text.getvalue().encode()
    return next(read_chunks(lambda: io.BytesIO(data), SPEC, len(CASES)).chunks)


def _ingested() -> list[str | None]:
    checked = validate_chunk(_file_chunk(), SPEC, set())
    found = {(row, column): issue for row, column, issue
             in zip(checked.issues["row"], checked.issues["column"], checked.issues["issue"])}
    assert {column for _, column in found} <= {column for column, _, _ in CASES}
    return [found.get((number + 1, column)) for number, (column, _, _) in enumerate(CASES)]


def _scored_in_batch() -> list[str | None]:
    fields = batch._typed_inputs(_file_chunk(), SPEC)
    issues = {name: [None] * len(CASES) if field.issue is None else field.issue.to_pylist()
              for name, field in fields.items()}
    return [issues[column][number] for number, (column, _, _) in enumerate(CASES)]


def _requested(column: str, value: object) -> str | None:
    record = {**VALID}
    if value is None:
        del record[column]
    else:
        record[column] = value
    try:
        record_model(SPEC).model_validate(record)
    except ValidationError as refused:
        errors = refused.errors()
        assert [error["loc"] for error in errors] == [(column,)]
        return REQUEST_REASONS[errors[0]["type"]]
    return None


def test_every_case_is_judged_alike_by_ingest_batch_and_the_api() -> None:
    ingested, scored = _ingested(), _scored_in_batch()
    inputs = table_rules(SPEC).inputs
    for number, (column, text, expected) in enumerate(CASES):
        judged = {"ingest": ingested[number], "batch": scored[number],
                  "api, as text": _requested(column, text)}
        if inputs[column].is_number and text is not None and JSON_NUMBER.fullmatch(text):
            judged["api, as a number"] = _requested(column, json.loads(text))
        assert judged == dict.fromkeys(judged, expected), (column, text)


def test_the_rules_are_compiled_once_per_spec() -> None:
    rules = table_rules(SPEC)
    assert table_rules(SPEC) is rules
    assert table_rules(SPEC.model_copy()) is not rules
    assert rules.columns["colour"].spellings == {"red": "Red", "green": "green"}
    assert rules.columns["level"].allowed == (0.5, 1.0)
    assert rules.columns["grade"].allowed == (1, 2, 3)


def test_allowed_values_are_held_in_their_column_type() -> None:
    """YAML's `1` in a text column is the text "1"; in a number column it must be a number."""
    texts = SPEC.model_copy(update={"columns": {
        **SPEC.columns, "colour": SPEC.columns["colour"].model_copy(update={"allowed": [1, "b"]})}})
    assert table_rules(texts).columns["colour"].allowed == ("1", "b")
    broken = SPEC.model_copy(update={"columns": {
        **SPEC.columns, "grade": SPEC.columns["grade"].model_copy(update={"allowed": ["one"]})}})
    with pytest.raises(DatasetSpecError, match=r"'grade' allows \['one'\], but each must be a "):
        table_rules(broken)

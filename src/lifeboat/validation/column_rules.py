"""A spec's column rules, compiled once: every checker of values is derived from them.

Values come in three ways, each with a checker of its own: files loaded into the database
(pandera, `validation.rules`), records sent to the API (the pydantic request model,
`serving.schemas`) and files scored in batch (Arrow, `scoring.batch`). Each asks these
rules what a column accepts and never reads the `ColumnSpec` itself, so that a value is
judged alike wherever it comes in: the same type, bounds, allowed values in the same
spelling, the same length, the same reason when it is refused.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lifeboat.datasets import ColumnSpec, ColumnType, DatasetSpec, TableSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.validation.issues import RowIssue

# A number written out in a file's trimmed cell: Arrow's RE2 and Python's `re` (with
# re.ASCII) read it alike. An integer column accepts it when its value is whole (`3.0`).
FILE_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# A number sent as a JSON string ("3", " 22.5 "): ASCII digits and blanks only, as JSON
# Schema's patterns have them; an integer's text is digits only.
_BLANK = "[ \\t]*"
_REQUEST_NUMBER = {"integer": f"^{_BLANK}[+-]?[0-9]+{_BLANK}$",
                   "float": f"^{_BLANK}[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?{_BLANK}$"}
_NUMBER_NAME = {"integer": "a whole number", "float": "a number"}


@dataclass(frozen=True)
class ColumnRule:
    """What one column accepts. `allowed` holds the values in their canonical form, the one
    a checked value is given back in: text in the spec's spelling, numbers as the column's
    type (ints or floats); `spellings` maps each lower-cased text to it."""

    kind: ColumnType
    required: bool
    low: float | None             # inclusive bounds of a number
    high: float | None
    allowed: tuple[str, ...] | tuple[int, ...] | tuple[float, ...] | None
    spellings: Mapping[str, str]  # a text column's allowed values, by their lower case
    max_length: int | None        # characters of a text value
    request_number: re.Pattern[str] | None  # the JSON string that stands for a number

    @property
    def is_number(self) -> bool:
        return self.kind in ("integer", "float")

    @property
    def whole(self) -> bool:
        """Numbers must have no fraction: `3.0` is 3, `2.5` is wrong."""
        return self.kind == "integer"

    @property
    def bad_value(self) -> RowIssue:
        """Why a value that cannot be this column's type is refused."""
        return RowIssue.TOO_LONG if self.kind == "string" else RowIssue.WRONG_TYPE

    @property
    def outside(self) -> RowIssue:
        """Why a value of the right type is refused: not one of `allowed`, or past a bound."""
        return RowIssue.OUT_OF_RANGE if self.allowed is None else RowIssue.NOT_ALLOWED

    @property
    def number_name(self) -> str:
        """The number this column takes, in words, as a refused request is told."""
        return _NUMBER_NAME[self.kind]


@dataclass(frozen=True)
class TableRules:
    """A table's compiled rules: every column's, and, for a dataset, its request fields'
    (the input columns, then the aggregates, which are numbers a caller may leave out)."""

    columns: Mapping[str, ColumnRule]
    inputs: Mapping[str, ColumnRule]


_compiled: dict[int, tuple[weakref.ref[TableSpec], TableRules]] = {}


def table_rules(spec: TableSpec) -> TableRules:
    """The spec's rules, compiled on first use and kept as long as the spec is."""
    found = _compiled.get(id(spec))
    if found is not None and found[0]() is spec:
        return found[1]
    rules = _compile(spec)
    key = id(spec)
    _compiled[key] = (weakref.ref(spec, lambda _: _compiled.pop(key, None)), rules)
    return rules


def _compile(spec: TableSpec) -> TableRules:
    columns = {name: _rule(spec, name, column) for name, column in spec.columns.items()}
    inputs: dict[str, ColumnRule] = {}
    if isinstance(spec, DatasetSpec):
        inputs = {name: columns.get(name) or _rule(spec, name, column)
                  for name, column in spec.input_fields.items()}
    return TableRules(MappingProxyType(columns), MappingProxyType(inputs))


def _rule(spec: TableSpec, name: str, column: ColumnSpec) -> ColumnRule:
    allowed = None if column.allowed is None else _canonical(spec, name, column)
    spellings = ({value.lower(): value for value in allowed}
                 if column.type == "string" and allowed is not None else {})
    return ColumnRule(kind=column.type, required=column.required, low=column.min,
                      high=column.max, allowed=allowed, spellings=MappingProxyType(spellings),
                      max_length=column.max_length if column.type == "string" else None,
                      request_number=re.compile(_REQUEST_NUMBER[column.type])
                      if column.type in _REQUEST_NUMBER else None)


def _canonical(spec: TableSpec, name: str,
               column: ColumnSpec) -> tuple[str, ...] | tuple[int, ...] | tuple[float, ...]:
    """`allowed` as values of the column's type: YAML may write `1` for a text column's
    "1", and `1` for a float column's 1.0."""
    values = column.allowed or []
    if column.type in ("string", "datetime"):
        return tuple(str(value) for value in values)
    number = int if column.type == "integer" else float
    try:
        return tuple(number(value) for value in values)
    except ValueError:
        raise DatasetSpecError(f"dataset {spec.name!r}: column {name!r} allows {values}, "
                               f"but each must be {_NUMBER_NAME[column.type]}") from None

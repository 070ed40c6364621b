"""The `columns` feature builder: the spec's feature columns, typed, and no learned layer.

A dataset whose features are its own columns (or, with events, its aggregates) needs no
code of its own. `view` holds the view (its source is part of every such view's version);
the model's shared preprocessor imputes, scales and encodes the columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifeboat.datasets import DatasetSpec
from lifeboat.features.builder import FeatureBuilder, UnsupportedModel
from lifeboat.features.builders.columns.view import columns_of, spec_columns
from lifeboat.features.replay import (
    Columns,
    Record,
    Row,
    as_number,
    as_text,
    number_column,
    text_column,
)
from lifeboat.features.views import ColumnKind, FeatureView

_AS_NUMBER = (as_number, number_column)  # how a number field's value, and its column, are typed
_AS_TEXT = (as_text, text_column)


class TypedColumns:
    """The view (`view.spec_columns`) replayed: the record's feature fields, typed as
    `raw_frame` types the input field and `FeatureView.typed` then the feature.

    A number field stays a float even as a categorical feature: an integer code 2 is the
    category 2.0, as the encoder learned it. A text field stays text, None when missing.
    Request validation already makes a number field's value an int or a float."""

    def __init__(self, view: FeatureView) -> None:
        self.typing = tuple((name, *_typing(view.spec, name, kind))
                            for name, kind in view.columns.items())

    def row(self, record: Record) -> Row:
        return {name: one(record.get(name)) for name, one, _ in self.typing}

    def columns(self, raw: Mapping[str, Any]) -> Columns:
        return {name: column(raw[name]) for name, _, column in self.typing}


def _typing(spec: DatasetSpec, name: str, kind: ColumnKind) -> tuple[Callable, Callable]:
    """How a feature's values are typed, one by one and column-wise. Text read as a number is
    left to pandas' own parser, which `float` does not match (it reads "1_000" and "١٢")."""
    field = spec.input_fields.get(name)
    if field is not None and field.type in ("integer", "float"):
        return _AS_NUMBER
    if field is not None and field.type == "string" and kind == "string":
        return _AS_TEXT
    source = f"a {field.type} field" if field is not None else "no input field"
    raise UnsupportedModel(f"{kind} feature {name!r} is typed from {source} by pandas alone")


BUILDER = FeatureBuilder(view=spec_columns, columns=columns_of, replay=TypedColumns)

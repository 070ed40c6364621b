"""Feature views: named, versioned sets of record-local features, shared by every path.

A view is what the stores hold and what models are trained on: the offline table, the
online store, training and serving all go through `FeatureView`, so a vector looked up by
entity id is exactly what the view computes from that entity's raw record. The version is
derived, never typed: a hash of the view's name, its columns and the definition in the module
that computes it, so changing a feature definition cannot keep an old version's name. The
definition is the module's code with comments, docstrings and layout taken out: rewording a
comment or reflowing a line is not a new feature, and must not retire the models trained on it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import pandas as pd

from lifeboat.datasets import DatasetSpec
from lifeboat.features.frames import raw_frame
from lifeboat.features.online import ViewKey

ColumnKind = Literal["float", "string"]
Compute = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class FeatureView:
    spec: DatasetSpec
    name: str
    columns: Mapping[str, ColumnKind]
    compute: Compute  # typed raw frame (see raw_frame) → one row of view columns per row
    version: str

    @property
    def key(self) -> ViewKey:
        return ViewKey(self.spec.name, self.name, self.version)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def from_records(self, records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
        """Raw records (request bodies, or the dataset table's rows) → view rows."""
        return self.typed(self.compute(raw_frame(self.spec, records)))

    def from_rows(self, rows: Sequence[Sequence[object]], index: Sequence[str] | None = None) -> pd.DataFrame:
        """Stored vectors (in column order) → view rows, typed as `from_records` types them."""
        return self.typed(pd.DataFrame(list(rows), columns=list(self.columns), index=index))

    def logged_rows(self, features: Sequence[Mapping[str, Any] | None],
                    inputs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Logged predictions as the view rows they were scored on: the row logged with
        each, typed as `typed` types them.

        A prediction logged before the log kept its view row (null), or scored on a view
        with other columns, gets this view of its raw input, which is what a record was
        scored on; one by entity id logged then has only the id as input, so its row is
        all missing."""
        rows = list(features)
        recomputed = [position for position, row in enumerate(rows)
                      if row is None or row.keys() != self.columns.keys()]
        if recomputed:
            computed = self.from_records(pd.DataFrame.from_records([inputs[i] for i in recomputed]))
            for position, row in zip(recomputed, computed.to_dict("records"), strict=True):
                rows[position] = row
        return self.typed(pd.DataFrame.from_records(rows, columns=list(self.columns)))

    def typed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One representation per value: floats as float64, text as object, missing as NaN."""
        typed = pd.DataFrame(index=frame.index)
        for name, kind in self.columns.items():
            if kind == "float":
                typed[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
            else:
                text = frame[name].astype(object)
                typed[name] = text.where(text.notna(), np.nan)
        return typed


def view_version(spec: DatasetSpec, name: str, columns: Mapping[str, ColumnKind],
                 compute: Compute) -> str:
    definition = {
        "dataset": spec.name,
        "view": name,
        "columns": dict(columns),
        "inputs": {column: spec.input_fields[column].type for column in spec.input_columns},
        "code": _module_definition(compute),
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:12]


@cache
def _module_definition(compute: Compute) -> str:
    """The computing module's code as Python reads it: `ast.unparse` drops comments and
    layout, and docstrings are removed from the tree first."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(compute)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            node.body = _without_docstring(node.body)
    return ast.unparse(tree)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return body[1:] or [ast.Pass()]
    return body

"""The Predict form, derived from the dataset spec so a new dataset gets its form for free.

Labels (the name as words when the spec gives none), units, hints, option names and a typical record to start from are the spec's columns'
presentation fields; types, bounds and required fields come from the same columns the API
validates against, so the browser and the server never disagree on what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lifeboat.datasets import ColumnSpec, DatasetSpec


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str  # "select", "number" or "text"
    required: bool
    default: Any = None
    options: tuple[tuple[Any, str], ...] = ()
    step: str | None = None
    min: float | None = None
    max: float | None = None
    hint: str | None = None
    unit: str | None = None


def form_fields(spec: DatasetSpec) -> list[FormField]:
    """One field per raw input of the spec, in the spec's order."""
    return [_field(name, column) for name, column in spec.input_fields.items()]


def _field(name: str, column: ColumnSpec) -> FormField:
    common = {"name": name, "label": column.display_label(name), "unit": column.unit,
              "required": column.required, "default": column.default, "hint": column.hint}
    if column.allowed is not None:
        options = tuple((value, column.options.get(value, str(value))) for value in column.allowed)
        return FormField(kind="select", options=options, **common)
    if column.type in ("integer", "float"):
        return FormField(kind="number", step="1" if column.type == "integer" else "any",
                         min=column.min, max=column.max, **common)
    return FormField(kind="text", **common)

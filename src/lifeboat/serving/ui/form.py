"""The Predict form, derived from the dataset spec so a new dataset gets its form for free.

Only presentation lives here (labels, option names, a typical record to start from): types,
bounds and required fields come from the spec, the same source the API validates against,
so the browser and the server never disagree on what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lifeboat.datasets import ColumnSpec, DatasetSpec

# Friendlier words for known datasets; any other dataset shows its column names as they are.
_PRESENTATION: dict[str, dict[str, dict[str, Any]]] = {
    "titanic": {
        "pclass": {"label": "Ticket class", "default": 3,
                   "options": {1: "1st (upper)", 2: "2nd (middle)", 3: "3rd (lower)"}},
        "name": {"label": "Name", "default": "Doe, Mr. John",
                 "hint": "“Surname, Title. Given names”: the title is a feature."},
        "sex": {"label": "Sex", "default": "male"},
        "age": {"label": "Age (years)", "default": 29, "hint": "Leave empty if unknown."},
        "sibsp": {"label": "Siblings / spouses aboard", "default": 0},
        "parch": {"label": "Parents / children aboard", "default": 0},
        "ticket": {"label": "Ticket number"},
        "fare": {"label": "Fare (£)", "default": 8.05},
        "cabin": {"label": "Cabin", "hint": "e.g. C85; most passengers had none."},
        "embarked": {"label": "Port of embarkation", "default": "S",
                     "options": {"C": "Cherbourg", "Q": "Queenstown", "S": "Southampton"}},
    },
}


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


def form_fields(spec: DatasetSpec) -> list[FormField]:
    """One field per raw input of the spec, in the spec's order."""
    presentation = _PRESENTATION.get(spec.name, {})
    return [_field(name, spec.columns[name], presentation.get(name, {}))
            for name in spec.input_columns]


def _field(name: str, column: ColumnSpec, shown: dict[str, Any]) -> FormField:
    common = {"name": name, "label": shown.get("label", name), "required": column.required,
              "default": shown.get("default"), "hint": shown.get("hint")}
    if column.allowed is not None:
        names = shown.get("options", {})
        options = tuple((value, names.get(value, str(value))) for value in column.allowed)
        return FormField(kind="select", options=options, **common)
    if column.type in ("integer", "float"):
        return FormField(kind="number", step="1" if column.type == "integer" else "any",
                         min=column.min, max=column.max, **common)
    return FormField(kind="text", **common)

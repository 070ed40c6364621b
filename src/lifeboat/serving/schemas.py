"""Request and response shapes. The record shape is generated from the dataset spec."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from lifeboat.datasets import DatasetSpec
from lifeboat.db import UtcDatetime
from lifeboat.errors import DatasetSpecError
from lifeboat.orchestration import JOBS
from lifeboat.scoring import MAX_ENTITY_ID
from lifeboat.validation import ColumnRule, table_rules

Source = Literal["api", "webapp", "scheduled", "batch"]
JobName = Literal[tuple(JOBS)]  # type: ignore[valid-type]
RunStatus = Literal["running", "succeeded", "failed"]


def _field_type(name: str, rule: ColumnRule) -> Any:
    if rule.kind == "string":
        return _text_type(rule)
    if not rule.is_number:
        raise DatasetSpecError(f"input {name!r}: a request cannot carry a {rule.kind}")
    return _number_type(rule)


def _text_type(rule: ColumnRule) -> Any:
    """Free text up to `max_length`; or one of `allowed`, in any case and with blanks
    around it, given back in the spec's spelling (what the model was trained on)."""
    if rule.allowed is None:
        return Annotated[str, Field(max_length=rule.max_length)]
    spellings = rule.spellings
    expected = ", ".join(repr(value) for value in spellings.values())

    def spelled(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "Input should be a valid string")
        found = spellings.get(value.strip().lower())
        if found is None:
            raise PydanticCustomError("literal_error", "Input should be {expected} (any case)",
                                      {"expected": expected})
        return found

    return Annotated[str, BeforeValidator(spelled), WithJsonSchema({
        "type": "string", "enum": list(spellings.values()),
        "description": "Matched case-insensitively, blanks around it ignored."})]


def _number_type(rule: ColumnRule) -> Any:
    """A JSON number, or a string holding one; never a boolean, which JSON keeps apart
    from numbers (Python's `True == 1` would let it through)."""
    kind, pattern = rule.kind, rule.request_number

    def number(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(f"{kind}_type", "Input should be a number, not a boolean")
        if not isinstance(value, str):
            return value
        if not pattern.match(value):
            raise PydanticCustomError(f"{kind}_parsing", "Input should be {what} or a string "
                                      "holding one", {"what": rule.number_name})
        return int(value) if rule.whole else float(value)

    json_type = "integer" if rule.whole else "number"
    if rule.allowed is not None:
        allowed = list(rule.allowed)
        return Annotated[Literal[tuple(allowed)], BeforeValidator(number), WithJsonSchema(
            {"anyOf": [{"type": json_type, "enum": allowed},
                       {"type": "string", "enum": [str(v) for v in allowed]}]})]
    bounds = {key: value for key, value in (("minimum", rule.low), ("maximum", rule.high))
              if value is not None}
    base = int if rule.whole else float
    return Annotated[base, BeforeValidator(number),
                     Field(ge=rule.low, le=rule.high,
                           allow_inf_nan=False if kind == "float" else None),
                     WithJsonSchema(_number_schema(rule, {"type": json_type, **bounds}))]


def _number_schema(rule: ColumnRule, number: dict[str, Any]) -> dict[str, Any]:
    """The number, or its text as far as JSON Schema can keep text within the bounds: an
    integer's few values listed, else a pattern every match of which is in bounds (so that
    a request valid by the document is valid). The service reads any number as text within
    the bounds; the document names the part of that it can state exactly."""
    low, high = rule.low, rule.high
    if rule.whole and low is not None and high is not None and high - low <= 200:
        text = {"enum": [str(value) for value in range(int(low), int(high) + 1)]}
    elif low is not None and low > 0 or high is not None and high < 1:
        return number
    else:
        sign = "-?" if low is None else ""  # a lower bound at or below 0: no sign needed
        if high is None:
            digits = "[0-9]{1,15}"
        elif high >= 10:  # one digit fewer than the bound: always below it
            digits = f"[0-9]{{1,{len(str(int(high))) - 1}}}"
        else:
            digits = f"[0-{int(high) - (not rule.whole)}]"
        fraction = "" if rule.whole else r"(\.[0-9]{1,6})?"
        text = {"pattern": f"^{sign}{digits}{fraction}$"}
    return {"anyOf": [number, {"type": "string", **text,
                               "description": "A number as text, within the same bounds."}]}


# JSON's interoperable integers (RFC 8259, section 6): a client parsing numbers as doubles
# would turn a larger id into another one, so a larger id must come as text.
_SAFE_INTEGER = 2 ** 53 - 1


def _entity_id_text(value: Any) -> Any:
    """Ids may be numbers where a file or a client holds them as such: 7 is the id "7", and
    so is 7.0, which JSON Schema counts as the same integer."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > _SAFE_INTEGER:
            raise PydanticCustomError("unsafe_integer",
                                      "an id beyond ±(2**53 - 1) must be sent as text")
        return str(value)
    return value


ENTITY_ID_SCHEMA = {"anyOf": [
    {"type": "string", "minLength": 1, "maxLength": MAX_ENTITY_ID},
    {"type": "integer", "minimum": -_SAFE_INTEGER, "maximum": _SAFE_INTEGER}]}
EntityId = Annotated[str, Field(min_length=1, max_length=MAX_ENTITY_ID),
                     BeforeValidator(_entity_id_text), WithJsonSchema(ENTITY_ID_SCHEMA)]


def record_model(spec: DatasetSpec) -> type[BaseModel]:
    """One raw record: the spec's input fields, typed and bounded, matched case-insensitively.

    Fields outside the inputs (the key, the label, leaks such as `boat`) are accepted and
    dropped, so a full row of the source file can be sent as it is.
    """

    # An optional text field holding one of the spec's missing tokens (" ?") has no value,
    # as in the dataset's files; a required one keeps it, and numbers are never tokens.
    rules = table_rules(spec).inputs
    optional_texts = {name for name, rule in rules.items()
                      if rule.kind == "string" and not rule.required}
    missing = spec.missing_tokens

    def canonical_keys(cls: type[BaseModel], data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        record = {spec.canonical(str(key)) or key: value for key, value in data.items()}
        return {name: None if name in optional_texts and isinstance(value, str)
                and value.strip() in missing else value for name, value in record.items()}

    fields: dict[str, Any] = {}
    for name, rule in rules.items():
        annotation = _field_type(name, rule)
        fields[name] = (annotation, ...) if rule.required else (annotation | None, None)
    return create_model(
        f"{schema_prefix(spec)}Record",
        __config__=ConfigDict(extra="ignore", str_strip_whitespace=True),
        __validators__={"canonical_keys": model_validator(mode="before")(canonical_keys)},
        **fields,
    )


def schema_prefix(spec: DatasetSpec) -> str:
    """The dataset's name in CamelCase, as its schemas are named in the OpenAPI document
    (`titanic_second` -> `TitanicSecond`): each dataset's shapes get components of their own."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", spec.name))


class ModelRef(BaseModel):
    name: str
    version: str


class Contribution(BaseModel):
    """`scoring.explain.Contribution` on the wire."""

    model_config = ConfigDict(from_attributes=True)
    feature: str
    value: Any
    effect: float = Field(description="Probability with this value minus with the value left "
                                      "out (the model's learned default): > 0 pushed it up.")


class PredictionOut(BaseModel):
    id: str
    entity_id: str | None = Field(None, description="Set when scored by entity id.")
    prediction: int
    label: str
    probability: float = Field(description="Probability of the positive class.")
    outliers: list[str] | None = Field(
        None, description="Given fields whose value lies outside the training data's range, "
                          "or is a category training never saw: the prediction is less sure "
                          "than its probability says.")
    contributions: list[Contribution] | None = Field(
        None, description='With "explain": true: which given fields pushed the probability '
                          "up or down, largest effect first.")
    row: int | None = Field(None, description="Set for an uploaded file: the data row scored "
                                              "(1 is the first line under the header).")


_PREDICTION_FIELDS = frozenset(PredictionOut.model_fields)


class EntityError(BaseModel):
    entity_id: str
    error: str


class RowProblemOut(BaseModel):
    """`scoring.RowProblem` on the wire: a value of an uploaded row that was not used."""

    model_config = ConfigDict(from_attributes=True)
    row: int | None = Field(description="The file's data row (1 is the first under the header).")
    column: str | None = Field(description="The column; left out when the line does not split "
                                           "into the header's columns (and is not scored).")
    issue: str = Field(description="wrong_type, out_of_range, not_allowed, missing_required, "
                                   "too_long or malformed_row.")
    reason: str = Field(description="The same in words, with the rule the value broke.")
    value: str | None = Field(None, description="The text as given.")


class PredictResponse(BaseModel):
    model: ModelRef
    predictions: list[PredictionOut]
    errors: list[EntityError] = Field(
        default_factory=list, description="Entity ids that could not be scored, and why.")
    issues: list[RowProblemOut] | None = Field(
        None, description="For an uploaded file: each value not used (its row is scored with it "
                          "missing, as `lifeboat predict` scores it) and each line not scored.")


@dataclass(frozen=True)
class DatasetSchemas:
    """A dataset's request and response shapes: built once per dataset, since the OpenAPI
    document names each class (two classes of one name would clash)."""

    record: type[BaseModel]
    prediction: type[PredictionOut]
    response: type[PredictResponse]
    probability_field: str | None = None  # `prediction` has it, beside `probability`


def dataset_schemas(spec: DatasetSpec) -> DatasetSchemas:
    """The record shape, and, when the spec names a `probability_field`, prediction and
    response shapes that carry it too; otherwise the shared ones, unchanged."""
    field_name = spec.target.probability_field
    if field_name is None:
        return DatasetSchemas(record_model(spec), PredictionOut, PredictResponse)
    if field_name in _PREDICTION_FIELDS:
        raise DatasetSpecError(f"dataset {spec.name!r}: target.probability_field "
                               f"{field_name!r} would replace a field of every prediction")
    prefix = schema_prefix(spec)
    prediction = create_model(f"{prefix}PredictionOut", __base__=PredictionOut, **{
        field_name: (float, Field(description="The same value as `probability`, under this "
                                              "dataset's own name for it."))})
    response = create_model(f"{prefix}PredictResponse", __base__=PredictResponse,
                            predictions=(list[prediction], ...))
    return DatasetSchemas(record_model(spec), prediction, response, field_name)


class PastPrediction(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: UtcDatetime
    source: str
    entity_id: str | None = Field(description="The entity scored: the id asked for, or the "
                                              "key the record or file row carried.")
    input: dict[str, Any] = Field(description="The raw input: a record's fields, or "
                                              '{"entity_id": ...} for a prediction by id.')
    features: dict[str, Any] | None = Field(
        description="The feature-view row the model scored, missing values as null; null "
                    "for predictions logged before the log kept it.")
    prediction: int
    label: str
    probability: float
    model_name: str
    model_version: str
    latency_ms: float = Field(description="This prediction's share of its scoring time: a "
                                          "request's or a batch chunk's time divided by the "
                                          "predictions it made.")
    actual: int | None = Field(None, description="The true outcome once known; null until "
                                                 "then.")
    outcome_source: Literal["api", "derived"] | None = Field(
        None, description="Who knew the outcome: `api`, a caller of POST /feedback; "
                          "`derived`, read off the entity's later events.")


class PastPredictionDetail(PastPrediction):
    explanation: list[Contribution] | None = Field(
        description="Which values pushed the probability up or down, largest effect first; "
                    "null when it cannot be computed. Not logged: computed now by the model "
                    "serving (`explained_by`), which may not be the one that predicted.")
    explained_by: ModelRef | None = Field(description="The model that computed the "
                                                      "explanation.")
    explained_from: Literal["features", "input"] | None = Field(
        description="What was explained: the fields the caller gave (`input`), or, for a "
                    "prediction by entity id, the feature vector it was scored on "
                    "(`features`).")
    explanation_note: str | None = Field(None, description="Why there is no explanation.")


class PastPredictionsPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[PastPrediction]


class ModelInfo(BaseModel):
    dataset: str
    name: str
    version: str
    run_id: str
    aliases: list[str]
    metrics: dict[str, float]
    threshold: float = Field(description="The probability from which the model answers 1.")


class ModelVersionOut(BaseModel):
    name: str
    version: str
    created_at: UtcDatetime
    aliases: list[str]
    metrics: dict[str, float]
    feature_view: str | None
    threshold: float = Field(description="The probability from which the model answers 1, "
                                         "chosen on validation data for the spec's objective.")
    promotion: dict[str, Any] | None = Field(
        None, description="The promotion gate's decision on this version and its evidence: "
                          "promoted, reason, metric, rows (held-out and labelled predictions "
                          "neither model trained on), both scores, delta, bootstrap interval, "
                          "minimum improvement.")
    training_data: dict[str, str] = Field(
        default_factory=dict, description="What data it was trained on: `data.loaded_until`, "
                                          "`data.feedback_until`, `data.hash`, row counts.")
    is_champion: bool
    serving: bool = Field(description="Whether this process is scoring with it right now.")
    run_url: str | None = Field(
        None, description="Its training run's page in the MLflow UI; null when no UI is "
                          "configured (LIFEBOAT_MLFLOW_UI_URL, or an http(s) tracking URI).")
    run_id: str | None = Field(None, description="Its MLflow training run.")
    model_type: str | None = Field(
        None, description="The candidate that won its search (logistic_regression, "
                          "gradient_boosting, ...); null for a version registered otherwise.")
    hyperparameters: dict[str, str] = Field(
        default_factory=dict, description="The classifier's parameters its search chose.")


class FeatureImportanceOut(BaseModel):
    name: str
    importance: float = Field(description="Mean drop of the held-out metric when the "
                                          "feature's values are shuffled among the rows.")
    spread: float = Field(description="Standard deviation of that drop over the shuffles.")


class FeatureImportancesOut(BaseModel):
    method: Literal["permutation"]
    metric: str = Field(description="The held-out metric whose drop is measured.")
    rows: int = Field(description="Held-out rows it was measured on.")
    repeats: int = Field(description="Shuffles per feature.")
    features: list[FeatureImportanceOut] = Field(description="Most important first.")


class ModelReport(ModelVersionOut):
    training_parameters: dict[str, str] = Field(
        default_factory=dict, description="Its training run's other parameters: rows, "
                                          "folds, search, calibration, threshold objective...")
    curves: dict[str, Any] | None = Field(
        None, description="Held-out ROC, calibration and precision-recall curves, and the "
                          "confusion matrix at its threshold (as /models/{version}/curves); "
                          "null for a version trained before they were logged.")
    feature_importance: FeatureImportancesOut | None = Field(
        None, description="Permutation importance on its held-out rows, computed at "
                          "training time; null for a version trained before it was logged.")


class ChampionChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    changed_at: UtcDatetime
    from_version: str | None
    to_version: str
    changed_by: str = Field(description="training, retrain, pipeline, cli or api.")
    reason: str
    evidence: dict[str, Any] | None = None


class ChampionHistoryPage(BaseModel):
    items: list[ChampionChangeOut]


class ModelsPage(BaseModel):
    champion: str | None
    serving: str | None
    versions: list[ModelVersionOut]


class DatasetOut(BaseModel):
    name: str
    description: str
    model_name: str
    champion: str | None = Field(description="The champion version this process serves; "
                                             "null while none is loaded.")
    default: bool = Field(description="Served at the unprefixed routes (/predict, /, ...) too.")
    path: str = Field(description="Where its API and UI page live: {path}/predict, {path}/.")


class DatasetsPage(BaseModel):
    items: list[DatasetOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is named, not ignored

    id: str = Field(min_length=1, max_length=36, description="The prediction's id.")
    actual: Literal[0, 1]


class FeedbackOut(BaseModel):
    id: str
    actual: int
    prediction: int
    correct: bool


class JobRunOut(BaseModel):
    id: int
    job: str
    trigger: str = Field(description="What started it: cli, schedule, watch, airflow or api.")
    status: RunStatus
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    seconds: float | None = Field(description="How long it took; null while it runs.")
    counts: dict[str, int] = Field(description="What it did (e.g. files, rows_loaded, "
                                               "predictions); empty unless it succeeded.")
    error: str | None = Field(description="Why it failed.")


class JobRunsPage(BaseModel):
    items: list[JobRunOut]

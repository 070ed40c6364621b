"""The fast path of the generic `columns` builder scores exactly as the pandas pipeline.

Three specs: the churn example, the customers dataset (rows aggregated as of cut-offs from
generated transactions, dirty regions and ages included) and the churn example with an
integer field as a categorical feature (`raw_frame` makes its codes floats, which the
encoder learns as categories). Every candidate the project has (logistic regression,
gradient boosting, histogram boosting) is fitted on each directly, no MLflow.

Tolerances as tests/scoring/test_compiled_scorer.py has them: what reads float64 (the linear model in
ONNX Runtime, histogram boosting in scikit-learn) agrees to 1e-12; onnxruntime's tree
ensembles only run in float32, within 1e-6.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.preprocessing import FunctionTransformer

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, upgrade
from lifeboat.features import FeatureView, feature_view, open_online_store
from lifeboat.features.aggregates import cutoff_times, future_labels, point_in_time
from lifeboat.registry import ModelVersion
from lifeboat.scoring import batch
from lifeboat.scoring.compiled import (
    VECTORISED_FROM,
    CompiledScorer,
    OnnxClassifier,
    UnsupportedModel,
    compile_model,
    load_scorer,
    save_scorer,
)
from lifeboat.scoring.predictor import Predictor
from lifeboat.serving.schemas import record_model
from lifeboat.synthetic.customers import generate_customers
from lifeboat.training.candidates import CANDIDATES, candidates
from tests.support.churn_accounts import churn_accounts
from tests.support.homes import make_settings
from tests.support.paths import EXAMPLES

CHURN = EXAMPLES / "churn.yaml"
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-6}  # by the type the classifier reads
# What each candidate's classifier reads: ONNX Runtime's trees only have float32 kernels;
# histogram boosting does not convert to ONNX and runs in scikit-learn.
READS = {"LogisticRegression": np.float64, "GradientBoostingClassifier": np.float32,
         "HistGradientBoostingClassifier": np.float64}


@dataclass(frozen=True)
class Case:
    spec: DatasetSpec
    rows: pd.DataFrame  # raw rows: the entity key, the input columns and more
    labels: np.ndarray

    @property
    def view(self) -> FeatureView:
        return feature_view(self.spec)

    def records(self, count: int | None = None) -> list[dict]:
        """Rows as request bodies carry them: ints, floats, text, None for missing."""
        inputs = self.rows[self.spec.input_columns].iloc[:count].astype(object)
        return inputs.where(inputs.notna(), None).to_dict("records")


def _accounts(rows: int, seed: int) -> pd.DataFrame:
    """Churn accounts with 3% of each optional cell empty."""
    rng = np.random.default_rng(seed + 1)
    frame = churn_accounts(rows, seed).astype({"support_calls": object, "monthly_fee": object})
    for column in ("monthly_fee", "support_calls"):
        frame.loc[rng.random(rows) < 0.03, column] = None
    return frame


def _churn_case(spec: DatasetSpec) -> Case:
    rows = _accounts(3000, seed=7)
    return Case(spec, rows, rows["churned"].to_numpy())


def _customers_case() -> Case:
    spec = load_spec("customers")
    customers, months = generate_customers(400, 20_000, seed=5)
    events = pd.concat(list(months), ignore_index=True)
    events["timestamp"] = pd.to_datetime(events["timestamp"], errors="coerce", utc=True,
                                         format="ISO8601")
    events = events.dropna(subset=["timestamp", "customer_id"])
    customers["signup_date"] = pd.to_datetime(customers["signup_date"], utc=True)
    rows = point_in_time(spec, customers, events, cutoff_times(spec, events["timestamp"].max()))
    labels = future_labels(spec, events, rows).to_numpy()
    rows = rows.assign(customer_id=[f"{key}@{i}" for i, key in enumerate(rows["customer_id"])])
    return Case(spec, rows, labels)


def _spec_variant(spec: DatasetSpec, **features: list[str]) -> DatasetSpec:
    """The spec with other feature lists, validated afresh (no cached field of the original)."""
    data = spec.model_dump()
    data["features"].update(features)
    return DatasetSpec.model_validate(data)


@pytest.fixture(scope="module")
def churn() -> DatasetSpec:
    return load_spec(str(CHURN))


@pytest.fixture(scope="module", params=["churn", "customers", "churn_with_coded_calls"])
def case(request: pytest.FixtureRequest, churn: DatasetSpec) -> Case:
    if request.param == "customers":
        return _customers_case()
    if request.param == "churn_with_coded_calls":
        return _churn_case(_spec_variant(churn, numeric=["tenure_months", "monthly_fee"],
                                         categorical=["plan", "support_calls"]))
    return _churn_case(churn)


@pytest.fixture(scope="module", params=list(CANDIDATES))
def model(request: pytest.FixtureRequest, case: Case):
    """Every candidate pipeline, whichever the spec searches."""
    pipeline = CANDIDATES[request.param](case.spec).pipeline
    return pipeline.fit(case.view.from_records(case.rows), case.labels)


@pytest.fixture(scope="module")
def fast(case: Case, model) -> CompiledScorer:  # noqa: ANN001
    return compile_model(case.spec, case.view, model)


def _odd_records(case: Case) -> list[dict]:
    """Each feature absent, None or NaN, an unseen category or code, an empty record."""
    odd: list[dict] = [{}]
    for record in case.records(100):
        for name, kind in case.view.columns.items():
            rest = {key: value for key, value in record.items() if key != name}
            odd += [rest, {**rest, name: None}, {**rest, name: math.nan}]
            if kind == "string":
                unseen = "never-seen" if case.spec.input_fields[name].type == "string" else 99
                odd.append({**rest, name: unseen})
        odd.append({name: value for name, value in record.items()
                    if case.spec.input_fields[name].required})
    return odd


def _reference(model, view: FeatureView, records) -> np.ndarray:  # noqa: ANN001
    return model.predict_proba(view.from_records(records))[:, 1]


def _assert_parity(fast: CompiledScorer, got: np.ndarray, reference: np.ndarray) -> None:
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, rtol=0, atol=TOLERANCE[fast.classifier.dtype])


def _forbidden(*_args: object) -> NoReturn:
    raise AssertionError("scored by the wrong path")


def _version(spec: DatasetSpec) -> ModelVersion:
    return ModelVersion(spec.model_name, "1", "run", 0, [])


def test_only_onnx_trees_read_float32(fast: CompiledScorer, model) -> None:  # noqa: ANN001
    """What the tolerances rest on."""
    assert fast.classifier.dtype is READS[type(model.named_steps["classifier"]).__name__]


def test_a_served_columns_model_is_compiled_without_a_warning(
        case: Case, model, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    with caplog.at_level(logging.WARNING, logger="lifeboat.scoring.predictor"):
        predictor = Predictor(case.spec, model, _version(case.spec), case.view)
    assert predictor.fast is not None
    assert not caplog.records


def test_records_one_at_a_time_score_as_the_pipeline(
        case: Case, model, fast: CompiledScorer) -> None:  # noqa: ANN001
    records = case.records(1000)
    got = np.array([fast.probabilities([record])[0] for record in records])
    _assert_parity(fast, got, _reference(model, case.view, records))


def test_missing_fields_and_unseen_categories_score_as_the_pipeline(
        case: Case, model, fast: CompiledScorer) -> None:  # noqa: ANN001
    records = _odd_records(case)
    reference = _reference(model, case.view, records)
    _assert_parity(fast, fast.probabilities(records), reference)
    assert len(np.unique(reference.round(6))) > 50  # the odd records are not all one case


@pytest.mark.parametrize("shape", ["list", "frame"])
def test_large_batches_go_vectorised_and_score_as_the_pipeline(
        case: Case, model, fast: CompiledScorer, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
        shape: str) -> None:
    records = case.records() + _odd_records(case)
    assert len(records) >= VECTORISED_FROM
    monkeypatch.setattr(CompiledScorer, "_scored", _forbidden)
    given = records if shape == "list" else pd.DataFrame(records)
    _assert_parity(fast, fast.probabilities(given), _reference(model, case.view, records))


def test_scoring_gives_the_view_row_each_record_was_scored_on(
        case: Case, fast: CompiledScorer) -> None:
    """What the prediction log keeps, one record at a time and column-wise alike."""
    records = case.records() + _odd_records(case)
    for given in (records[:500], records):
        _, rows = fast.scored(given)
        pd.testing.assert_frame_equal(case.view.typed(pd.DataFrame(rows)),
                                      case.view.from_records(given))
    assert len(records) >= VECTORISED_FROM


def test_a_saved_scorer_scores_as_the_one_it_saved(
        case: Case, fast: CompiledScorer, tmp_path: Path) -> None:
    """Categories keyed by number (a coded category is the float the encoder learned) too."""
    if not isinstance(fast.classifier, OnnxClassifier):
        assert not save_scorer(fast, tmp_path)  # scikit-learn scores it: nothing to save
        return
    assert save_scorer(fast, tmp_path)
    loaded = load_scorer(case.view, tmp_path)
    records = case.records() + _odd_records(case)
    np.testing.assert_array_equal(loaded.probabilities(records), fast.probabilities(records))
    np.testing.assert_array_equal(loaded.probabilities(records[:200]),
                                  fast.probabilities(records[:200]))
    assert loaded.encoder == fast.encoder


@pytest.mark.parametrize("count", [300, None], ids=["few", "many"])
def test_stored_vectors_score_as_the_pipeline(
        case: Case, model, fast: CompiledScorer, tmp_path: Path,  # noqa: ANN001
        monkeypatch: pytest.MonkeyPatch, count: int | None) -> None:
    """The entity-id path: view rows written to the online store, read back by id."""
    records = (case.records() + _odd_records(case))[:count]
    ids = [f"E{i}" for i in range(len(records))]
    view, rows = case.view, case.view.from_records(records)
    store = open_online_store(f"sqlite:///{tmp_path / 'online.db'}")
    try:
        store.write(view.key, list(view.columns), ids,
                    rows.astype(object).itertuples(index=False, name=None))
        predictor = Predictor(case.spec, model, _version(case.spec), view)
        monkeypatch.setattr(CompiledScorer, "view_probabilities" if count else "_scored", _forbidden)
        scores = predictor.predict_entities(store, ids, "api")
    finally:
        store.close()
    assert scores.unknown == []
    got = np.array([prediction.probability for prediction in scores.predictions])
    _assert_parity(fast, got, model.predict_proba(rows)[:, 1])


def _file_rows(case: Case) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows as a file to score holds them, some cells emptied and some holding a value no
    rule accepts; and as the API scores them, those values left out (batch scoring's rule)."""
    spec, rng = case.spec, np.random.default_rng(11)
    required = [name for name, column in spec.columns.items() if column.required]
    columns = list(dict.fromkeys([spec.entity.key, *required, *spec.input_columns]))
    clean = _accepted(case, case.rows[columns].iloc[:2500])
    written = clean.copy()
    for name in spec.input_columns:
        clean.loc[rng.random(len(clean)) < 0.03, name] = None
        written[name] = clean[name]
        rules = spec.input_fields[name]
        if rules.type == "string" and rules.allowed is None:
            continue  # any text is accepted
        broken = rng.random(len(clean)) < 0.01
        written.loc[broken, name] = "not-allowed" if rules.type == "string" else "-9e9x"
        clean.loc[broken, name] = None
    return written, clean


def test_batch_scoring_types_columns_the_fast_path_scores_as_the_pipeline(
        case: Case, model, fast: CompiledScorer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """A chunk of text cells, typed in Arrow by batch scoring, straight into the fast path."""
    written, clean = _file_rows(case)
    chunk = written.map(lambda value: None if value is None else str(value))
    inputs = batch._typed_inputs(chunk, case.spec)
    assert any(field.issue is not None for field in inputs.values())
    monkeypatch.setattr(batch, "_model_frame", _forbidden)
    predictor = Predictor(case.spec, model, _version(case.spec), case.view)
    records = clean[case.spec.input_columns].to_dict("records")
    _assert_parity(fast, predictor.view_probabilities(batch._view_columns(predictor, inputs)),
                   _reference(model, case.view, records))


def test_lifeboat_predict_scores_a_file_through_the_fast_path(
        case: Case, model, fast: CompiledScorer, tmp_path: Path,  # noqa: ANN001
        monkeypatch: pytest.MonkeyPatch) -> None:
    written, clean = _file_rows(case)
    path = tmp_path / "rows.csv"
    written.to_csv(path, index=False)
    predictor = Predictor(case.spec, model, _version(case.spec), case.view)
    monkeypatch.setattr(batch, "champion_predictor", lambda *_args: predictor)
    monkeypatch.setattr(batch, "_model_frame", _forbidden)
    database = Database(f"sqlite:///{tmp_path / 'lifeboat.db'}")
    upgrade(database)
    try:
        report = batch.score_file(make_settings(tmp_path), database, case.spec, str(path))
    finally:
        database.dispose()
    assert report.rows == report.logged == len(clean) and report.with_issues > 0
    scored = pd.read_csv(report.output)
    records = clean[case.spec.input_columns].to_dict("records")
    _assert_parity(fast, scored["probability"].to_numpy(), _reference(model, case.view, records))


def _accepted(case: Case, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows the API's record model accepts (the customers' dirty ones are not), as
    objects with None for missing: what batch scoring keeps of them is then all of them."""
    record = record_model(case.spec)
    rows = rows.astype(object).where(rows.notna(), None)
    keep = []
    for values in rows[case.spec.input_columns].to_dict("records"):
        try:
            record.model_validate(values)
        except ValidationError:
            keep.append(False)
        else:
            keep.append(True)
    return rows[keep]


def test_columns_models_of_another_shape_are_served_by_pandas(
        case: Case, model) -> None:  # noqa: ANN001
    """An extra step, or no `preprocess`, is not replayed; a model without SMOTE is."""
    steps = list(model.named_steps.items())
    records = case.records(200)
    selected = type(model)([("select", FunctionTransformer()), *steps])
    predictor = Predictor(case.spec, selected, _version(case.spec), case.view)
    assert predictor.fast is None
    np.testing.assert_array_equal(predictor.probabilities(records),
                                  _reference(model, case.view, records))
    with pytest.raises(UnsupportedModel, match="pipeline steps"):
        compile_model(case.spec, case.view, type(model)(steps[-1:]))
    unbalanced = type(model)([step for step in steps if step[0] != "balance"])
    fast = compile_model(case.spec, case.view, unbalanced)
    _assert_parity(fast, fast.probabilities(records), _reference(model, case.view, records))


def test_a_preprocess_part_without_columns_is_served_by_pandas(churn: DatasetSpec) -> None:
    """A scikit-learn part with no columns is never fitted: nothing the fast path could read."""
    spec = _spec_variant(churn, categorical=[])
    case = _churn_case(spec)
    model = candidates(spec)[0].pipeline.fit(case.view.from_records(case.rows), case.labels)
    with pytest.raises(UnsupportedModel, match="without columns"):
        compile_model(spec, case.view, model)
    predictor = Predictor(spec, model, _version(spec), case.view)
    records = case.records(50)
    np.testing.assert_array_equal(predictor.probabilities(records),
                                  _reference(model, case.view, records))


def test_text_read_as_a_number_is_left_to_pandas(churn: DatasetSpec) -> None:
    """pandas' parser reads text numbers otherwise than `float` ("1_000"): not replayed."""
    data = churn.model_dump()
    data["columns"]["monthly_fee"] = {"type": "string"}
    spec = DatasetSpec.model_validate(data)
    model = candidates(spec)[0].pipeline
    with pytest.raises(UnsupportedModel, match="'monthly_fee' is typed from a string field"):
        compile_model(spec, feature_view(spec), model)

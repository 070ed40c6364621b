"""The serving fast path scores exactly as the pandas pipeline it is compiled from.

Tolerances: the linear model runs in float64 all the way and must agree to 1e-12 (what
test_training_serving_parity asks of the HTTP path); onnxruntime's tree ensembles only have float32
kernels, so the boosted trees' probabilities may differ by float32 rounding, within 1e-6,
or that times the steepest slope of an isotonic calibration map over them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import FeatureView, feature_view, open_online_store
from lifeboat.features.builders.titanic import replay as titanic_replay
from lifeboat.registry import ModelRegistry, ModelVersion
from lifeboat.scoring import compiled as fast_path
from lifeboat.scoring.compiled import (
    SCORER_FILE,
    CompiledScorer,
    SklearnClassifier,
    UnsupportedModel,
    compile_model,
    load_scorer,
    save_scorer,
)
from lifeboat.scoring.predictor import Predictor
from lifeboat.synthetic.passengers import synthetic_passengers
from lifeboat.training import CalibratedModel
from lifeboat.training.candidates import candidates

TOLERANCE = {"LogisticRegression": 1e-12, "GradientBoostingClassifier": 1e-6}
OPTIONAL = ("age", "sibsp", "parch", "ticket", "fare", "cabin", "embarked")


@pytest.fixture(scope="module")
def passengers(titanic: DatasetSpec) -> pd.DataFrame:
    """All 1309 bundled passengers, raw, with the survival label."""
    return pd.read_csv(titanic.bundled_path(), na_values=titanic.missing_values,
                       keep_default_na=False)


@pytest.fixture(scope="module")
def view(titanic: DatasetSpec) -> FeatureView:
    return feature_view(titanic)


@pytest.fixture(scope="module", params=[
    ("logistic_regression", None), ("gradient_boosting", None),
    ("logistic_regression", "beta"), ("gradient_boosting", "isotonic")])
def model(request: pytest.FixtureRequest, titanic: DatasetSpec, view: FeatureView,
          passengers: pd.DataFrame):
    """Each candidate pipeline fitted on 1000 passengers: the other 309 are unseen, so
    both seen and unseen travel groups are scored; alone, and calibrated as training
    registers it."""
    name, calibration = request.param
    candidate = next(c for c in candidates(titanic) if c.name == name)
    train = passengers.iloc[:1000]
    fitted = (candidate.pipeline if calibration is None
              else CalibratedModel(candidate.pipeline, calibration, cv=3))
    return fitted.fit(view.from_records(train), train["survived"].to_numpy())


def _pipeline(model):  # noqa: ANN001, ANN202
    """The fitted pipeline, inside its calibration or not."""
    return getattr(model, "pipeline_", model)


def _records(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict]:
    return frame[spec.input_columns].to_dict("records")


def _odd_records(records: list[dict]) -> list[dict]:
    """Missing fields (absent, None or NaN), values the model never saw in training."""
    odd = []
    for record in records[:150]:
        odd += [{k: v for k, v in record.items() if k != field} for field in OPTIONAL]
        odd += [{**record, field: None} for field in (*OPTIONAL, "pclass", "sex", "name")]
        odd.append({**record, "age": math.nan, "fare": math.nan, "ticket": math.nan})
        odd.append({**record, "embarked": "X", "cabin": "Z9", "sex": "unknown"})
        odd.append({**record, "pclass": 4, "age": None, "fare": None, "name": "Doe, Jonkheer. J"})
        odd.append({**record, "ticket": "NEVER SEEN", "name": "Nobody, Mr. New", "sibsp": 3})
        odd.append({"pclass": record["pclass"], "name": record["name"], "sex": record["sex"]})
    return odd


def _tolerance(model) -> float:  # noqa: ANN001
    """The classifier's tolerance, times the steepest slope of an isotonic calibration:
    a step of the map magnifies float32 rounding below it."""
    base = TOLERANCE[type(_pipeline(model).named_steps["classifier"]).__name__]
    calibration = getattr(model, "calibration_", None)
    if calibration is None or calibration.method != "isotonic":
        return base
    x, y = map(np.asarray, calibration.points)
    return base * max(1.0, float(np.max(np.diff(y) / np.maximum(np.diff(x), 1e-12))))


def _reference(model, view: FeatureView, records) -> np.ndarray:  # noqa: ANN001
    return model.predict_proba(view.from_records(records))[:, 1]


def _assert_parity(got: np.ndarray, reference: np.ndarray, model) -> None:  # noqa: ANN001
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, rtol=0, atol=_tolerance(model))


def test_every_bundled_passenger_scores_as_the_pipeline_one_at_a_time(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame) -> None:
    fast = compile_model(titanic, view, model)
    records = _records(passengers, titanic)
    got = np.array([fast.probabilities([record])[0] for record in records])
    _assert_parity(got, _reference(model, view, records), model)


def test_missing_fields_and_unseen_categories_score_as_the_pipeline(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame) -> None:
    fast = compile_model(titanic, view, model)
    records = _odd_records(_records(passengers, titanic))
    reference = _reference(model, view, records)
    _assert_parity(fast.probabilities(records), reference, model)
    uncalibrated = _reference(_pipeline(model), view, records)  # isotonic maps many to one
    assert len(np.unique(uncalibrated.round(6))) > 50  # the odd records are not all one case


@pytest.mark.parametrize("shape", ["list", "frame"])
def test_batches_go_vectorised_and_score_as_the_pipeline(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame,
        monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    monkeypatch.setattr(fast_path, "VECTORISED_FROM", 100)
    fast = compile_model(titanic, view, model)
    monkeypatch.setattr(CompiledScorer, "_scored", _forbidden)
    records = _records(passengers, titanic) + _odd_records(_records(passengers, titanic))
    batch = records if shape == "list" else pd.DataFrame(records)
    _assert_parity(fast.probabilities(batch), _reference(model, view, records), model)


def test_scoring_gives_the_view_row_each_record_was_scored_on(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the prediction log keeps, one record at a time and column-wise alike."""
    fast = compile_model(titanic, view, model)
    records = _records(passengers, titanic)[:300] + _odd_records(_records(passengers, titanic))
    expected = view.from_records(records)
    by_record = fast.scored(records)
    monkeypatch.setattr(fast_path, "VECTORISED_FROM", 100)
    monkeypatch.setattr(CompiledScorer, "_scored", _forbidden)
    column_wise = fast.scored(records)
    for probabilities, rows in (by_record, column_wise):
        pd.testing.assert_frame_equal(view.typed(pd.DataFrame(rows)), expected)
        _assert_parity(probabilities, _reference(model, view, records), model)


def test_a_large_generated_batch_scores_as_the_pipeline(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame) -> None:
    """20000 generated passengers (5% of each optional cell emptied) and the bundled ones,
    so known travel groups are hit, through the column-wise path, no monkeypatching."""
    generated = synthetic_passengers(20000, seed=3)
    generated = generated.rename(columns={c: titanic.canonical(c) for c in generated.columns})
    rng = np.random.default_rng(3)
    for column in (*OPTIONAL, "name", "sex", "pclass"):
        generated[column] = generated[column].astype(object).where(
            rng.random(len(generated)) > 0.05, None)
    frame = pd.concat([generated[titanic.input_columns],
                       passengers[titanic.input_columns]], ignore_index=True)
    fast = compile_model(titanic, view, model)
    predictor = Predictor(titanic, model, ModelVersion("titanic", "1", "run", 0, []), view)
    reference = predictor.reference_probabilities(frame)
    _assert_parity(fast.probabilities(frame), reference, model)
    _assert_parity(fast.probabilities(frame.to_dict("records")), reference, model)


def test_a_saved_scorer_scores_as_the_one_it_saved_without_the_pipeline(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame,
        tmp_path: Path) -> None:
    """Learned ages and fares (keyed by class: numbers, which JSON keeps as pairs), travel
    groups, the encoder's statistics and the ONNX classifier, written and read back."""
    fast = compile_model(titanic, view, model)
    assert save_scorer(fast, tmp_path)
    loaded = load_scorer(view, tmp_path)
    records = _records(passengers, titanic) + _odd_records(_records(passengers, titanic))
    np.testing.assert_array_equal(loaded.probabilities(records), fast.probabilities(records))
    np.testing.assert_array_equal([loaded.probabilities([record])[0] for record in records[:300]],
                                  [fast.probabilities([record])[0] for record in records[:300]])
    assert loaded.encoder == fast.encoder
    assert loaded.layer.learned() == fast.layer.learned()


def test_a_scorer_is_not_saved_without_onnx_nor_loaded_for_other_features(
        model, titanic: DatasetSpec, view: FeatureView, tmp_path: Path) -> None:
    fast = compile_model(titanic, view, model)
    sklearn_scored = CompiledScorer(view, fast.replay, fast.layer, fast.encoder,
                                SklearnClassifier(_pipeline(model).named_steps["classifier"]))
    assert not save_scorer(sklearn_scored, tmp_path) and not any(tmp_path.iterdir())
    save_scorer(fast, tmp_path)
    saved = json.loads((tmp_path / SCORER_FILE).read_text())
    older = {**saved, "feature_view": "passenger_profile@older"}  # same columns: it serves
    (tmp_path / SCORER_FILE).write_text(json.dumps(older))
    assert load_scorer(view, tmp_path).view is view
    other = {**older, "columns": {**saved["columns"], "deck": "float"}}
    (tmp_path / SCORER_FILE).write_text(json.dumps(other))
    with pytest.raises(UnsupportedModel, match="passenger_profile@older"):
        load_scorer(view, tmp_path)


def test_stored_view_vectors_score_as_the_pipeline(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame) -> None:
    """The entity-id path: vectors as the online store returns them (None for missing)."""
    fast = compile_model(titanic, view, model)
    rows = view.from_records(_records(passengers, titanic) + _odd_records(
        _records(passengers, titanic)))
    vectors = rows.astype(object).where(rows.notna(), None).to_numpy().tolist()
    reference = model.predict_proba(view.from_rows(vectors))[:, 1]
    _assert_parity(fast.vector_probabilities(vectors), reference, model)


def test_a_model_the_fast_path_cannot_replay_is_still_served_by_pandas(
        model, titanic: DatasetSpec, view: FeatureView, passengers: pd.DataFrame) -> None:
    records = _records(passengers.iloc[:20], titanic)
    without_engineer = _FixedFeatures(model)
    version = ModelVersion("titanic", "1", "run", 0, [])
    predictor = Predictor(titanic, without_engineer, version, view)
    assert predictor.fast is None
    np.testing.assert_array_equal(predictor.probabilities(records),
                                  _reference(model, view, records))


def test_the_served_champion_uses_the_fast_path_on_every_route(
        trained_settings: Settings, titanic: DatasetSpec, view: FeatureView) -> None:
    """The registry's champion (saved and loaded by skops), with records and entity ids."""
    version, model = ModelRegistry(trained_settings, titanic.model_name).load_champion()
    predictor = Predictor(titanic, model, version, view)
    assert predictor.fast is not None
    ids, records = _stored_passengers(trained_settings, titanic)
    reference = predictor.reference_probabilities(records)
    _assert_parity(predictor.probabilities(records), reference, model)
    _assert_parity(np.array([p.probability for p in predictor.predict(records[:50], "api")]),
                   reference[:50], model)
    store = open_online_store(trained_settings.online_store_url)
    try:
        scores = predictor.predict_entities(store, ids, "api")
    finally:
        store.close()
    assert scores.unknown == []
    _assert_parity(np.array([p.probability for p in scores.predictions]), reference, model)


def _stored_passengers(settings: Settings, spec: DatasetSpec) -> tuple[list[str], list[dict]]:
    database = Database(settings.db_url)
    columns = ", ".join([spec.entity.key, *spec.input_columns])
    try:
        with database.engine.connect() as connection:
            rows = connection.execute(text(f"SELECT {columns} FROM {spec.table}")).mappings().all()
    finally:
        database.dispose()
    return ([row[spec.entity.key] for row in rows],
            [{name: row[name] for name in spec.input_columns} for row in rows])


class _FixedFeatures:
    """A model whose first step is not the learned layer the fast path knows."""

    def __init__(self, model) -> None:  # noqa: ANN001
        self.model = model
        steps = _pipeline(model).named_steps
        self.named_steps = {"features": steps["engineer"], **{
            name: step for name, step in steps.items() if name != "engineer"}}

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(rows)


def test_fares_format_to_cents_as_python_does() -> None:
    """The family key's fare, formatted without a Python call per value: ties, negative
    zero, huge and missing amounts included."""
    rng = np.random.default_rng(5)
    amounts = np.concatenate([
        rng.random(50000) * 600, np.round(rng.random(50000) * 600, 3), np.arange(4000) / 8,
        -rng.random(1000), rng.standard_normal(1000) * 1e13,
        [0.0, -0.0, 0.005, 0.125, 0.375, 2.675, -0.004, 999.995, 1e15, 1e300, math.inf, math.nan]])
    assert titanic_replay._money(amounts).to_pylist() == [
        None if math.isnan(a) else f"{a:.2f}" for a in amounts.tolist()]


def _forbidden(*_args: object) -> NoReturn:
    raise AssertionError("a large batch went through the per-record loop")

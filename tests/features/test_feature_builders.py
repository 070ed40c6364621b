"""Feature builders: one object each, found by the name a spec gives it.

A builder of one's own is one module (tests/support/account_builder.py) named by `module:ATTRIBUTE`:
it trains, compiles and scores through the compiled scorer exactly as the pandas pipeline
scores, row by row, column-wise, from stored vectors and once saved and loaded. Moving the
built-in builders into packages kept every view's version, so registered models still serve.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.errors import DatasetSpecError
from lifeboat.features import FeatureView, feature_builder, feature_view
from lifeboat.scoring.compiled import (
    VECTORISED_FROM,
    CompiledScorer,
    compile_model,
    load_scorer,
    save_scorer,
)
from lifeboat.training.candidates import CANDIDATES
from tests.support import account_builder
from tests.support.churn_accounts import churn_accounts
from tests.support.paths import EXAMPLES

# Registered models name these: the packages' view modules must keep their code.
VIEW_LABELS = {
    "titanic": "passenger_profile@70644943840e",
    "customers": "customer_activity@eb427fe63dda",
    str(EXAMPLES / "adult.yaml"): "adult_profile@551114aee6fd",
}
TOLERANCE = 1e-12  # the linear model reads float64 in ONNX Runtime, as in scikit-learn


def _with_builder(spec: DatasetSpec, builder: str, **features: object) -> DatasetSpec:
    data = spec.model_dump()
    data["features"].update(builder=builder, **features)
    return DatasetSpec.model_validate(data)


@pytest.fixture(scope="module")
def accounts_spec() -> DatasetSpec:
    """The churn example, its features made by `account_builder`."""
    return _with_builder(
        load_spec(str(EXAMPLES / "churn.yaml")), "tests.support.account_builder:BUILDER",
        view="account_profile",
        numeric=["tenure_months", "monthly_fee", "support_calls", "calls_per_year", "plan_rate"],
        categorical=["plan", "tenure_band"])


@pytest.fixture(scope="module")
def accounts() -> pd.DataFrame:
    """Accounts with some fields missing, and a plan training never sees."""
    rows = churn_accounts(2000, seed=11).astype({"support_calls": object, "plan": object})
    rng = np.random.default_rng(12)
    rows.loc[rng.random(len(rows)) < 0.05, "support_calls"] = None
    rows.loc[rng.random(len(rows)) < 0.05, "plan"] = None
    return rows


@pytest.fixture(scope="module")
def view(accounts_spec: DatasetSpec) -> FeatureView:
    return feature_view(accounts_spec)


@pytest.fixture(scope="module")
def model(accounts_spec: DatasetSpec, view: FeatureView, accounts: pd.DataFrame):
    train = accounts.iloc[:1500]
    pipeline = CANDIDATES["logistic_regression"](accounts_spec).pipeline
    return pipeline.fit(view.from_records(train), train["churned"].to_numpy())


@pytest.fixture(scope="module")
def fast(accounts_spec: DatasetSpec, view: FeatureView, model) -> CompiledScorer:  # noqa: ANN001
    return compile_model(accounts_spec, view, model)


def _records(spec: DatasetSpec, frame: pd.DataFrame) -> list[dict]:
    inputs = frame[spec.input_columns].astype(object)
    records = inputs.where(inputs.notna(), None).to_dict("records")
    return [*records, {}, {"plan": "enterprise", "tenure_months": 3},
            {"plan": "pro", "support_calls": 2}, {"monthly_fee": math.nan}]


def _reference(model, view: FeatureView, records: list[dict]) -> np.ndarray:  # noqa: ANN001
    return model.predict_proba(view.from_records(records))[:, 1]


def test_a_spec_names_a_builder_of_its_own_by_module_and_attribute(
        accounts_spec: DatasetSpec, view: FeatureView, model) -> None:  # noqa: ANN001
    assert feature_builder(accounts_spec) is account_builder.BUILDER
    assert view.compute is account_builder.account_profile
    assert list(view.columns) == list(account_builder.PROFILE_COLUMNS)
    assert isinstance(model.named_steps["engineer"], account_builder.PlanRates)


def test_a_builder_of_its_own_scores_as_the_pandas_pipeline_row_by_row(
        accounts_spec: DatasetSpec, view: FeatureView, model, fast: CompiledScorer,  # noqa: ANN001
        accounts: pd.DataFrame) -> None:
    records = _records(accounts_spec, accounts)
    np.testing.assert_allclose(fast.probabilities(records), _reference(model, view, records),
                               rtol=0, atol=TOLERANCE)
    _, rows = fast.scored(records)
    assert rows[0].keys() == view.columns.keys()


def test_a_builder_of_its_own_scores_as_the_pandas_pipeline_column_wise(
        accounts_spec: DatasetSpec, view: FeatureView, model, fast: CompiledScorer,  # noqa: ANN001
        accounts: pd.DataFrame) -> None:
    records = _records(accounts_spec, accounts)
    frame = pd.DataFrame.from_records(records)
    reference = _reference(model, view, records)
    np.testing.assert_allclose(fast.probabilities(frame), reference, rtol=0, atol=TOLERANCE)
    many = records * (VECTORISED_FROM // len(records) + 1)
    np.testing.assert_allclose(fast.probabilities(many), _reference(model, view, many),
                               rtol=0, atol=TOLERANCE)


def test_a_builder_of_its_own_scores_stored_vectors(
        view: FeatureView, model, fast: CompiledScorer,  # noqa: ANN001
        accounts_spec: DatasetSpec, accounts: pd.DataFrame) -> None:
    profile = view.from_records(_records(accounts_spec, accounts))
    vectors = profile.astype(object).where(profile.notna(), None).to_numpy().tolist()
    np.testing.assert_allclose(fast.vector_probabilities(vectors),
                               model.predict_proba(profile)[:, 1], rtol=0, atol=TOLERANCE)


def test_a_builder_of_its_own_saves_and_loads_its_learned_layer(
        tmp_path: Path, view: FeatureView, model, fast: CompiledScorer,  # noqa: ANN001
        accounts_spec: DatasetSpec, accounts: pd.DataFrame) -> None:
    assert save_scorer(fast, tmp_path)
    loaded = load_scorer(view, tmp_path)
    assert isinstance(loaded.layer, account_builder.PlanRatesReplay)
    records = _records(accounts_spec, accounts)
    np.testing.assert_allclose(loaded.probabilities(records), _reference(model, view, records),
                               rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", ["no_such_builder", "tests.support.account_builder:NOTHING",
                                  "no_such_module:BUILDER", "../titanic", ""])
def test_a_spec_naming_no_builder_is_refused_with_the_built_in_ones(
        accounts_spec: DatasetSpec, name: str) -> None:
    with pytest.raises(DatasetSpecError, match="built in: columns, titanic"):
        feature_view(_with_builder(accounts_spec, name))


@pytest.mark.parametrize(("spec_name", "label"), list(VIEW_LABELS.items()))
def test_the_built_in_views_keep_their_versions(spec_name: str, label: str) -> None:
    assert feature_view(load_spec(spec_name)).label == label

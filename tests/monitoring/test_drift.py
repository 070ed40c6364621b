"""Drift detection: per-request outliers, windowed tests against a stored training reference,
and the detector's quality on seeded synthetic passengers (false alarms and detections)."""

from __future__ import annotations

import json
import math
import statistics
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.monitoring.drift import (
    OTHER,
    PREDICTED_CLASS,
    PROBABILITY,
    DriftResult,
    FeatureDrift,
    _corrected,
    detect_drift,
    distributions,
    render_report,
)
from lifeboat.registry import DriftReference, drift_columns
from lifeboat.synthetic.passengers import Shift, synthetic_passengers
from tests.support.paths import EXAMPLES

REFERENCE_ROWS, REFERENCE_SEED = 2_000, 1
WINDOW, WINDOWS = 200, 250
FALSE_ALARM_TARGET, DETECTION_TARGET = 0.05, 0.95
CORRECTIONS = ("bonferroni", "fdr")
PLOTLY_SRC = "/ui/vendor/plotly.min.js"


def canonical(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda name: spec.canonical(name) or name)


def stand_in_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """A fixed logistic score on sex, class and age: a model's output without training one,
    so a change in who is aboard moves the predictions as it would a real model's."""
    score = (2.5 * (frame["sex"] == "female") - 0.9 * (frame["pclass"] - 2)
             - 0.03 * (frame["age"].fillna(30) - 30))
    return 1 / (1 + np.exp(-score.to_numpy(dtype=float)))


def _feature(result: DriftResult, name: str) -> FeatureDrift:
    return next(test for test in result.features if test.feature == name)


@pytest.fixture(scope="module")
def training(titanic: DatasetSpec) -> pd.DataFrame:
    return canonical(titanic, synthetic_passengers(REFERENCE_ROWS, seed=REFERENCE_SEED))


@pytest.fixture(scope="module")
def reference(titanic: DatasetSpec, training: pd.DataFrame) -> DriftReference:
    return DriftReference.from_training(titanic, training, stand_in_probabilities(training))


@pytest.fixture(scope="module")
def window(titanic: DatasetSpec) -> pd.DataFrame:
    return canonical(titanic, synthetic_passengers(WINDOW, seed=50))


def test_drift_columns_are_the_spec_inputs_that_can_drift(titanic: DatasetSpec) -> None:
    assert drift_columns(titanic) == (["age", "sibsp", "parch", "fare"],
                                      ["pclass", "sex", "embarked"])


def test_open_lists_of_categories_are_categorical_by_their_features() -> None:
    """The adult spec's work classes and occupations have no `allowed` list: the features
    one-hot encode them, so their categories are the training set's, tested and flagged."""
    adult = load_spec(str(EXAMPLES / "adult.yaml"))
    numeric, categorical = drift_columns(adult)
    assert numeric == ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
    assert categorical == ["workclass", "education", "marital_status", "occupation",
                           "relationship", "race", "gender", "native_country"]
    training = pd.DataFrame({"age": [30, 40, 50], "workclass": ["Private", "State-gov", None],
                             "gender": ["Male", "Female", "Male"]})
    reference = DriftReference.from_training(adult, training, np.array([0.2, 0.5, 0.8]))
    person = {"age": 35, "workclass": "Private", "gender": "Female"}
    assert reference.outliers(person) == []
    assert reference.outliers({**person, "workclass": "zzz-never-seen"}) == ["workclass"]


# --- per-request outliers ---------------------------------------------------------------

TYPICAL = {"pclass": 3, "sex": "male", "age": 30.0, "sibsp": 0, "parch": 0, "fare": 8.05,
           "embarked": "S", "name": "Doe, Mr. John", "ticket": "A/5 21171", "cabin": None}


def test_a_typical_record_has_no_outliers(reference: DriftReference) -> None:
    assert reference.outliers(TYPICAL) == []


@pytest.mark.parametrize(("field", "value"), [
    ("age", 150.0), ("age", -1), ("fare", 10_000.0), ("sibsp", 99), ("fare", "abc"),
])
def test_a_value_outside_the_training_range_is_an_outlier(reference: DriftReference,
                                                          field: str, value: object) -> None:
    assert reference.outliers({**TYPICAL, field: value}) == [field]


@pytest.mark.parametrize(("field", "value"), [
    ("sex", "unknown"), ("embarked", "X"), ("pclass", 4), ("pclass", "first"),
])
def test_a_category_never_seen_in_training_is_an_outlier(reference: DriftReference,
                                                         field: str, value: object) -> None:
    assert reference.outliers({**TYPICAL, field: value}) == [field]


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA])
def test_a_missing_value_is_not_an_outlier(reference: DriftReference, missing: object) -> None:
    assert reference.outliers({**TYPICAL, "age": missing, "embarked": missing}) == []
    assert reference.outliers({"name": "only a name"}) == []


def test_a_category_matches_whatever_its_spelling(reference: DriftReference) -> None:
    for pclass in (3, 3.0, "3", np.int64(3)):
        assert reference.outliers({**TYPICAL, "pclass": pclass}) == []


def test_outliers_are_named_in_spec_order_numeric_first(reference: DriftReference) -> None:
    record = {**TYPICAL, "embarked": "X", "age": 500, "fare": -3}
    assert reference.outliers(record) == ["age", "fare", "embarked"]


# --- the reference --------------------------------------------------------------------------

def test_the_reference_keeps_a_seeded_sample_but_the_full_range(titanic: DatasetSpec) -> None:
    big = canonical(titanic, synthetic_passengers(20_000, seed=3))
    probabilities = stand_in_probabilities(big)
    first = DriftReference.from_training(titanic, big, probabilities, seed=7)
    again = DriftReference.from_training(titanic, big, probabilities, seed=7)
    age = first.numeric["age"]
    assert len(age.sample) == 5_000
    np.testing.assert_array_equal(age.sample, again.numeric["age"].sample)
    assert (age.minimum, age.maximum) == (big["age"].min(), big["age"].max())
    assert age.missing_share == pytest.approx(big["age"].isna().mean())
    assert sum(first.categorical["pclass"].counts.values()) == len(big)


def test_json_round_trip_gives_the_same_results(reference: DriftReference,
                                                window: pd.DataFrame) -> None:
    stored = json.dumps(reference.to_dict(), allow_nan=False)  # plain, strict JSON
    restored = DriftReference.from_dict(json.loads(stored))
    probabilities = stand_in_probabilities(window)
    for correction in CORRECTIONS:
        assert (detect_drift(restored, window, probabilities, correction=correction).to_dict()
                == detect_drift(reference, window, probabilities, correction=correction).to_dict())
    odd = {**TYPICAL, "age": 500, "sex": "unknown"}
    assert restored.outliers(odd) == reference.outliers(odd)


def test_probabilities_must_match_the_rows(titanic: DatasetSpec, training: pd.DataFrame,
                                           reference: DriftReference) -> None:
    with pytest.raises(ValueError, match="one probability"):
        DriftReference.from_training(titanic, training, np.zeros(3))
    with pytest.raises(ValueError, match="one probability"):
        detect_drift(reference, training, np.zeros((len(training), 2)))


# --- detect_drift ----------------------------------------------------------------------------

def test_identical_data_has_psi_zero_and_no_drift(reference: DriftReference,
                                                  training: pd.DataFrame) -> None:
    result = detect_drift(reference, training, stand_in_probabilities(training))
    assert not result.drifted
    for test in (*result.features, *result.prediction):
        assert test.psi == pytest.approx(0, abs=1e-12)
        assert test.p_value == pytest.approx(1)


def test_a_result_names_every_feature_with_its_test(reference: DriftReference,
                                                    window: pd.DataFrame) -> None:
    result = detect_drift(reference, window, stand_in_probabilities(window))
    assert [(test.feature, test.test) for test in result.features] == [
        ("age", "ks"), ("sibsp", "ks"), ("parch", "ks"), ("fare", "ks"),
        ("pclass", "chi2"), ("sex", "chi2"), ("embarked", "chi2")]
    assert [test.feature for test in result.prediction] == [PREDICTED_CLASS, PROBABILITY]
    assert result.window == WINDOW
    json.dumps(result.to_dict(), allow_nan=False)


def test_unseen_categories_are_pooled_and_can_drift(reference: DriftReference,
                                                    window: pd.DataFrame) -> None:
    changed = window.copy()
    changed.loc[:1, "embarked"] = "X"
    changed.loc[2:3, "embarked"] = "Y"
    probabilities = stand_in_probabilities(window)
    few = _feature(detect_drift(reference, changed, probabilities), "embarked")
    assert math.isfinite(few.p_value) and math.isfinite(few.psi)
    changed.loc[:40, "embarked"] = "X"
    many = _feature(detect_drift(reference, changed, probabilities), "embarked")
    assert many.drifted and many.p_value < few.p_value and many.psi > few.psi


def test_a_column_missing_from_the_window_is_reported_not_tested(
        reference: DriftReference, window: pd.DataFrame) -> None:
    result = detect_drift(reference, window.drop(columns=["fare"]),
                          stand_in_probabilities(window))
    fare = _feature(result, "fare")
    assert fare.missing_share == 1 and math.isnan(fare.p_value) and not fare.drifted
    assert result.to_dict()["features"][3]["p_value"] is None


def test_detect_drift_refuses_an_unknown_correction(reference: DriftReference,
                                                    window: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="correction"):
        detect_drift(reference, window, stand_in_probabilities(window), correction="holm")


def test_detect_drift_on_a_thousand_rows_is_fast(titanic: DatasetSpec,
                                                 reference: DriftReference) -> None:
    rows = canonical(titanic, synthetic_passengers(1_000, seed=60))
    probabilities = stand_in_probabilities(rows)
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        detect_drift(reference, rows, probabilities)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.1


# --- multiple-testing correction ---------------------------------------------------------

P_VALUES = [0.001, 0.012, 0.02, 0.3, 0.5]


def _tests(p_values: list[float]) -> list[FeatureDrift]:
    return [FeatureDrift(f"f{number}", "numeric", "ks", 0.0, p, 0.0, False, 0.0, 0.0)
            for number, p in enumerate(p_values)]


def test_bonferroni_flags_p_below_p_value_over_k() -> None:
    flagged = [test.drifted for test in _corrected(_tests(P_VALUES), 0.05, "bonferroni")]
    assert flagged == [True, False, False, False, False]  # 0.05 / 5 = 0.01


def test_fdr_is_benjamini_hochberg() -> None:
    flagged = [test.drifted for test in _corrected(_tests(P_VALUES), 0.05, "fdr")]
    assert flagged == [True, True, True, False, False]  # 0.02 < 0.05 * 3 / 5
    rng = np.random.default_rng(0)
    for _ in range(200):
        p_values = list(rng.uniform(0, 0.1, size=7) ** 2)
        ours = [test.drifted for test in _corrected(_tests(p_values), 0.05, "fdr")]
        assert ours == list(stats.false_discovery_control(p_values) < 0.05)


def test_fdr_flags_everything_bonferroni_flags() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        tests = _tests(list(rng.uniform(0, 0.05, size=7) ** 1.5))
        bonferroni = [test.drifted for test in _corrected(tests, 0.05, "bonferroni")]
        fdr = [test.drifted for test in _corrected(tests, 0.05, "fdr")]
        assert all(f for b, f in zip(bonferroni, fdr, strict=True) if b)


def test_drift_share_counts_features_only(reference: DriftReference,
                                          window: pd.DataFrame) -> None:
    changed = window.assign(age=window["age"] + 20, fare=window["fare"] * 5)
    result = detect_drift(reference, changed, np.zeros(len(window)))
    assert [test.feature for test in result.features if test.drifted] == ["age", "fare"]
    assert result.drifted and result.drift_share == pytest.approx(2 / 7)
    assert all(test.drifted for test in result.prediction)  # every prediction is "died"


# --- the report ------------------------------------------------------------------------------

def test_the_report_shows_every_feature_without_a_cdn(reference: DriftReference,
                                                      window: pd.DataFrame) -> None:
    hostile = window.copy()
    hostile.loc[:5, "embarked"] = "<script>alert(1)</script>"
    probabilities = stand_in_probabilities(hostile)
    result = detect_drift(reference, hostile, probabilities)
    page = render_report(result, distributions(result, reference, hostile, probabilities),
                         plotly_src=PLOTLY_SRC, title="Titanic <drift> & co")
    for feature in ("age", "sibsp", "parch", "fare", "pclass", "sex", "embarked",
                    PREDICTED_CLASS, PROBABILITY):
        assert f"<h2>{feature} " in page and f"<td>{feature}</td>" in page
    assert f'<script src="{PLOTLY_SRC}"></script>' in page
    assert page.count("Plotly.newPlot") == 9
    assert "cdn" not in page.lower() and "https://" not in page and "http://" not in page
    assert "<script>alert(1)</script>" not in page
    assert "Titanic &lt;drift&gt; &amp; co" in page and "<drift>" not in page
    assert OTHER in page


def test_the_distributions_hold_each_tests_training_and_window_shares(
        reference: DriftReference, window: pd.DataFrame) -> None:
    changed = window.copy()
    changed.loc[:9, "embarked"] = "X"
    probabilities = stand_in_probabilities(changed)
    result = detect_drift(reference, changed, probabilities)
    shares = distributions(result, reference, changed, probabilities)
    assert list(shares["features"]) == [test.feature for test in result.features]
    assert list(shares["prediction"]) == [PREDICTED_CLASS, PROBABILITY]
    for distribution in [*shares["features"].values(), *shares["prediction"].values()]:
        assert sum(distribution["training"]) == pytest.approx(1, abs=1e-4)
        assert sum(distribution["window"]) == pytest.approx(1, abs=1e-4)
        assert len(distribution["x"]) == len(distribution["training"])
    embarked = shares["features"]["embarked"]
    assert embarked["kind"] == "categorical" and embarked["x"][-1] == OTHER
    assert embarked["window"][-1] == pytest.approx(10 / changed["embarked"].notna().sum(),
                                                   abs=1e-4)  # of the window's known values
    assert embarked["training"][-1] == 0
    age = shares["features"]["age"]
    assert age["kind"] == "numeric" and len(age["width"]) == len(age["x"]) == 30


# --- detector quality ------------------------------------------------------------------------

def _window_results(titanic: DatasetSpec, reference: DriftReference, shift: Shift | None,
                    seed: int, correction: str) -> list[DriftResult]:
    """WINDOWS consecutive windows of one big frame: parties are shuffled across the frame,
    so windows hold unrelated passengers, and one generator call makes all of them."""
    rows = canonical(titanic, synthetic_passengers(WINDOW * WINDOWS, seed=seed, shift=shift))
    probabilities = stand_in_probabilities(rows)
    return [detect_drift(reference, rows.iloc[start:start + WINDOW],
                         probabilities[start:start + WINDOW], correction=correction)
            for start in range(0, len(rows), WINDOW)]


def test_false_alarms_on_windows_from_the_training_distribution(
        titanic: DatasetSpec, reference: DriftReference) -> None:
    # FDR flags whatever Bonferroni flags (and maybe more): its false alarms bound both.
    results = _window_results(titanic, reference, None, seed=101, correction="fdr")
    assert len(results) >= 200
    false_alarms = np.mean([result.drifted for result in results])
    assert false_alarms <= FALSE_ALARM_TARGET


def _scenarios(training: pd.DataFrame) -> dict[str, tuple[Shift, str]]:
    """Each shift and the feature it moves; half a standard deviation of the reference."""
    return {
        "age": (Shift(age_offset=0.5 * training["age"].std()), "age"),
        "fare": (Shift(fare_offset=0.5 * training["fare"].std()), "fare"),
        "class mix": (Shift(class_mix=(0.1, 0.1, 0.8)), "pclass"),  # third class 55% -> 80%
    }


@pytest.mark.parametrize(("scenario", "seed"), [("age", 102), ("fare", 103), ("class mix", 104)])
def test_a_shift_is_detected_in_its_own_feature(
        titanic: DatasetSpec, training: pd.DataFrame, reference: DriftReference,
        scenario: str, seed: int) -> None:
    # Bonferroni flags no more than FDR does: its detections bound both.
    shift, feature = _scenarios(training)[scenario]
    results = _window_results(titanic, reference, shift, seed=seed, correction="bonferroni")
    assert len(results) >= 200
    assert np.mean([result.drifted for result in results]) >= DETECTION_TARGET
    assert np.mean([_feature(result, feature).drifted for result in results]) >= DETECTION_TARGET

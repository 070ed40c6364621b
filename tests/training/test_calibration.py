"""Calibrated probabilities and decision thresholds: the maths on known cases, and the
serving replay of every calibration map against training's own."""

import numpy as np
import pytest

from lifeboat.datasets import ThresholdSpec
from lifeboat.registry.evaluation import expected_calibration_error
from lifeboat.scoring.compiled import Calibration as ReplayedCalibration
from lifeboat.training.calibration import Calibration, best_threshold, decision_threshold, log_odds


def _sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.2, 3.0, rows)
    return truth, (rng.random(rows) < truth).astype(int)


def _value(probability: np.ndarray, labels: np.ndarray, threshold: float,
           objective: ThresholdSpec) -> float:
    """The objective's value when answering 1 from `threshold` up."""
    predicted = probability >= threshold
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    fn = int((~predicted & (labels == 1)).sum())
    if objective.objective == "accuracy":
        return (len(labels) - fp - fn) / len(labels)
    if objective.objective == "f1":
        return 2 * tp / max(2 * tp + fp + fn, 1)
    return -(objective.false_positive_cost * fp + objective.false_negative_cost * fn)


@pytest.mark.parametrize("objective", [
    ThresholdSpec(objective="accuracy"), ThresholdSpec(objective="f1"),
    ThresholdSpec(objective="cost", false_positive_cost=1, false_negative_cost=5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_searched_threshold_reaches_the_best_value_of_its_objective(
        objective: ThresholdSpec, seed: int) -> None:
    """Against every threshold that makes a different decision, tried one by one."""
    probability, labels = _sample(400, seed)
    probability = np.round(probability, 2)  # ties: one threshold decides them all alike
    best = max(_value(probability, labels, threshold, objective)
               for threshold in [*np.unique(probability), np.inf])
    threshold = best_threshold(probability, labels, objective)
    assert _value(probability, labels, threshold, objective) == pytest.approx(best)


def test_calibrated_probabilities_decide_where_the_costs_balance() -> None:
    probability, labels = _sample(100, 0)
    assert decision_threshold(ThresholdSpec(), True, probability, labels) == 0.5
    costly_misses = ThresholdSpec(objective="cost", false_positive_cost=1, false_negative_cost=4)
    assert decision_threshold(costly_misses, True, probability, labels) == pytest.approx(0.2)
    f1 = ThresholdSpec(objective="f1")
    searched = best_threshold(probability, labels, f1)
    assert decision_threshold(f1, True, probability, labels) == searched
    assert decision_threshold(ThresholdSpec(), False, probability, labels) == best_threshold(
        probability, labels, ThresholdSpec())


@pytest.mark.parametrize("method", ["beta", "sigmoid", "isotonic"])
def test_calibration_undoes_an_oversampling_shift(method: str) -> None:
    """SMOTE's balanced training inflates every probability's odds: calibration fitted on one
    sample brings a fresh sample's probabilities back to the observed frequencies."""
    truth, labels = _sample(4000, 1)
    inflated = 1 / (1 + np.exp(-(log_odds(truth) + 1.5)))
    calibration = Calibration.fit(method, inflated, labels)
    fresh_truth, fresh_labels = _sample(4000, 2)
    fresh = 1 / (1 + np.exp(-(log_odds(fresh_truth) + 1.5)))
    raw_error = expected_calibration_error(fresh_labels, fresh)
    calibrated_error = expected_calibration_error(fresh_labels, calibration.apply(fresh))
    assert raw_error > 0.15 and calibrated_error < 0.03


@pytest.mark.parametrize("method", ["beta", "sigmoid", "isotonic", "none"])
def test_serving_replays_each_calibration_map_exactly(method: str) -> None:
    truth, labels = _sample(2000, 3)
    calibration = Calibration.fit(method, truth, labels)
    replayed = ReplayedCalibration(Calibration.from_dict(calibration.to_dict()).to_dict())
    probes = np.r_[0.0, 1e-12, truth, 1 - 1e-12, 1.0]
    np.testing.assert_array_equal(replayed.apply(probes), calibration.apply(probes))


def test_beta_calibration_stays_monotone_where_a_free_fit_would_not() -> None:
    """Labels that rise with p below 0.5 and fall above it: an unconstrained fit bends the
    map back down; the kept fit never lowers a higher probability's calibrated value."""
    rng = np.random.default_rng(4)
    probability = rng.random(3000)
    labels = (rng.random(3000) < np.minimum(probability, 0.5)).astype(int)
    calibration = Calibration.fit("beta", probability, labels)
    grid = np.linspace(0.001, 0.999, 500)
    assert min(calibration.a, calibration.b) >= 0
    assert (np.diff(calibration.apply(grid)) >= 0).all()

"""Model quality of the shipped Titanic training, measured by nested cross-validation.

Each outer fold runs the full shipped search (every candidate, the spec's search budget,
the winner picked by CV score, then calibrated out of fold with its decision threshold, as
`lifeboat train` does) on its training part alone and scores the winner on the held-out part, so the figures say what `lifeboat train` delivers on passengers it never saw.
Beside it, on the same folds: a plain random forest (what the search has to beat), and the
same forest handed `boat`, the leak the spec forbids, so a too-good score is recognised.
Outer folds run in parallel on every core: the full 5x5 takes minutes, not most of an hour.
Calibration is measured too: the expected calibration error (ECE) of each repeat's
out-of-fold probabilities, which hold out every passenger once.

    python -m benchmarks.model_quality [--quick | --smoke]

Exits 1 when the shipped configuration misses a target.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import MissingIndicator
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline

from benchmarks import _smoke
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.features import build_feature_pipeline, feature_view
from lifeboat.registry.evaluation import expected_calibration_error, score
from lifeboat.training import candidates, fit_model, search_and_select

SPLITS, REPEATS, QUICK_REPEATS = 5, 5, 1
SMOKE_SEARCH_ITERATIONS = 1
OUTER_SEED = 0
FOLD_METRICS = ("accuracy", "roc_auc")  # per outer fold; the ECE is per repeat
ECE_BINS = 10
SHIPPED = "shipped: search + selection"
FOREST = "reference: plain forest, 300 trees"
LEAK = "LEAK: plain forest + boat (never ship)"


@dataclass(frozen=True)
class Target:
    bound: float
    at_most: bool = False  # lower is better (the calibration error)

    def met(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.bound:.2f}"


TARGETS = {"accuracy": Target(0.83), "roc_auc": Target(0.88), "ece": Target(0.03, at_most=True)}


@dataclass(frozen=True)
class FoldResult:
    scores: dict[str, dict[str, float]]  # model -> metric -> score on the outer-test part
    rows: np.ndarray  # positions of the outer-test part's passengers
    probabilities: dict[str, np.ndarray]  # model -> its probabilities for those passengers
    chosen: str
    chosen_cv_score: float


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)  # the rest belongs to other benchmarks
    spec = load_spec("titanic")
    passengers = load_passengers(spec)
    repeats = _smoke.pick(args, REPEATS, QUICK_REPEATS, QUICK_REPEATS)
    iterations = _smoke.pick(args, None, None, SMOKE_SEARCH_ITERATIONS)
    outer = RepeatedStratifiedKFold(n_splits=SPLITS, n_repeats=repeats, random_state=OUTER_SEED)
    started = time.perf_counter()
    results = Parallel(n_jobs=-1, verbose=5)(
        delayed(evaluate_fold)(spec, passengers, train_rows, test_rows, iterations)
        for train_rows, test_rows in outer.split(passengers, passengers[spec.target.column])
    )
    met = report(spec, passengers, results, iterations, time.perf_counter() - started)
    return _smoke.exit_code(met, args)


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_quality",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_REPEATS}x{SPLITS} outer folds instead of {REPEATS}x{SPLITS}")
    _smoke.add_flag(parser)  # --quick's folds, a search of one iteration per candidate
    return parser


def load_passengers(spec: DatasetSpec) -> pd.DataFrame:
    """The raw titanic3 rows, leaks included: only the leak reference may look at them."""
    return pd.read_csv(spec.bundled_path(), na_values=spec.missing_values, keep_default_na=False)


def evaluate_fold(spec: DatasetSpec, passengers: pd.DataFrame, train_rows: np.ndarray,
                  test_rows: np.ndarray, iterations: int | None = None) -> FoldResult:
    """Each model's scores and probabilities on the outer-test part; `iterations` overrides
    the spec's search budget."""
    labels = passengers[spec.target.column]
    inputs = feature_view(spec).from_records(passengers)
    with_boat = inputs.assign(boat=passengers["boat"])
    train_y, test_y = labels.iloc[train_rows], labels.iloc[test_rows]
    selection = search_and_select(spec, inputs.iloc[train_rows], train_y, iterations=iterations)
    shipped = fit_model(spec, selection, inputs.iloc[train_rows], train_y)
    forest = plain_forest(spec).fit(inputs.iloc[train_rows], train_y)
    leaky = leaky_forest(spec, list(inputs.columns)).fit(with_boat.iloc[train_rows], train_y)
    held_out = {
        SHIPPED: _held_out(shipped, inputs.iloc[test_rows], test_y),
        FOREST: _held_out(forest, inputs.iloc[test_rows], test_y),
        LEAK: _held_out(leaky, with_boat.iloc[test_rows], test_y),
    }
    return FoldResult({model: scores for model, (scores, _) in held_out.items()}, test_rows,
                      {model: probabilities for model, (_, probabilities) in held_out.items()},
                      selection.best_name, float(selection.best.best_score_))


def plain_forest(spec: DatasetSpec) -> Pipeline:
    """The engineered features straight into a forest: no search, no oversampling."""
    return Pipeline([*build_feature_pipeline(spec).steps, ("classifier", _forest(spec))])


def leaky_forest(spec: DatasetSpec, view_columns: list[str]) -> Pipeline:
    """The plain forest plus whether the passenger had a lifeboat seat: known only afterwards.

    It is fitted on feature-view rows with `boat` beside them, as the plain forest is on the
    view alone: the engineered part takes the view's columns, not the raw inputs."""
    features = ColumnTransformer([
        ("engineered", build_feature_pipeline(spec), view_columns),
        ("boat", MissingIndicator(features="all"), ["boat"]),
    ])
    return Pipeline([("features", features), ("classifier", _forest(spec))])


def _forest(spec: DatasetSpec) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=300, random_state=spec.training.seed)


def _held_out(model: BaseEstimator, features: pd.DataFrame,
              labels: pd.Series) -> tuple[dict[str, float], np.ndarray]:
    """The fold's scores, as training computes them, and the probabilities to pool."""
    metrics = score(model, features, labels)
    return ({name: metrics[name] for name in FOLD_METRICS},
            model.predict_proba(features)[:, 1])


def repeat_eces(results: list[FoldResult], labels: np.ndarray, model: str) -> np.ndarray:
    """The ECE of each repeat, on its outer folds' pooled probabilities: every passenger
    once, so each bin holds a repeat's rows, not a fold's fifth of them."""
    eces = []
    for first in range(0, len(results), SPLITS):  # the folds come repeat by repeat
        pooled = np.full(len(labels), np.nan)
        for result in results[first:first + SPLITS]:
            pooled[result.rows] = result.probabilities[model]
        assert not np.isnan(pooled).any(), "a repeat's outer folds hold out every row"
        eces.append(expected_calibration_error(labels, pooled, bins=ECE_BINS))
    return np.array(eces)


def report(spec: DatasetSpec, passengers: pd.DataFrame, results: list[FoldResult],
           iterations: int | None, elapsed: float) -> bool:
    """Prints the figures; False if the shipped configuration misses a target."""
    names = ", ".join(candidate.name for candidate in candidates(spec))
    labels = passengers[spec.target.column].to_numpy(dtype=float)
    print(f"\nTitanic model quality: nested CV, {len(results)} outer folds "
          f"(repeated stratified {SPLITS}-fold, seed {OUTER_SEED}) over {len(passengers)} rows")
    print(f"shipped search: {names}; {iterations or spec.training.search_iterations} iterations "
          f"each, inner {spec.training.cv_folds}-fold CV by {spec.training.primary_metric}")
    print(f"accuracy and roc_auc per outer fold; ece ({ECE_BINS} equal-width bins) per repeat, "
          f"on its {SPLITS} folds' pooled out-of-fold probabilities\n")
    print(f"{'model':40} {'metric':9} {'mean':>7} {'std':>7} {'median':>7}  target")
    met = [_print_scores(model, metric, _values(results, labels, model, metric))
           for model in (SHIPPED, FOREST, LEAK) for metric in TARGETS]
    chosen = Counter(result.chosen for result in results)
    print("\nchosen candidate: " + ", ".join(f"{name} {count}/{len(results)}"
                                             for name, count in chosen.most_common()))
    inner = np.mean([result.chosen_cv_score for result in results])
    print(f"inner CV {spec.training.primary_metric} of the chosen candidate: {inner:.4f} "
          "(optimistic: it is the maximum over candidates)")
    print(f"wall time: {elapsed / 60:.1f} min ({elapsed:.0f} s), {effective_n_jobs(-1)} processes")
    return all(met)


def _values(results: list[FoldResult], labels: np.ndarray, model: str,
            metric: str) -> np.ndarray:
    if metric == "ece":
        return repeat_eces(results, labels, model)
    return np.array([result.scores[model][metric] for result in results])


def _print_scores(model: str, metric: str, values: np.ndarray) -> bool:
    """One row of the table; False only when the shipped model misses its target."""
    met = TARGETS[metric].met(values.mean())
    verdict = f"{TARGETS[metric]} {'met' if met else 'MISSED'}" if model == SHIPPED else ""
    spread = values.std(ddof=1) if len(values) > 1 else float("nan")  # one repeat: no spread
    print(f"{model:40} {metric:9} {values.mean():7.4f} {spread:7.4f} "
          f"{np.median(values):7.4f}  {verdict}")
    return met or model != SHIPPED


if __name__ == "__main__":
    raise SystemExit(main())

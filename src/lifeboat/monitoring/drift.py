"""Drift: is recent traffic still drawn from the population the model was trained on?

One request cannot answer that; a KS test of a single value against the training set is
noise. So there are two checks, at two scales:

- per request, `DriftReference.outliers` (the training reference, saved with each model
  version: `registry/reference.py`) names fields outside the training range or holding
  a category training never saw: cheap enough to run on every /predict;
- per window of recent predictions, `detect_drift` tests each raw input column against the
  training reference stored with the model (two-sample KS for numbers, chi-squared for
  categories, PSI beside each), corrects for testing several columns at once as Alibi
  Detect's KSDrift does, and tests the model's outputs separately (prediction drift).

`distributions` keeps what a result's plots show (training and window shares per bin or
category), for a page to draw; `render_report` turns one result into a self-contained
HTML page of those plots.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lifeboat.registry import (
    CategoricalReference,
    DriftReference,
    NumericReference,
    bin_shares,
    category_counts,
    checked_probabilities,
    class_counts,
    numbers_in,
)

Correction = Literal["bonferroni", "fdr"]

PSI_EPSILON = 1e-4  # stands in for an empty bin's share, so PSI stays finite
OTHER = "(unseen)"  # one bucket for every category training never saw
PREDICTED_CLASS, PROBABILITY = "predicted class", "probability"


@dataclass(frozen=True)
class FeatureDrift:
    """One column's (or one model output's) test of a window against the reference."""

    feature: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: float  # KS distance, or chi-squared; NaN when the window has no value
    p_value: float
    psi: float
    drifted: bool  # after the multiple-testing correction
    missing_share: float  # in the window
    reference_missing_share: float


@dataclass(frozen=True)
class DriftResult:
    """A window's verdict: `drifted` is about the input features only; the model's outputs
    are tested as their own family in `prediction`, so a shift in them never hides, or
    stands in for, a shift in what the model is given."""

    features: tuple[FeatureDrift, ...]
    prediction: tuple[FeatureDrift, ...]  # the predicted class mix, then the probability
    window: int
    p_value: float
    correction: Correction
    drift_share: float = field(init=False)  # share of features drifted after correction
    drifted: bool = field(init=False)

    def __post_init__(self) -> None:
        flagged = sum(feature.drifted for feature in self.features)
        share = flagged / len(self.features) if self.features else 0.0
        object.__setattr__(self, "drift_share", share)
        object.__setattr__(self, "drifted", flagged > 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (a column with no value in the window) becomes null."""
        return _json_safe(asdict(self))


def detect_drift(reference: DriftReference, current: pd.DataFrame, probabilities: np.ndarray,
                 *, p_value: float = 0.05, correction: Correction = "bonferroni") -> DriftResult:
    """Tests a window of recent requests (raw inputs, canonical column names) and the
    positive class's probability served for each against the training reference.

    Numbers get a two-sample KS test on their non-missing values. Categories get a
    chi-squared test of homogeneity: the window's counts against the training counts, both
    as samples, so the reference's own sampling noise is not mistaken for drift. Categories
    training never saw are pooled into one extra cell, which is kept only when the window
    holds any: a cell empty on both sides adds a degree of freedom and no evidence, and
    would blunt the test. There are no zero-expected cells left, so no smoothing is needed.

    With K features tested at once, `bonferroni` flags a feature when p < p_value / K;
    `fdr` controls the false discovery rate at q = p_value (Benjamini-Hochberg), as Alibi
    Detect's KSDrift does. The tests take rows as independent; related rows (a family, a
    travel party) in the training data make the reference noisier than its size says, and
    false alarms more frequent than p_value promises: benchmarks/drift_quality measures it.
    """
    if correction not in ("bonferroni", "fdr"):
        raise ValueError(f"correction must be 'bonferroni' or 'fdr', not {correction!r}")
    probabilities = checked_probabilities(probabilities, len(current))
    features = [_numeric_test(name, ref, *numbers_in(current, name))
                for name, ref in reference.numeric.items()]
    features += [_categorical_test(name, ref, *category_counts(current, name))
                 for name, ref in reference.categorical.items()]
    prediction = [
        _categorical_test(PREDICTED_CLASS, reference.predicted_class,
                          class_counts(probabilities, reference.threshold), 0.0),
        _numeric_test(PROBABILITY, reference.probability, probabilities, 0.0),
    ]
    return DriftResult(
        features=_corrected(features, p_value, correction),
        prediction=_corrected(prediction, p_value, correction),
        window=len(current), p_value=p_value, correction=correction,
    )


def _numeric_test(name: str, ref: NumericReference, values: np.ndarray,
                  missing_share: float) -> FeatureDrift:
    statistic = p = psi = math.nan
    if len(values):
        result = stats.ks_2samp(values, ref.sample)
        statistic, p = float(result.statistic), float(result.pvalue)
        psi = _psi(ref.shares, bin_shares(values, ref.edges))
    return FeatureDrift(name, "numeric", "ks", statistic, p, psi, False,
                        missing_share, ref.missing_share)


def _categorical_test(name: str, ref: CategoricalReference, counts: dict[str, int],
                      missing_share: float) -> FeatureDrift:
    statistic = p = psi = math.nan
    if counts:
        _, reference_counts, window_counts = _aligned_counts(ref.counts, counts)
        if len(reference_counts) > 1:
            table = np.array([window_counts, reference_counts])
            result = stats.chi2_contingency(table, correction=False)
            statistic, p = float(result.statistic), float(result.pvalue)
        else:  # one category on both sides: nothing can differ
            statistic, p = 0.0, 1.0
        psi = _psi(reference_counts / reference_counts.sum(), window_counts / window_counts.sum())
    return FeatureDrift(name, "categorical", "chi2", statistic, p, psi, False,
                        missing_share, ref.missing_share)


def _aligned_counts(reference: dict[str, int],
                    window: dict[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(categories, reference counts, window counts) over the reference's categories, plus
    the pooled unseen cell when the window has one."""
    categories = list(reference)
    reference_counts = list(reference.values())
    window_counts = [window.get(category, 0) for category in reference]
    unseen = sum(count for category, count in window.items() if category not in reference)
    if unseen:
        categories.append(OTHER)
        reference_counts.append(0)
        window_counts.append(unseen)
    return categories, np.asarray(reference_counts, float), np.asarray(window_counts, float)


def _corrected(tests: list[FeatureDrift], p_value: float,
               correction: Correction) -> tuple[FeatureDrift, ...]:
    """The tests with `drifted` set: p below the corrected threshold."""
    if not tests:
        return ()
    p_values = _tested(test.p_value for test in tests)
    threshold = corrected_threshold(p_values, p_value, correction)
    return tuple(replace(test, drifted=bool(p < threshold))
                 for test, p in zip(tests, p_values, strict=True))


def _tested(p_values: Iterable[float | None]) -> np.ndarray:
    """A column with no value in the window (NaN, or null once stored) counts as p = 1."""
    return np.nan_to_num(np.array([np.nan if p is None else p for p in p_values], float),
                         nan=1.0)


def corrected_threshold(p_values: Iterable[float | None], p_value: float,
                        correction: str) -> float:
    """The per-test p-value below which a test of the family counts as drifted, as Alibi
    Detect computes it: what a chart of p-values draws as the cut-off. Takes the p-values
    as a stored report holds them (null for a column with no value in the window)."""
    p_values = _tested(p_values)
    count = len(p_values)
    if not count:
        return p_value
    if correction == "bonferroni":
        return p_value / count
    # Benjamini-Hochberg: the largest i with p_(i) < q * i / K sets the threshold.
    ranked = p_value * np.arange(1, count + 1) / count
    below = np.flatnonzero(np.sort(p_values) < ranked)
    return float(ranked[below.max()]) if len(below) else float(ranked[0])


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index: sum of (actual - expected) * ln(actual / expected)."""
    expected = np.clip(expected, PSI_EPSILON, None)
    actual = np.clip(actual, PSI_EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def distributions(result: DriftResult, reference: DriftReference, current: pd.DataFrame,
                  probabilities: np.ndarray) -> dict[str, dict[str, dict[str, Any]]]:
    """What each test compared, as shares a plot draws: `features` and `prediction`, each
    by name, hold a numeric test's bins (`x` their centres, `width`) or a categorical
    test's categories (`x`, unseen ones pooled), with the `training` and `window` share of
    each. `current` and `probabilities` are the window `result` was computed on."""
    probabilities = checked_probabilities(probabilities, len(current))
    outputs = {
        PREDICTED_CLASS: _bar_shares(reference.predicted_class.counts,
                                     class_counts(probabilities, reference.threshold)),
        PROBABILITY: _histogram_shares(reference.probability.sample, probabilities),
    }
    return {
        "features": {test.feature: _feature_shares(test, reference, current)
                     for test in result.features},
        "prediction": {test.feature: outputs[test.feature] for test in result.prediction},
    }


def render_report(result: DriftResult, shares: dict[str, dict[str, dict[str, Any]]], *,
                  plotly_src: str, title: str) -> str:
    """One self-contained HTML page: a summary table, then the training and window
    distributions (`shares`, from `distributions`) of every tested feature and of the
    model's outputs. plotly.js is loaded from `plotly_src` (a URL the service serves),
    never from a CDN.
    """
    tests = [(test, shares["features"][test.feature]) for test in result.features]
    tests += [(test, shares["prediction"][test.feature]) for test in result.prediction]
    sections = "\n".join(_section(number, test, _figure_of(distribution))
                         for number, (test, distribution) in enumerate(tests))
    return _page(result, title, plotly_src, sections)


def _feature_shares(test: FeatureDrift, reference: DriftReference,
                    current: pd.DataFrame) -> dict[str, Any]:
    if test.kind == "numeric":
        return _histogram_shares(reference.numeric[test.feature].sample,
                                 numbers_in(current, test.feature)[0])
    return _bar_shares(reference.categorical[test.feature].counts,
                       category_counts(current, test.feature)[0])


def _histogram_shares(reference_values: np.ndarray, window_values: np.ndarray) -> dict[str, Any]:
    """Training and window shares per bin, on the same bins."""
    edges = _plot_edges(np.concatenate([reference_values, window_values]))
    shares = {name: _rounded(np.histogram(values, edges)[0] / max(len(values), 1))
              for name, values in (("training", reference_values), ("window", window_values))}
    return {"kind": "numeric", "x": _rounded((edges[:-1] + edges[1:]) / 2),
            "width": _rounded(np.diff(edges)), **shares}


def _plot_edges(values: np.ndarray) -> np.ndarray:
    """One bin per value for small whole numbers (sibsp, parch), else 30 equal bins."""
    if not len(values):
        return np.array([0.0, 1.0])
    low, high = values.min(), values.max()
    if np.all(values == np.round(values)) and high - low <= 40:
        return np.arange(low - 0.5, high + 1.5)
    return np.histogram_bin_edges(values, bins=30)


def _bar_shares(reference_counts: dict[str, int], window_counts: dict[str, int]) -> dict[str, Any]:
    """Training and window shares per category; unseen ones pooled."""
    categories, reference_side, window_side = _aligned_counts(reference_counts, window_counts)
    return {"kind": "categorical", "x": categories,
            "training": _rounded(reference_side / max(reference_side.sum(), 1)),
            "window": _rounded(window_side / max(window_side.sum(), 1))}


def _rounded(values: np.ndarray) -> list[float]:
    """Six significant digits: what a plot shows, at a fraction of the stored size."""
    return [float(f"{value:.6g}") for value in values]


def _figure_of(distribution: dict[str, Any]) -> Any:
    """Training and window overlaid on the same bins, or side by side per category."""
    figure = _figure()
    numeric = distribution["kind"] == "numeric"
    for name in ("training", "window"):
        figure.add_bar(name=name, x=distribution["x"], y=distribution[name],
                       **({"width": distribution["width"], "opacity": 0.55} if numeric else {}))
    figure.update_layout(barmode="overlay" if numeric else "group",
                         **({} if numeric else {"xaxis_type": "category"}))
    return figure


def _figure() -> Any:
    """An empty figure in the report's style. plotly is imported here, not with the module,
    so /predict's outlier check never pays for it."""
    import plotly.graph_objects as go

    return go.Figure(layout={"template": "plotly_white", "height": 300,
                             "margin": {"l": 50, "r": 20, "t": 20, "b": 40},
                             "yaxis_title": "share"})


def _section(number: int, test: FeatureDrift, figure: Any) -> str:
    div = figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"drift-plot-{number}")
    verdict = "drifted" if test.drifted else "no drift"
    return (f"<section><h2>{html.escape(test.feature)} <small>{test.test}, p = "
            f"{_number(test.p_value)}, PSI = {_number(test.psi)}: {verdict}</small></h2>"
            f"{div}</section>")


def _page(result: DriftResult, title: str, plotly_src: str, sections: str) -> str:
    flagged = sum(test.drifted for test in result.features)
    verdict = (f"{flagged} of {len(result.features)} features drifted "
               f"(share {result.drift_share:.0%}) in a window of {result.window} requests; "
               f"{result.correction} correction at p = {result.p_value:g}.")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<script src="{html.escape(plotly_src, quote=True)}"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
th, td {{ padding: 0.3rem 0.8rem; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.drifted td {{ background: #fde8e8; }}
h2 small {{ font-weight: normal; color: #666; font-size: 0.7em; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="verdict">{"Drift detected" if result.drifted else "No drift"}: {verdict}</p>
<h2>Features</h2>
{_table(result.features)}
<h2>Prediction drift</h2>
{_table(result.prediction)}
{sections}
</body>
</html>
"""


def _table(tests: tuple[FeatureDrift, ...]) -> str:
    head = ("<tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th>PSI</th>"
            "<th>missing (training → window)</th><th>drifted</th></tr>")
    rows = "".join(
        f'<tr class="{"drifted" if test.drifted else ""}"><td>{html.escape(test.feature)}</td>'
        f"<td>{test.test}</td><td>{_number(test.statistic)}</td><td>{_number(test.p_value)}</td>"
        f"<td>{_number(test.psi)}</td><td>{test.reference_missing_share:.1%} → "
        f"{test.missing_share:.1%}</td><td>{'yes' if test.drifted else 'no'}</td></tr>"
        for test in tests)
    return f"<table>{head}{rows}</table>"


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"

"""Drift: is recent traffic still drawn from the population the model was trained on?

One request cannot answer that; a KS test of a single value against the training set is
noise. So there are two checks, at two scales:

- per request, `DriftReference.outliers` names fields outside the training range or holding
  a category training never saw: cheap enough to run on every /predict;
- per window of recent predictions, `detect_drift` tests each raw input column against the
  training reference stored with the model (two-sample KS for numbers, chi-squared for
  categories, PSI beside each), corrects for testing several columns at once as Alibi
  Detect's KSDrift does, and tests the model's outputs separately (prediction drift).

`render_report` turns one result into a self-contained HTML page.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lifeboat.datasets import DatasetSpec

Correction = Literal["bonferroni", "fdr"]

REFERENCE_SAMPLE = 5_000  # KS power comes from the window's size; more reference adds little
PSI_EPSILON = 1e-4  # stands in for an empty bin's share, so PSI stays finite
OTHER = "(unseen)"  # one bucket for every category training never saw
PREDICTED_CLASS, PROBABILITY = "predicted class", "probability"
_PSI_QUANTILES = np.linspace(0.1, 0.9, 9)  # reference deciles: ten equally filled bins


def drift_columns(spec: DatasetSpec) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) raw input columns worth testing for drift.

    A column with an `allowed` list is categorical, whatever its type, and so is a text
    input the features one-hot encode (an open list such as an occupation: its categories
    are the training set's); other numbers are numeric. Free text (names, tickets, cabins)
    is left out: nearly every value is new, so it always looks drifted. The key, the target
    and leaks are not inputs at all.
    """
    encoded = set(spec.features.categorical)
    numeric, categorical = [], []
    for name in spec.input_columns:
        column = spec.input_fields[name]
        if column.allowed is not None or (column.type == "string" and name in encoded):
            categorical.append(name)
        elif column.type in ("integer", "float"):
            numeric.append(name)
    return numeric, categorical


@dataclass(frozen=True, eq=False)
class NumericReference:
    """One numeric column in training: a sample for KS, its range, its PSI bins."""

    sample: np.ndarray  # at most REFERENCE_SAMPLE non-missing values, sorted
    minimum: float  # of every training value, not just the sample: outliers need the range
    maximum: float
    edges: np.ndarray  # the distinct inner deciles; bins are right-closed
    shares: np.ndarray  # share of training values per bin (len(edges) + 1)
    missing_share: float

    @classmethod
    def of(cls, values: np.ndarray, missing_share: float,
           rng: np.random.Generator) -> NumericReference:
        sample = values if len(values) <= REFERENCE_SAMPLE else rng.choice(
            values, size=REFERENCE_SAMPLE, replace=False)
        edges = np.unique(np.quantile(values, _PSI_QUANTILES))
        return cls(np.sort(sample), float(values.min()), float(values.max()), edges,
                   _bin_shares(values, edges), missing_share)

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.sample.tolist(), "minimum": self.minimum,
                "maximum": self.maximum, "edges": self.edges.tolist(),
                "shares": self.shares.tolist(), "missing_share": self.missing_share}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        return cls(np.asarray(data["sample"], dtype=float), float(data["minimum"]),
                   float(data["maximum"]), np.asarray(data["edges"], dtype=float),
                   np.asarray(data["shares"], dtype=float), float(data["missing_share"]))


@dataclass(frozen=True)
class CategoricalReference:
    """One categorical column in training: how often each category appeared."""

    counts: dict[str, int]  # only categories seen in training, so every count is > 0
    missing_share: float

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "missing_share": self.missing_share}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        return cls({str(key): int(count) for key, count in data["counts"].items()},
                   float(data["missing_share"]))


@dataclass(frozen=True, eq=False)
class DriftReference:
    """What the training data looked like, stored with the model to test windows against."""

    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    probability: NumericReference  # the positive class's probability
    predicted_class: CategoricalReference
    rows: int
    threshold: float = 0.5  # the model's decision threshold: predicted classes are read at it

    @classmethod
    def from_training(cls, spec: DatasetSpec, frame: pd.DataFrame, probabilities: np.ndarray,
                      *, seed: int = 0, threshold: float = 0.5) -> DriftReference:
        """From the training rows' raw inputs (canonical column names) and the positive
        class's probability on each row.

        Prefer held-out or cross-validated probabilities: a model is more confident on the
        rows it was fit to, and the probability test would report that difference as drift.
        A column with no value in training is left out: there is nothing to compare with.
        """
        probabilities = _checked_probabilities(probabilities, len(frame))
        rng = np.random.default_rng(seed)
        numeric_names, categorical_names = drift_columns(spec)
        numeric = {}
        for name in numeric_names:
            values, missing_share = _numbers(frame, name)
            if len(values):
                numeric[name] = NumericReference.of(values, missing_share, rng)
        categorical = {}
        for name in categorical_names:
            counts, missing_share = _category_counts(frame, name)
            if counts:
                categorical[name] = CategoricalReference(counts, missing_share)
        return cls(numeric, categorical,
                   probability=NumericReference.of(probabilities, 0.0, rng),
                   predicted_class=CategoricalReference(
                       _class_counts(probabilities, threshold), 0.0),
                   rows=len(frame), threshold=threshold)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, for `drift_reference.json` beside the model."""
        return {
            "rows": self.rows,
            "numeric": {name: ref.to_dict() for name, ref in self.numeric.items()},
            "categorical": {name: ref.to_dict() for name, ref in self.categorical.items()},
            "probability": self.probability.to_dict(),
            "predicted_class": self.predicted_class.to_dict(),
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        return cls(
            numeric={name: NumericReference.from_dict(ref)
                     for name, ref in data["numeric"].items()},
            categorical={name: CategoricalReference.from_dict(ref)
                         for name, ref in data["categorical"].items()},
            probability=NumericReference.from_dict(data["probability"]),
            predicted_class=CategoricalReference.from_dict(data["predicted_class"]),
            rows=int(data["rows"]),
            threshold=float(data.get("threshold", 0.5)),
        )

    def outliers(self, record: Mapping[str, Any]) -> list[str]:
        """Fields of one request outside the training range, or holding a category training
        never saw; numeric fields first. A missing value is not an outlier: training had
        missing values too, and the window's missing share is reported with the drift."""
        flagged = []
        for name, (low, high) in self._ranges.items():
            value = record.get(name)
            if not _is_missing(value) and not _within(value, low, high):
                flagged.append(name)
        for name, seen in self._seen.items():
            value = record.get(name)
            if not _is_missing(value) and _category(value) not in seen:
                flagged.append(name)
        return flagged

    @cached_property
    def _ranges(self) -> dict[str, tuple[float, float]]:
        return {name: (ref.minimum, ref.maximum) for name, ref in self.numeric.items()}

    @cached_property
    def _seen(self) -> dict[str, frozenset[str]]:
        return {name: frozenset(ref.counts) for name, ref in self.categorical.items()}


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
    probabilities = _checked_probabilities(probabilities, len(current))
    features = [_numeric_test(name, ref, *_numbers(current, name))
                for name, ref in reference.numeric.items()]
    features += [_categorical_test(name, ref, *_category_counts(current, name))
                 for name, ref in reference.categorical.items()]
    prediction = [
        _categorical_test(PREDICTED_CLASS, reference.predicted_class,
                          _class_counts(probabilities, reference.threshold), 0.0),
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
        psi = _psi(ref.shares, _bin_shares(values, ref.edges))
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
    p_values = np.nan_to_num(np.array([test.p_value for test in tests]), nan=1.0)
    threshold = _threshold(p_values, p_value, correction)
    return tuple(replace(test, drifted=bool(p < threshold))
                 for test, p in zip(tests, p_values, strict=True))


def _threshold(p_values: np.ndarray, p_value: float, correction: Correction) -> float:
    """The per-test p-value threshold, as Alibi Detect computes it."""
    count = len(p_values)
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


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = np.searchsorted(edges, values, side="left")  # right-closed: (e[i-1], e[i]]
    return np.bincount(bins, minlength=len(edges) + 1) / len(values)


def _numbers(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, float]:
    """A column's values as floats, and its missing share (1 when the column is absent).
    Infinities count as missing: they have no place on a distribution to compare."""
    if name not in frame:
        return np.empty(0), 1.0
    values = frame[name].to_numpy(dtype=float, na_value=np.nan)
    present = values[np.isfinite(values)]
    return present, _missing_share(len(present), len(frame))


def _category_counts(frame: pd.DataFrame, name: str) -> tuple[dict[str, int], float]:
    """Count per category (as `_category` spells it), and the missing share.

    Counted in Python: for a window's few hundred values that is several times faster
    than pandas' value_counts, and a million training rows still take well under a second.
    """
    if name not in frame:
        return {}, 1.0
    counts: dict[str, int] = {}
    for value, count in Counter(frame[name].to_numpy(dtype=object)).items():
        if not _is_missing(value):
            category = _category(value)
            counts[category] = counts.get(category, 0) + count
    return counts, _missing_share(sum(counts.values()), len(frame))


def _missing_share(present: int, rows: int) -> float:
    return 1 - present / rows if rows else 0.0


def _class_counts(probabilities: np.ndarray, threshold: float) -> dict[str, int]:
    """Predicted class counts, classes labelled as serving labels them (0, 1)."""
    counts = np.bincount((probabilities >= threshold).astype(int), minlength=2)
    return {str(label): int(count) for label, count in enumerate(counts) if count}


def _checked_probabilities(probabilities: np.ndarray, rows: int) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (rows,):
        raise ValueError(f"need one probability (of the positive class) per row: {rows} rows, "
                         f"probabilities of shape {probabilities.shape}")
    return probabilities


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _within(value: Any, low: float, high: float) -> bool:
    """Whether a value reads as a number in [low, high]; one that does not is an outlier."""
    try:
        return low <= float(value) <= high
    except (TypeError, ValueError):
        return False


def _category(value: Any) -> str:
    """Category text as the reference counts it: 3, 3.0 and "3" are the same class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def render_report(result: DriftResult, reference: DriftReference, current: pd.DataFrame,
                  probabilities: np.ndarray, *, plotly_src: str, title: str) -> str:
    """One self-contained HTML page: a summary table, then the training and window
    distributions of every tested feature and of the model's outputs.

    `current` and `probabilities` are the window `result` was computed on. plotly.js is
    loaded from `plotly_src` (a URL the service serves), never from a CDN.
    """
    probabilities = _checked_probabilities(probabilities, len(current))
    figures = [(test, _feature_figure(test, reference, current)) for test in result.features]
    outputs = _prediction_figures(reference, probabilities)
    figures += [(test, outputs[test.feature]) for test in result.prediction]
    sections = "\n".join(_section(number, test, figure)
                         for number, (test, figure) in enumerate(figures))
    return _page(result, title, plotly_src, sections)


def _feature_figure(test: FeatureDrift, reference: DriftReference, current: pd.DataFrame) -> Any:
    if test.kind == "numeric":
        return _histogram(reference.numeric[test.feature].sample,
                          _numbers(current, test.feature)[0])
    return _bars(reference.categorical[test.feature].counts,
                 _category_counts(current, test.feature)[0])


def _prediction_figures(reference: DriftReference, probabilities: np.ndarray) -> dict[str, Any]:
    return {
        PREDICTED_CLASS: _bars(reference.predicted_class.counts,
                               _class_counts(probabilities, reference.threshold)),
        PROBABILITY: _histogram(reference.probability.sample, probabilities),
    }


def _histogram(reference_values: np.ndarray, window_values: np.ndarray) -> Any:
    """Training and window shares per bin, overlaid on the same bins."""
    edges = _plot_edges(np.concatenate([reference_values, window_values]))
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    figure = _figure()
    for name, values in (("training", reference_values), ("window", window_values)):
        counts = np.histogram(values, edges)[0]
        figure.add_bar(name=name, x=centres, y=counts / max(len(values), 1), width=widths,
                       opacity=0.55)
    figure.update_layout(barmode="overlay")
    return figure


def _plot_edges(values: np.ndarray) -> np.ndarray:
    """One bin per value for small whole numbers (sibsp, parch), else 30 equal bins."""
    if not len(values):
        return np.array([0.0, 1.0])
    low, high = values.min(), values.max()
    if np.all(values == np.round(values)) and high - low <= 40:
        return np.arange(low - 0.5, high + 1.5)
    return np.histogram_bin_edges(values, bins=30)


def _bars(reference_counts: dict[str, int], window_counts: dict[str, int]) -> Any:
    """Training and window shares per category, side by side; unseen ones pooled."""
    categories, reference_side, window_side = _aligned_counts(reference_counts, window_counts)
    figure = _figure()
    for name, counts in (("training", reference_side), ("window", window_side)):
        figure.add_bar(name=name, x=categories, y=counts / max(counts.sum(), 1))
    figure.update_layout(barmode="group", xaxis_type="category")
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

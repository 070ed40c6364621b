"""The training reference: what a model's training data looked like, saved with each
registered version (`drift_reference.json`).

Three stages read it and none owns it: training writes it, scoring flags a request's
outliers with it (`DriftReference.outliers`, on every /predict), and monitoring tests
windows of served predictions against it. It lives with the registry, which stores it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.datasets import DatasetSpec

REFERENCE_SAMPLE = 5_000  # KS power comes from the window's size; more reference adds little
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
                   bin_shares(values, edges), missing_share)

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
        probabilities = checked_probabilities(probabilities, len(frame))
        rng = np.random.default_rng(seed)
        numeric_names, categorical_names = drift_columns(spec)
        numeric = {}
        for name in numeric_names:
            values, missing_share = numbers_in(frame, name)
            if len(values):
                numeric[name] = NumericReference.of(values, missing_share, rng)
        categorical = {}
        for name in categorical_names:
            counts, missing_share = category_counts(frame, name)
            if counts:
                categorical[name] = CategoricalReference(counts, missing_share)
        return cls(numeric, categorical,
                   probability=NumericReference.of(probabilities, 0.0, rng),
                   predicted_class=CategoricalReference(
                       class_counts(probabilities, threshold), 0.0),
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


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = np.searchsorted(edges, values, side="left")  # right-closed: (e[i-1], e[i]]
    return np.bincount(bins, minlength=len(edges) + 1) / len(values)


def numbers_in(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, float]:
    """A column's values as floats, and its missing share (1 when the column is absent).
    Infinities count as missing: they have no place on a distribution to compare."""
    if name not in frame:
        return np.empty(0), 1.0
    values = frame[name].to_numpy(dtype=float, na_value=np.nan)
    present = values[np.isfinite(values)]
    return present, _missing_share(len(present), len(frame))


def category_counts(frame: pd.DataFrame, name: str) -> tuple[dict[str, int], float]:
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


def class_counts(probabilities: np.ndarray, threshold: float) -> dict[str, int]:
    """Predicted class counts, classes labelled as serving labels them (0, 1)."""
    counts = np.bincount((probabilities >= threshold).astype(int), minlength=2)
    return {str(label): int(count) for label, count in enumerate(counts) if count}


def checked_probabilities(probabilities: np.ndarray, rows: int) -> np.ndarray:
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

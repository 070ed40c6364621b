"""Titanic features, computed from raw passenger fields only.

Everything a user would otherwise type by hand (title, family size, deck, ...) is derived
here, so training and serving cannot disagree. Age is imputed from statistics learned in
`fit`, never from the rows being scored.
"""

from __future__ import annotations

import re

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

TITLES = {
    "Mr": "Mr", "Mrs": "Mrs", "Mme": "Mrs", "Miss": "Miss", "Mlle": "Miss", "Ms": "Miss",
    "Master": "Master",
}
_TITLE_PATTERN = re.compile(r",\s*([^.]+)\.")


def title_of(name: object) -> str:
    match = _TITLE_PATTERN.search(name) if isinstance(name, str) else None
    return TITLES.get(match.group(1).strip(), "Rare") if match else "Rare"


def deck_of(cabin: object) -> str:
    return cabin.strip()[0].upper() if isinstance(cabin, str) and cabin.strip() else "U"


class TitanicFeatures(TransformerMixin, BaseEstimator):
    """Raw passenger fields in, model features out (the spec lists which the model uses)."""

    def fit(self, raw: pd.DataFrame, y: object = None) -> TitanicFeatures:
        frame = self._base(raw)
        known = frame.dropna(subset=["age"])
        self.age_by_title_class_ = {  # nested, not tuple-keyed: skops can only save plain keys
            title: group.groupby("pclass")["age"].median().to_dict()
            for title, group in known.groupby("title")
        }
        self.age_by_title_ = known.groupby("title")["age"].median().to_dict()
        self.age_median_ = float(known["age"].median())
        self.fare_by_class_ = frame.groupby("pclass")["fare"].median().to_dict()
        self.fare_median_ = float(frame["fare"].median())
        return self

    def transform(self, raw: pd.DataFrame) -> pd.DataFrame:
        frame = self._base(raw)
        frame["age"] = frame["age"].fillna(self._learned_ages(frame))
        frame["fare"] = frame["fare"].fillna(
            frame["pclass"].map(self.fare_by_class_).astype(float).fillna(self.fare_median_)
        )
        frame["fare_per_person"] = frame["fare"] / frame["family_size"]
        frame["pclass_x_fare"] = frame["pclass"] * frame["fare"]
        frame["age_x_fare"] = frame["age"] * frame["fare"]
        return frame

    def _learned_ages(self, frame: pd.DataFrame) -> pd.Series:
        by_title_class = pd.Series(
            [self.age_by_title_class_.get(title, {}).get(pclass)
             for title, pclass in zip(frame["title"], frame["pclass"])],
            index=frame.index, dtype=float,
        )
        by_title = frame["title"].map(self.age_by_title_).astype(float)
        return by_title_class.fillna(by_title).fillna(self.age_median_)

    @staticmethod
    def _base(raw: pd.DataFrame) -> pd.DataFrame:
        """Record-local features: each row's values depend on that row alone."""
        frame = pd.DataFrame(index=raw.index)
        for column in ("pclass", "age", "sibsp", "parch", "fare"):
            frame[column] = pd.to_numeric(_column(raw, column), errors="coerce").astype(float)
        frame["sibsp"] = frame["sibsp"].fillna(0.0)
        frame["parch"] = frame["parch"].fillna(0.0)
        frame["sex"] = _column(raw, "sex")
        frame["embarked"] = _column(raw, "embarked")
        frame["title"] = _column(raw, "name").map(title_of).astype(object)
        cabin = _column(raw, "cabin")
        frame["has_cabin"] = cabin.map(lambda c: float(isinstance(c, str) and bool(c.strip())))
        frame["deck"] = cabin.map(deck_of).astype(object)
        frame["family_size"] = frame["sibsp"] + frame["parch"] + 1.0
        frame["is_alone"] = (frame["family_size"] == 1.0).astype(float)
        return frame


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    """A raw column, or all-missing when the caller left that field out."""
    return raw[name].astype(object) if name in raw else pd.Series(None, index=raw.index, dtype=object)

"""The Titanic model's learned features, on top of the `passenger_profile` view.

Age is imputed from statistics learned in `fit`, never from the rows being scored. Travel
groups (a shared ticket, or a surname and fare) are looked up in what `fit` learned about
the training passengers: how many of them are in the group and how many survived. A
passenger's own fate is never part of their group's figures, in training or when serving
a passenger the model has seen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

GROUPS = ("ticket", "family")
UNKNOWN_FATE = 0.5  # a group with no known companion is a coin flip


class TitanicFeatures(TransformerMixin, BaseEstimator):
    """Feature-view rows in, model features out (the spec lists which the model uses)."""

    def fit(self, profile: pd.DataFrame, y: object = None) -> TitanicFeatures:
        frame = profile.copy()
        known = frame.dropna(subset=["age"])
        self.age_by_title_class_ = {  # nested, not tuple-keyed: skops can only save plain keys
            title: group.groupby("pclass")["age"].median().to_dict()
            for title, group in known.groupby("title")
        }
        self.age_by_title_ = known.groupby("title")["age"].median().to_dict()
        self.age_median_ = float(known["age"].median())
        self.fare_by_class_ = frame.groupby("pclass")["fare"].median().to_dict()
        self.fare_median_ = float(frame["fare"].median())
        self.fates_ = {} if y is None else self._fates(frame, np.asarray(y))
        return self

    def transform(self, profile: pd.DataFrame) -> pd.DataFrame:
        frame = profile.copy()
        frame["age"] = frame["age"].fillna(self._learned_ages(frame))
        frame["fare"] = frame["fare"].fillna(
            frame["pclass"].map(self.fare_by_class_).astype(float).fillna(self.fare_median_)
        )
        frame["fare_per_person"] = frame["fare"] / frame["family_size"]
        frame["pclass_x_fare"] = frame["pclass"] * frame["fare"]
        frame["age_x_fare"] = frame["age"] * frame["fare"]
        for group in GROUPS:
            self._add_group_features(frame, group)
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
    def _fates(frame: pd.DataFrame, labels: np.ndarray) -> dict[str, dict[str, dict[str, int]]]:
        """Each training group's members by name with their label, so one can be left out.

        Women and children get their own table: within a group they mostly lived or died
        together, so their fates are the strongest hint about each other.
        """
        women_children = frame["woman_or_child"].to_numpy() == 1.0
        fates = {}
        for group in GROUPS:
            keys = frame[f"{group}_group"]
            fates[group] = _fates_by_group(keys, frame["member"], labels)
            fates[f"{group}_women_children"] = _fates_by_group(
                keys[women_children], frame["member"][women_children], labels[women_children]
            )
        return fates

    def _add_group_features(self, frame: pd.DataFrame, group: str) -> None:
        keys, members = frame[f"{group}_group"], frame["member"]
        companions, survival = _companions(keys, members, self.fates_.get(group, {}))
        frame[f"{group}_companions"] = companions
        frame[f"{group}_survival"] = survival
        frame[f"{group}_women_children_survival"] = _companions(
            keys, members, self.fates_.get(f"{group}_women_children", {})
        )[1]


def _fates_by_group(keys: pd.Series, members: pd.Series,
                    labels: np.ndarray) -> dict[str, dict[str, int]]:
    fates: dict[str, dict[str, int]] = {}
    for key, member, label in zip(keys, members, labels):
        if isinstance(key, str):
            fates.setdefault(key, {})[member] = int(label)
    return fates


def _companions(keys: pd.Series, members: pd.Series,
                fates: dict[str, dict[str, int]]) -> tuple[pd.Series, pd.Series]:
    """Known companions per row and the share who survived (a coin flip when none is known).

    The row's own name is left out, so a passenger seen in training is judged by the others.
    """
    counts, shares = [], []
    for key, member in zip(keys, members):
        others = [label for name, label in fates.get(key, {}).items() if name != member]
        counts.append(float(len(others)))
        shares.append(sum(others) / len(others) if others else UNKNOWN_FATE)
    return pd.Series(counts, index=keys.index), pd.Series(shares, index=keys.index)

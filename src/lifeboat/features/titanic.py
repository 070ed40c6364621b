"""Titanic features, computed from raw passenger fields only.

Everything a user would otherwise type by hand (title, family size, deck, ...) is derived
here, so training and serving cannot disagree. Age is imputed from statistics learned in
`fit`, never from the rows being scored. Travel groups (a shared ticket, or a surname and
fare) are looked up in what `fit` learned about the training passengers: how many of them
are in the group and how many survived. A passenger's own fate is never part of their
group's figures, in training or when serving a passenger the model has seen.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

TITLES = {
    "Mr": "Mr", "Mrs": "Mrs", "Mme": "Mrs", "Miss": "Miss", "Mlle": "Miss", "Ms": "Miss",
    "Master": "Master",
}
GROUPS = ("ticket", "family")
_TITLE_PATTERN = re.compile(r",\s*([^.]+)\.")
_UNKNOWN_FATE = 0.5


def title_of(name: object) -> str:
    match = _TITLE_PATTERN.search(name) if isinstance(name, str) else None
    return TITLES.get(match.group(1).strip(), "Rare") if match else "Rare"


def deck_of(cabin: object) -> str:
    return cabin.strip()[0].upper() if isinstance(cabin, str) and cabin.strip() else "U"


def sex_class_of(sex: object, pclass: float) -> str | float:
    """Sex within class: a linear model cannot form this interaction from the two alone."""
    return f"{sex}_{pclass:.0f}" if isinstance(sex, str) and pd.notna(pclass) else np.nan


def ticket_of(ticket: object) -> str | None:
    return ticket.strip().upper() if isinstance(ticket, str) and ticket.strip() else None


def member_of(name: object) -> str:
    """Who a passenger is within their group: the entity key also rests on name and ticket."""
    return name.strip() if isinstance(name, str) else ""


def family_of(name: object, fare: float) -> str | None:
    """Surname and fare: relatives on one booking share both, even when tickets differ."""
    if not isinstance(name, str) or "," not in name or pd.isna(fare):
        return None
    return f"{name.split(',')[0].strip().lower()}|{fare:.2f}"


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
        self.fates_ = {} if y is None else self._fates(frame, np.asarray(y))
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
        women_children = frame["woman_or_child"].to_numpy()
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
        names = _column(raw, "name")
        frame["title"] = names.map(title_of).astype(object)
        frame["sex_class"] = [sex_class_of(s, p) for s, p in zip(frame["sex"], frame["pclass"])]
        cabin = _column(raw, "cabin")
        frame["has_cabin"] = cabin.map(lambda c: float(isinstance(c, str) and bool(c.strip())))
        frame["deck"] = cabin.map(deck_of).astype(object)
        frame["family_size"] = frame["sibsp"] + frame["parch"] + 1.0
        frame["is_alone"] = (frame["family_size"] == 1.0).astype(float)
        frame["member"] = names.map(member_of).astype(object)
        frame["ticket_group"] = _column(raw, "ticket").map(ticket_of).astype(object)
        frame["family_group"] = pd.Series(
            [family_of(n, f) for n, f in zip(names, frame["fare"])], index=raw.index, dtype=object
        )
        frame["woman_or_child"] = (frame["sex"] == "female") | (frame["title"] == "Master")
        return frame


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
        shares.append(sum(others) / len(others) if others else _UNKNOWN_FATE)
    return pd.Series(counts, index=keys.index), pd.Series(shares, index=keys.index)


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    """A raw column, or all-missing when the caller left that field out."""
    return raw[name].astype(object) if name in raw else pd.Series(None, index=raw.index, dtype=object)

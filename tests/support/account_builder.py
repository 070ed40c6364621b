"""A feature builder of one's own, in one module, for the churn example's accounts: what
tests/test_feature_builders.py names as `account_builder:BUILDER`, as a user's spec would.

The whole module is the view's definition (its source is the view's version): the view,
`account_profile`, adds calls per year of tenure and a tenure band to the account's fields;
the learned layer, `PlanRates`, adds each plan's churn rate in training. Both are replayed
without pandas, row by row and column-wise, and the layer saves and loads as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from lifeboat.features import FeatureBuilder, LearnedLayer
from lifeboat.features.replay import (
    Columns,
    Record,
    Row,
    as_number,
    as_text,
    each_distinct,
    first_known,
    number_column,
    plain,
    ratio,
    text_column,
    unplain,
)

PROFILE_COLUMNS = {
    "plan": "string", "tenure_months": "float", "monthly_fee": "float",
    "support_calls": "float", "calls_per_year": "float", "tenure_band": "string",
}


def tenure_band(months: float) -> str | float:
    if np.isnan(months):
        return np.nan
    return "new" if months < 6 else "settled" if months < 24 else "loyal"


def account_profile(raw: pd.DataFrame) -> pd.DataFrame:
    """The feature view: typed raw fields in, one row of account features per row."""
    frame = raw[["plan", "tenure_months", "monthly_fee", "support_calls"]].copy()
    frame["calls_per_year"] = frame["support_calls"] * 12.0 / (frame["tenure_months"] + 1.0)
    frame["tenure_band"] = frame["tenure_months"].map(tenure_band).astype(object)
    return frame[list(PROFILE_COLUMNS)]


class PlanRates(TransformerMixin, BaseEstimator):
    """Each plan's churn rate in training; the overall rate for a plan training never saw."""

    def fit(self, profile: pd.DataFrame, y: object = None) -> PlanRates:
        labels = pd.Series(np.asarray(y, dtype=float), index=profile.index)
        self.rate_by_plan_ = labels.groupby(profile["plan"]).mean().to_dict()
        self.rate_ = float(labels.mean())
        return self

    def transform(self, profile: pd.DataFrame) -> pd.DataFrame:
        frame = profile.copy()
        frame["plan_rate"] = frame["plan"].map(self.rate_by_plan_).astype(float).fillna(self.rate_)
        return frame


class ProfileReplay:
    """`account_profile` without pandas."""

    @staticmethod
    def row(record: Record) -> Row:
        tenure, fee, calls = (as_number(record.get(name))
                              for name in ("tenure_months", "monthly_fee", "support_calls"))
        return {"plan": as_text(record.get("plan")), "tenure_months": tenure, "monthly_fee": fee,
                "support_calls": calls, "calls_per_year": ratio(calls * 12.0, tenure + 1.0),
                "tenure_band": as_text(tenure_band(tenure))}

    @staticmethod
    def columns(raw: Mapping[str, Any]) -> Columns:
        tenure, fee, calls = (number_column(raw[name])
                              for name in ("tenure_months", "monthly_fee", "support_calls"))
        with np.errstate(divide="ignore", invalid="ignore"):
            per_year = calls * 12.0 / (tenure + 1.0)
        return {"plan": text_column(raw["plan"]), "tenure_months": tenure, "monthly_fee": fee,
                "support_calls": calls, "calls_per_year": per_year,
                "tenure_band": each_distinct(tenure_band, tenure)}


class PlanRatesReplay:
    """`PlanRates.transform` from the fitted layer's rates."""

    def __init__(self, fitted: PlanRates) -> None:
        self.rates, self.rate = fitted.rate_by_plan_, fitted.rate_

    def transform(self, row: Row) -> Row:
        return {**row, "plan_rate": self._rate(row["plan"])}

    def columns(self, profile: Mapping[str, Any]) -> Columns:
        rates = each_distinct(self._rate, text_column(profile["plan"])).astype(np.float64)
        return {**{name: profile[name] for name in profile}, "plan_rate": rates}

    def learned(self) -> dict[str, Any]:
        return {"rate_by_plan_": plain(self.rates), "rate_": self.rate}

    @classmethod
    def from_learned(cls, learned: Mapping[str, Any]) -> PlanRatesReplay:
        fitted = PlanRates()
        fitted.rate_by_plan_, fitted.rate_ = unplain(learned["rate_by_plan_"]), learned["rate_"]
        return cls(fitted)

    def _rate(self, plan: object) -> float:
        return first_known(self.rates.get(plan), self.rate)


BUILDER = FeatureBuilder(
    view=account_profile,
    columns=lambda _spec: PROFILE_COLUMNS,
    replay=lambda _view: ProfileReplay(),
    learned=LearnedLayer(PlanRates, PlanRatesReplay),
)

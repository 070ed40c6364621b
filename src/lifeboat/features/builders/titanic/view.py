"""The Titanic feature view, `passenger_profile`: record-local features of one passenger.

Each row's values depend on that passenger's own fields alone (title, family size, deck,
travel-group keys, ...), so the view can be materialized once, stored offline and online,
and looked up by passenger id. The view's version is a hash of this module's source: any
change here makes a new version, which the stores and the models trained on it can tell.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

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


# The view's columns and their types, in the order vectors are stored.
PROFILE_COLUMNS = {
    "pclass": "float", "age": "float", "sibsp": "float", "parch": "float", "fare": "float",
    "sex": "string", "embarked": "string", "title": "string", "sex_class": "string",
    "has_cabin": "float", "deck": "string", "family_size": "float", "is_alone": "float",
    "member": "string", "ticket_group": "string", "family_group": "string",
    "woman_or_child": "float",
}


def passenger_profile(raw: pd.DataFrame) -> pd.DataFrame:
    """The feature view: typed raw fields in, record-local features out, one row per row."""
    frame = pd.DataFrame(index=raw.index)
    for column in ("pclass", "age", "sibsp", "parch", "fare"):
        frame[column] = pd.to_numeric(_column(raw, column), errors="coerce").astype(float)
    frame["sibsp"] = frame["sibsp"].fillna(0.0)
    frame["parch"] = frame["parch"].fillna(0.0)
    frame["sex"] = _column(raw, "sex")
    frame["embarked"] = _column(raw, "embarked")
    names = _column(raw, "name")
    frame["title"] = names.map(title_of).astype(object)
    frame["sex_class"] = pd.Series([sex_class_of(s, p) for s, p in zip(frame["sex"], frame["pclass"])],
                                   index=raw.index, dtype=object)
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
    frame["woman_or_child"] = ((frame["sex"] == "female") | (frame["title"] == "Master")).astype(float)
    return frame[list(PROFILE_COLUMNS)]


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    """A raw column, or all-missing when the caller left that field out."""
    return raw[name].astype(object) if name in raw else pd.Series(None, index=raw.index, dtype=object)

"""The `titanic` builder replayed without pandas, for the compiled scorer.

The view, `passenger_profile`, is composed from the view module's own helpers (`title_of`,
`deck_of`, ...), so a definition still lives in one place: row by row for a request, and
column-wise for large batches, where a helper is applied once per distinct value or
replaced by Arrow string kernels where they provably agree with it (ASCII text), with the
helper itself for any other row. The learned layer, `TitanicFeatures`, is replayed from
its fitted state: imputed ages and fares, and travel-group figures.
tests/scoring/test_compiled_scorer.py holds every path to the pandas pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lifeboat.features.builders.titanic.layer import GROUPS, UNKNOWN_FATE, TitanicFeatures
from lifeboat.features.builders.titanic.view import (
    TITLES,
    deck_of,
    family_of,
    member_of,
    sex_class_of,
    ticket_of,
    title_of,
)
from lifeboat.features.replay import (
    ASCII_SPACE,
    Columns,
    Record,
    Row,
    Text,
    as_number,
    as_text,
    ascii_rows,
    by_helper,
    each_distinct,
    equals,
    first_known,
    is_missing,
    nan_for_none,
    number_column,
    plain,
    positions,
    ratio,
    text_column,
    unplain,
    values_at,
)


def passenger_profile_row(record: Record) -> Row:
    """`view.passenger_profile` for one raw record, built from the same helpers."""
    pclass, age, sibsp, parch, fare = (as_number(record.get(column))
                                       for column in ("pclass", "age", "sibsp", "parch", "fare"))
    sibsp = 0.0 if math.isnan(sibsp) else sibsp
    parch = 0.0 if math.isnan(parch) else parch
    name, sex = as_text(record.get("name")), as_text(record.get("sex"))
    cabin = as_text(record.get("cabin"))
    title = title_of(name)
    family_size = sibsp + parch + 1.0
    return {
        "pclass": pclass, "age": age, "sibsp": sibsp, "parch": parch, "fare": fare,
        "sex": sex, "embarked": as_text(record.get("embarked")), "title": title,
        "sex_class": as_text(sex_class_of(sex, pclass)),
        "has_cabin": float(isinstance(cabin, str) and bool(cabin.strip())),
        "deck": deck_of(cabin), "family_size": family_size, "is_alone": float(family_size == 1.0),
        "member": member_of(name), "ticket_group": ticket_of(as_text(record.get("ticket"))),
        "family_group": family_of(name, fare),
        "woman_or_child": float(sex == "female" or title == "Master"),
    }


def passenger_profile_columns(raw: Mapping[str, Any]) -> Columns:
    """`view.passenger_profile` column-wise, for a `raw_frame` or for typed columns
    (float64 numbers, Arrow strings with null for missing, as batch scoring reads a file).

    Floats come out as float64 arrays. A text column stays in Arrow when all its values are
    text or missing, so no Python string is made per row; one holding anything else is an
    object array with NaN for missing (as `FeatureView.typed` has it), judged by the view's
    helpers value by value."""
    pclass, age, sibsp, parch, fare = (number_column(raw[column])
                                       for column in ("pclass", "age", "sibsp", "parch", "fare"))
    sibsp, parch = np.nan_to_num(sibsp, nan=0.0), np.nan_to_num(parch, nan=0.0)
    names, sex, cabin = (text_column(raw[column]) for column in ("name", "sex", "cabin"))
    title = _titles(names)
    family_size = sibsp + parch + 1.0
    return {
        "pclass": pclass, "age": age, "sibsp": sibsp, "parch": parch, "fare": fare,
        "sex": sex, "embarked": text_column(raw["embarked"]), "title": title,
        "sex_class": each_distinct(lambda s, p: as_text(sex_class_of(s, p)), sex, pclass),
        "has_cabin": each_distinct(lambda c: float(isinstance(c, str) and bool(c.strip())),
                                   cabin).astype(np.float64),
        "deck": each_distinct(deck_of, cabin), "family_size": family_size,
        "is_alone": (family_size == 1.0).astype(np.float64),
        "member": _members(names), "ticket_group": _tickets(text_column(raw["ticket"])),
        "family_group": _families(names, fare),
        "woman_or_child": (equals(sex, "female") | (title == "Master")).astype(np.float64),
    }


def _titles(names: Text) -> np.ndarray:
    """`title_of` per name. The view's pattern `,\\s*([^.]+)\\.` matches where `,([^.]+)\\.`
    does, and its title stripped is this one's group stripped; a group that is not exactly
    a known title after removing ASCII spaces goes to `title_of` itself."""
    if not isinstance(names, pa.Array):
        return np.array([title_of(name) for name in names.tolist()], dtype=object)
    groups = pc.utf8_trim(pc.extract_regex(names, r",(?P<title>[^.]+)\.").field("title"),
                          ASCII_SPACE)
    known = list(TITLES)
    position = pc.fill_null(pc.index_in(groups, value_set=pa.array(known)), -1).to_numpy(
        zero_copy_only=False)
    titles = np.array([TITLES[k] for k in known] + ["Rare"], dtype=object)[position]
    others = np.flatnonzero(position < 0)
    if len(others):
        titles[others] = [title_of(name) for name in names.take(others).to_pylist()]
    return titles


def _members(names: Text) -> Text:
    """`member_of` per name: ASCII names trimmed in Arrow, any other through `member_of`."""
    if not isinstance(names, pa.Array):
        return np.array([member_of(name) for name in names.tolist()], dtype=object)
    members = pc.fill_null(pc.utf8_trim(names, ASCII_SPACE), "")
    return by_helper(members, ~ascii_rows(names) & _present(names), member_of, names)


def _tickets(tickets: Text) -> Text:
    """`ticket_of` per ticket: ASCII ones trimmed and upper-cased in Arrow, others by itself."""
    if not isinstance(tickets, pa.Array):
        return nan_for_none(np.array([ticket_of(t) for t in tickets.tolist()], dtype=object))
    trimmed = pc.utf8_trim(tickets, ASCII_SPACE)
    groups = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()),
                        pc.ascii_upper(trimmed))
    return by_helper(groups, ~ascii_rows(tickets) & _present(tickets), ticket_of, tickets)


def _families(names: Text, fares: np.ndarray) -> Text:
    """`family_of` per row: ASCII names in Arrow, any other through `family_of` itself."""
    if not isinstance(names, pa.Array):
        return nan_for_none(np.array([as_text(family_of(name, fare)) for name, fare
                                      in zip(names.tolist(), fares.tolist(), strict=True)],
                                     dtype=object))
    ascii_ = ascii_rows(names)
    has_comma = pc.fill_null(pc.match_substring(names, ","), False).to_numpy(zero_copy_only=False)
    surnames = pc.ascii_lower(pc.utf8_trim(
        pc.list_element(pc.split_pattern(names, ",", max_splits=1), 0), ASCII_SPACE))
    keys = pc.binary_join_element_wise(surnames, _money(fares), "|")
    keys = pc.if_else(pa.array(ascii_ & has_comma & ~np.isnan(fares)), keys,
                      pa.scalar(None, pa.string()))
    return by_helper(keys, ~ascii_ & _present(names), family_of, names, fares)


def _present(text: pa.Array) -> np.ndarray:
    return text.is_valid().to_numpy(zero_copy_only=False)


def _money(amounts: np.ndarray) -> pa.Array:
    """`f"{amount:.2f}"` per amount, null for NaN, without a Python call per value.

    In a long double with a 64-bit (or longer) mantissa, amount × 100 is exact (53 + 7 bits),
    so rounding it half to even is Python's correctly rounded format, whose digits are then
    cents; amounts of 1e15 or more, and infinities, are left to Python. Where long double is
    plain double (some platforms) every distinct amount is formatted by Python."""
    if np.finfo(np.longdouble).nmant < 60:
        return pa.array(each_distinct(lambda f: f"{f:.2f}" if not is_missing(f) else None,
                                      amounts), pa.string(), from_pandas=True)
    small = np.abs(amounts) < 1e15  # False for NaN and infinities
    cents = np.abs(np.rint(np.where(small, amounts, 0.0).astype(np.longdouble) * 100)).astype(
        np.int64)
    sign = pc.if_else(pa.array(np.signbit(amounts)), "-", "")
    fraction = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0")
    text = pc.binary_join_element_wise(sign, pc.cast(pa.array(cents // 100), pa.string()), ".",
                                       fraction, "")
    missing = np.isnan(amounts)
    text = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)
    return by_helper(text, ~small & ~missing, lambda f: f"{f:.2f}", amounts)


@dataclass(frozen=True)
class _Group:
    """One travel-group table of `TitanicFeatures.fates_`, with each group's survivors summed
    once, so leaving a passenger out is a subtraction instead of a scan of the group."""

    fates: Mapping[str, Mapping[str, int]]
    survivors: Mapping[str, int]

    @classmethod
    def of(cls, fates: Mapping[str, Mapping[str, int]]) -> _Group:
        return cls(fates, {key: sum(members.values()) for key, members in fates.items()})

    def companions(self, key: object, member: str) -> tuple[float, float]:
        members = self.fates.get(key) if isinstance(key, str) else None
        if not members:
            return 0.0, UNKNOWN_FATE
        own = members.get(member)
        count = len(members) - (own is not None)
        survived = self.survivors[key] - (own or 0)
        return float(count), survived / count if count else UNKNOWN_FATE

    @cached_property
    def _table(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        keys = [key for key, members in self.fates.items() if members]
        return (keys, np.array([len(self.fates[key]) for key in keys], dtype=np.int64),
                np.array([self.survivors[key] for key in keys], dtype=np.int64))

    def columns(self, keys: Text | pd.Series,
                members: Text | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """`companions` per row: the group's figures by one index lookup, then the row's own
        member taken out where the row's group is a known one."""
        known_keys, sizes, survivors = self._table
        count = np.zeros(len(keys), dtype=np.int64)
        survived = np.zeros(len(keys), dtype=np.int64)
        if known_keys:
            position = positions(known_keys, keys)
            known = np.flatnonzero(position >= 0)
            count[known] = sizes[position[known]]
            survived[known] = survivors[position[known]]
            for row, key, member in zip(known.tolist(), values_at(keys, known),
                                        values_at(members, known), strict=True):
                own = self.fates[key].get(member)
                if own is not None:
                    count[row] -= 1
                    survived[row] -= own
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(count > 0, survived / np.maximum(count, 1), UNKNOWN_FATE)
        return count.astype(np.float64), share


class TitanicLayer:
    """`TitanicFeatures.transform` for one profile row, from the fitted transformer's state."""

    # What `TitanicFeatures.fit` learns: all the layer reads of it.
    LEARNED = ("age_by_title_class_", "age_by_title_", "age_median_", "fare_by_class_",
               "fare_median_", "fates_")

    def __init__(self, fitted: TitanicFeatures) -> None:
        self.fitted = fitted
        fates = fitted.fates_
        self.groups = {name: _Group.of(fates.get(name, {}))
                       for group in GROUPS for name in (group, f"{group}_women_children")}

    def transform(self, row: Row) -> Row:
        fitted = self.fitted
        age = row["age"] if not math.isnan(row["age"]) else self._learned_age(row)
        fare = row["fare"]
        if math.isnan(fare):
            fare = first_known(fitted.fare_by_class_.get(row["pclass"]), fitted.fare_median_)
        out = {**row, "age": age, "fare": fare,
               "fare_per_person": ratio(fare, row["family_size"]),
               "pclass_x_fare": row["pclass"] * fare, "age_x_fare": age * fare}
        for group in GROUPS:
            key, member = row[f"{group}_group"], row["member"]
            out[f"{group}_companions"], out[f"{group}_survival"] = (
                self.groups[group].companions(key, member))
            out[f"{group}_women_children_survival"] = (
                self.groups[f"{group}_women_children"].companions(key, member)[1])
        return out

    def columns(self, profile: Mapping[str, Any]) -> Columns:
        """`transform` column-wise: view columns in (arrays, or a typed view frame), the
        columns `preprocess` reads out."""
        fitted = self.fitted
        pclass, age, fare, family_size = (np.asarray(profile[column], dtype=np.float64)
                                          for column in ("pclass", "age", "fare", "family_size"))
        title = np.asarray(profile["title"], dtype=object)
        missing = np.isnan(age)
        if missing.any():
            age = age.copy()
            age[missing] = each_distinct(
                lambda t, p: self._learned_age({"title": t, "pclass": p}),
                title[missing], pclass[missing]).astype(np.float64)
        missing = np.isnan(fare)
        if missing.any():
            fare = fare.copy()
            fare[missing] = each_distinct(
                lambda p: first_known(fitted.fare_by_class_.get(p), fitted.fare_median_),
                pclass[missing]).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {**{name: profile[name] for name in profile}, "age": age, "fare": fare,
                   "fare_per_person": fare / family_size, "pclass_x_fare": pclass * fare,
                   "age_x_fare": age * fare}
        members = profile["member"]
        for group in GROUPS:
            keys = profile[f"{group}_group"]
            out[f"{group}_companions"], out[f"{group}_survival"] = (
                self.groups[group].columns(keys, members))
            out[f"{group}_women_children_survival"] = (
                self.groups[f"{group}_women_children"].columns(keys, members)[1])
        return out

    def learned(self) -> dict[str, Any]:
        return {name: plain(getattr(self.fitted, name)) for name in self.LEARNED}

    @classmethod
    def from_learned(cls, learned: Mapping[str, Any]) -> TitanicLayer:
        fitted = TitanicFeatures()
        for name in cls.LEARNED:
            setattr(fitted, name, unplain(learned[name]))
        return cls(fitted)

    def _learned_age(self, row: Mapping[str, Any]) -> float:
        fitted, title = self.fitted, row["title"]
        return first_known(fitted.age_by_title_class_.get(title, {}).get(row["pclass"]),
                           fitted.age_by_title_.get(title), fitted.age_median_)


class PassengerProfile:
    """The `titanic` builder's view, `view.passenger_profile`, replayed."""

    row = staticmethod(passenger_profile_row)
    columns = staticmethod(passenger_profile_columns)


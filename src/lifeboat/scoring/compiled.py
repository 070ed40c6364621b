"""The compiled scorer: a loaded model compiled once into plain Python, NumPy and ONNX Runtime.

Scoring one record through the pandas pipeline costs milliseconds of fixed overhead (frames
built, columns typed, estimators validating their input) for microseconds of arithmetic.
`compile_model` reads the fitted pipeline's learned attributes once, when the model is
loaded, and replays them without pandas:

- the feature view per record (a `ViewReplay`): Titanic's passenger profile composed from
  the view module's own helpers (`title_of`, `deck_of`, ...), so a definition still lives in
  one place; the generic `columns` builder's view, the spec's feature columns typed as
  `raw_frame` and `FeatureView.typed` type them (`TypedColumns`);
- the learned layer between view and `preprocess` (a `Layer`): `TitanicFeatures`' imputed
  ages and fares and travel-group figures, or nothing at all for `columns` (`IdentityLayer`);
- `preprocess` (imputers, scaler, one-hot encoder) as NumPy arithmetic on its fitted
  statistics, in float64 as scikit-learn computes it;
- the classifier in ONNX Runtime, converted by skl2onnx (one it cannot convert runs in
  scikit-learn itself, on the same encoded matrix: `compiled_classifier`).

Large batches (and data frames) run the view, the learned layer and `preprocess` column-wise
in NumPy and Arrow (`ViewReplay.columns`, `Layer.columns`, `Encoder.frame`):
a helper of the view is applied once per distinct value, or replaced by Arrow string kernels
where they provably agree with it (ASCII text), with the helper itself for any other row.
Batch scoring hands over its typed Arrow columns as they are (`view_columns`), and logs the
view it gets back. The pandas pipeline stays the reference:
tests/scoring/test_compiled_scorer.py (Titanic) and
tests/scoring/test_compiled_columns_view.py (`columns`) hold every path to it.

A compiled scorer with an ONNX classifier can be saved (`save_scorer`: what it learned as
JSON, the classifier as ONNX) and loaded without the pipeline or scikit-learn's model
classes (`load_scorer`); training saves one beside each model, and batch scoring loads it.
"""

from __future__ import annotations

import json
import logging
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lifeboat.datasets import DatasetSpec
from lifeboat.features import FeatureView
from lifeboat.features.columns_view import spec_columns
from lifeboat.features.frames import raw_frame
from lifeboat.features.titanic import GROUPS, TitanicFeatures
from lifeboat.features.titanic_view import (
    TITLES,
    deck_of,
    family_of,
    member_of,
    passenger_profile,
    sex_class_of,
    ticket_of,
    title_of,
)
from lifeboat.features.views import ColumnKind, Compute

log = logging.getLogger(__name__)

# From this many records on, pandas' per-column work beats a Python loop per record.
VECTORISED_FROM = 4000
_UNKNOWN_FATE = 0.5  # as TitanicFeatures: a group with no known companion is a coin flip
_PAIRS = "pairs"  # a saved mapping whose keys are not text, as its [key, value] pairs
_ONNX_TYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32}
# A saved scorer: what the model learned, as JSON, and its classifier in ONNX.
SCORER_FILE, CLASSIFIER_FILE = "scorer.json", "classifier.onnx"

Record = Mapping[str, Any]
Row = dict[str, Any]


class UnsupportedModel(Exception):
    """The model has a step the compiled scorer cannot replay exactly; serve it with pandas."""


def _number(value: object) -> float:
    """A raw value as `pd.to_numeric(errors="coerce")` reads it: NaN when it is no number."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: object) -> object:
    """None for a missing text value, as the view's helpers read NaN."""
    return None if _missing(value) else value


def _ratio(numerator: float, denominator: float) -> float:
    """IEEE division as pandas divides columns: x/0 is ±inf and 0/0 NaN, never an error."""
    if denominator:
        return numerator / denominator
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(numerator) / denominator)


def passenger_profile_row(record: Record) -> Row:
    """`titanic_view.passenger_profile` for one raw record, built from the same helpers."""
    pclass, age, sibsp, parch, fare = (_number(record.get(column))
                                       for column in ("pclass", "age", "sibsp", "parch", "fare"))
    sibsp = 0.0 if math.isnan(sibsp) else sibsp
    parch = 0.0 if math.isnan(parch) else parch
    name, sex = _text(record.get("name")), _text(record.get("sex"))
    cabin = _text(record.get("cabin"))
    title = title_of(name)
    family_size = sibsp + parch + 1.0
    return {
        "pclass": pclass, "age": age, "sibsp": sibsp, "parch": parch, "fare": fare,
        "sex": sex, "embarked": _text(record.get("embarked")), "title": title,
        "sex_class": _text(sex_class_of(sex, pclass)),
        "has_cabin": float(isinstance(cabin, str) and bool(cabin.strip())),
        "deck": deck_of(cabin), "family_size": family_size, "is_alone": float(family_size == 1.0),
        "member": member_of(name), "ticket_group": ticket_of(_text(record.get("ticket"))),
        "family_group": family_of(name, fare),
        "woman_or_child": float(sex == "female" or title == "Master"),
    }


Columns = dict[str, Any]
Text = pa.Array | np.ndarray  # Arrow strings (null for missing), or objects with NaN for missing
_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip removes from ASCII text


def passenger_profile_columns(raw: Mapping[str, Any]) -> Columns:
    """`titanic_view.passenger_profile` column-wise, for a `raw_frame` or for typed columns
    (float64 numbers, Arrow strings with null for missing, as batch scoring reads a file).

    Floats come out as float64 arrays. A text column stays in Arrow when all its values are
    text or missing, so no Python string is made per row; one holding anything else is an
    object array with NaN for missing (as `FeatureView.typed` has it), judged by the view's
    helpers value by value."""
    pclass, age, sibsp, parch, fare = (_floats(raw[column])
                                       for column in ("pclass", "age", "sibsp", "parch", "fare"))
    sibsp, parch = np.nan_to_num(sibsp, nan=0.0), np.nan_to_num(parch, nan=0.0)
    names, sex, cabin = (_texts(raw[column]) for column in ("name", "sex", "cabin"))
    title = _titles(names)
    family_size = sibsp + parch + 1.0
    return {
        "pclass": pclass, "age": age, "sibsp": sibsp, "parch": parch, "fare": fare,
        "sex": sex, "embarked": _texts(raw["embarked"]), "title": title,
        "sex_class": _each_distinct(lambda s, p: _text(sex_class_of(s, p)), sex, pclass),
        "has_cabin": _each_distinct(lambda c: float(isinstance(c, str) and bool(c.strip())),
                                    cabin).astype(np.float64),
        "deck": _each_distinct(deck_of, cabin), "family_size": family_size,
        "is_alone": (family_size == 1.0).astype(np.float64),
        "member": _members(names), "ticket_group": _tickets(_texts(raw["ticket"])),
        "family_group": _families(names, fare),
        "woman_or_child": (_equals(sex, "female") | (title == "Master")).astype(np.float64),
    }


def _floats(column: Any) -> np.ndarray:
    if isinstance(column, pa.Array):
        return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return np.asarray(column, dtype=np.float64)


def _texts(column: Any) -> Text:
    """Arrow strings when every value is a str or missing (bytes infer as binary, and any
    other value fails), else the values as objects with NaN for missing."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    values = np.asarray(column, dtype=object)
    try:
        text = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = None
    if text is not None and (pa.types.is_string(text.type) or pa.types.is_null(text.type)):
        return text.cast(pa.string())
    return _nan_for_none(values.copy())


def _nan_for_none(values: np.ndarray) -> np.ndarray:
    values[pd.isna(values)] = np.nan
    return values


def _equals(column: Text, value: str) -> np.ndarray:
    if isinstance(column, pa.Array):
        return pc.fill_null(pc.equal(column, value), False).to_numpy(zero_copy_only=False)
    return column == value


def _distinct(column: Text) -> tuple[np.ndarray, list]:
    """Each row's index into the column's distinct values (-1 when missing), and the values."""
    if isinstance(column, pa.Array):
        encoded = pc.dictionary_encode(column)
        return (pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False),
                encoded.dictionary.to_pylist())
    code, unique = pd.factorize(np.asarray(column, dtype=object), use_na_sentinel=True)
    return code, list(unique)


def _each_distinct(function: Any, *columns: Text) -> np.ndarray:
    """`function` per row, called once per distinct combination of the columns' values
    (missing values, None, NaN or null, are passed as NaN, as the view reads them alike)."""
    codes, uniques = [], []
    for column in columns:
        if isinstance(column, np.ndarray) and column.dtype == np.float64:  # by bits: -0.0 and
            code, bits = pd.factorize(np.ascontiguousarray(column).view(np.int64))  # 0.0 differ
            unique = bits.view(np.float64).tolist()
        else:
            code, unique = _distinct(column)
        codes.append(code)
        uniques.append(unique + [np.nan])  # code -1 picks the NaN
    if len(columns) == 1:
        values = np.empty(len(uniques[0]), dtype=object)
        values[:] = [function(value) for value in uniques[0]]
        return values[codes[0]]
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for code, unique in zip(codes, uniques, strict=True):
        combined = combined * len(unique) + (code % len(unique))
    inverse, distinct = pd.factorize(combined)
    values = []
    for packed in distinct.tolist():
        parts = []
        for unique in reversed(uniques):
            packed, position = divmod(packed, len(unique))
            parts.append(unique[position])
        values.append(function(*reversed(parts)))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out[inverse]


def _by_helper(values: pa.Array, rows: np.ndarray, helper: Any, *inputs: Any) -> pa.Array:
    """`values` with the masked rows recomputed by the view's own `helper` on `inputs`."""
    chosen = np.flatnonzero(rows)
    if not len(chosen):
        return values
    arguments = [column.take(chosen).to_pylist() if isinstance(column, pa.Array)
                 else column[chosen].tolist() for column in inputs]
    fixed = pa.array([_text(helper(*row)) for row in zip(*arguments, strict=True)], pa.string())
    return pc.replace_with_mask(values, pa.array(rows), fixed)


def _ascii(text: pa.Array) -> np.ndarray:
    """Which rows are ASCII strings, where Arrow's kernels provably agree with Python's."""
    return pc.fill_null(pc.string_is_ascii(text), False).to_numpy(zero_copy_only=False)


def _titles(names: Text) -> np.ndarray:
    """`title_of` per name. The view's pattern `,\\s*([^.]+)\\.` matches where `,([^.]+)\\.`
    does, and its title stripped is this one's group stripped; a group that is not exactly
    a known title after removing ASCII spaces goes to `title_of` itself."""
    if not isinstance(names, pa.Array):
        return np.array([title_of(name) for name in names.tolist()], dtype=object)
    groups = pc.utf8_trim(pc.extract_regex(names, r",(?P<title>[^.]+)\.").field("title"),
                          _ASCII_SPACE)
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
    members = pc.fill_null(pc.utf8_trim(names, _ASCII_SPACE), "")
    return _by_helper(members, ~_ascii(names) & names.is_valid().to_numpy(zero_copy_only=False),
                      member_of, names)


def _tickets(tickets: Text) -> Text:
    """`ticket_of` per ticket: ASCII ones trimmed and upper-cased in Arrow, others by itself."""
    if not isinstance(tickets, pa.Array):
        return _nan_for_none(np.array([ticket_of(t) for t in tickets.tolist()], dtype=object))
    trimmed = pc.utf8_trim(tickets, _ASCII_SPACE)
    groups = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()),
                        pc.ascii_upper(trimmed))
    return _by_helper(groups, ~_ascii(tickets) & tickets.is_valid().to_numpy(zero_copy_only=False),
                      ticket_of, tickets)


def _families(names: Text, fares: np.ndarray) -> Text:
    """`family_of` per row: ASCII names in Arrow, any other through `family_of` itself."""
    if not isinstance(names, pa.Array):
        return _nan_for_none(np.array([_text(family_of(name, fare)) for name, fare
                                       in zip(names.tolist(), fares.tolist(), strict=True)],
                                      dtype=object))
    ascii_ = _ascii(names)
    has_comma = pc.fill_null(pc.match_substring(names, ","), False).to_numpy(zero_copy_only=False)
    surnames = pc.ascii_lower(pc.utf8_trim(
        pc.list_element(pc.split_pattern(names, ",", max_splits=1), 0), _ASCII_SPACE))
    keys = pc.binary_join_element_wise(surnames, _money(fares), "|")
    keys = pc.if_else(pa.array(ascii_ & has_comma & ~np.isnan(fares)), keys,
                      pa.scalar(None, pa.string()))
    return _by_helper(keys, ~ascii_ & names.is_valid().to_numpy(zero_copy_only=False),
                      family_of, names, fares)


def _money(amounts: np.ndarray) -> pa.Array:
    """`f"{amount:.2f}"` per amount, null for NaN, without a Python call per value.

    In a long double with a 64-bit (or longer) mantissa, amount × 100 is exact (53 + 7 bits),
    so rounding it half to even is Python's correctly rounded format, whose digits are then
    cents; amounts of 1e15 or more, and infinities, are left to Python. Where long double is
    plain double (some platforms) every distinct amount is formatted by Python."""
    if np.finfo(np.longdouble).nmant < 60:
        return pa.array(_each_distinct(lambda f: f"{f:.2f}" if not _missing(f) else None,
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
    return _by_helper(text, ~small & ~missing, lambda f: f"{f:.2f}", amounts)


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
            return 0.0, _UNKNOWN_FATE
        own = members.get(member)
        count = len(members) - (own is not None)
        survived = self.survivors[key] - (own or 0)
        return float(count), survived / count if count else _UNKNOWN_FATE

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
            position = _positions(known_keys, keys)
            known = np.flatnonzero(position >= 0)
            count[known] = sizes[position[known]]
            survived[known] = survivors[position[known]]
            for row, key, member in zip(known.tolist(), _values(keys, known),
                                        _values(members, known), strict=True):
                own = self.fates[key].get(member)
                if own is not None:
                    count[row] -= 1
                    survived[row] -= own
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(count > 0, survived / np.maximum(count, 1), _UNKNOWN_FATE)
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
            fare = _first_known(fitted.fare_by_class_.get(row["pclass"]), fitted.fare_median_)
        out = {**row, "age": age, "fare": fare,
               "fare_per_person": _ratio(fare, row["family_size"]),
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
            age[missing] = _each_distinct(
                lambda t, p: self._learned_age({"title": t, "pclass": p}),
                title[missing], pclass[missing]).astype(np.float64)
        missing = np.isnan(fare)
        if missing.any():
            fare = fare.copy()
            fare[missing] = _each_distinct(
                lambda p: _first_known(fitted.fare_by_class_.get(p), fitted.fare_median_),
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
        return {name: _plain(getattr(self.fitted, name)) for name in self.LEARNED}

    @classmethod
    def from_learned(cls, learned: Mapping[str, Any]) -> TitanicLayer:
        fitted = TitanicFeatures()
        for name in cls.LEARNED:
            setattr(fitted, name, _unplain(learned[name]))
        return cls(fitted)

    def _learned_age(self, row: Mapping[str, Any]) -> float:
        fitted, title = self.fitted, row["title"]
        return _first_known(fitted.age_by_title_class_.get(title, {}).get(row["pclass"]),
                            fitted.age_by_title_.get(title), fitted.age_median_)


def _plain(value: Any) -> Any:
    """Learned state as JSON holds it: a mapping keyed by numbers (a passenger class) as its
    pairs, since JSON would turn the keys into text."""
    if not isinstance(value, Mapping):
        return value
    if all(isinstance(key, str) for key in value):
        return {key: _plain(item) for key, item in value.items()}
    return {_PAIRS: [[key, _plain(item)] for key, item in value.items()]}


def _unplain(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    if set(value) == {_PAIRS}:
        return {key: _unplain(item) for key, item in value[_PAIRS]}
    return {key: _unplain(item) for key, item in value.items()}


def _positions(known: list[str], keys: Text | pd.Series) -> np.ndarray:
    """Each key's position among the known (text) keys, -1 when it is not one of them."""
    if isinstance(keys, pa.Array):
        return pc.fill_null(pc.index_in(keys, value_set=pa.array(known, pa.string())),
                            -1).to_numpy(zero_copy_only=False)
    return pd.Index(known, dtype=object).get_indexer(np.asarray(keys, dtype=object))


def _values(column: Text | pd.Series, rows: np.ndarray) -> list:
    if isinstance(column, pa.Array):
        return column.take(rows).to_pylist()
    return np.asarray(column, dtype=object)[rows].tolist()


def _first_known(*values: object) -> float:
    """The first value that is a number, as a chain of pandas `fillna` picks it."""
    for value in values:
        if value is not None and not math.isnan(value):
            return float(value)
    return math.nan


class ViewReplay(Protocol):
    """A feature view computed as `FeatureView.from_records` computes it, without pandas."""

    def row(self, record: Record) -> Row:
        """One raw record's view row: floats (NaN for missing), text (None for missing)."""

    def columns(self, raw: Mapping[str, Any]) -> Columns:
        """The view column-wise, from a `raw_frame` or from typed input columns as batch
        scoring reads a file (float64 numbers, Arrow strings with null for missing)."""


class Layer(Protocol):
    """The model's learned step between the view and `preprocess`, replayed."""

    def transform(self, row: Row) -> Row:
        """One view row → the row `preprocess` reads."""

    def columns(self, profile: Mapping[str, Any]) -> Mapping[str, Any]:
        """`transform` column-wise: view columns (arrays, or a typed view frame) in."""


class PassengerProfile:
    """The `titanic` builder's view, `titanic_view.passenger_profile`, replayed."""

    row = staticmethod(passenger_profile_row)
    columns = staticmethod(passenger_profile_columns)


_AS_NUMBER = (_number, _floats)  # how a number field's value, and its column, are typed
_AS_TEXT = (_text, _texts)


class TypedColumns:
    """The `columns` builder's view (`columns_view.spec_columns`): the record's feature fields,
    typed as `raw_frame` types the input field and `FeatureView.typed` then the feature.

    A number field stays a float even as a categorical feature: an integer code 2 is the
    category 2.0, as the encoder learned it. A text field stays text, None when missing.
    Request validation already makes a number field's value an int or a float."""

    def __init__(self, view: FeatureView) -> None:
        self.typing = tuple((name, *_typing(view.spec, name, kind))
                            for name, kind in view.columns.items())

    def row(self, record: Record) -> Row:
        return {name: one(record.get(name)) for name, one, _ in self.typing}

    def columns(self, raw: Mapping[str, Any]) -> Columns:
        return {name: column(raw[name]) for name, _, column in self.typing}


def _typing(spec: DatasetSpec, name: str, kind: ColumnKind) -> tuple[Callable, Callable]:
    """How a feature's values are typed, one by one and column-wise. Text read as a number is
    left to pandas' own parser, which `float` does not match (it reads "1_000" and "١٢")."""
    field = spec.input_fields.get(name)
    if field is not None and field.type in ("integer", "float"):
        return _AS_NUMBER
    if field is not None and field.type == "string" and kind == "string":
        return _AS_TEXT
    source = f"a {field.type} field" if field is not None else "no input field"
    raise UnsupportedModel(f"{kind} feature {name!r} is typed from {source} by pandas alone")


class IdentityLayer:
    """No learned step (builder `columns`): view rows go to `preprocess` as they are."""

    @staticmethod
    def transform(row: Row) -> Row:
        return row

    @staticmethod
    def columns(profile: Mapping[str, Any]) -> Mapping[str, Any]:
        return profile


@dataclass(frozen=True)
class Encoder:
    """The fitted `preprocess` step without scikit-learn: median imputation and scaling of the
    numeric columns, most-frequent imputation and one-hot encoding of the categorical ones.

    A few rows are encoded in plain Python floats (IEEE doubles, so bit for bit what NumPy
    computes), since NumPy's per-call overhead would dominate; frames in NumPy, column-wise.
    """

    numeric: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    categorical: tuple[str, ...]
    fills: tuple[str, ...]
    positions: tuple[dict[object, int], ...]  # category → its output column
    width: int

    @classmethod
    def of(cls, preprocess: ColumnTransformer) -> Encoder:
        numeric, categorical = _checked_parts(preprocess)
        (columns, impute, scale), (text_columns, text_impute, encode) = numeric, categorical
        offset, positions = len(columns), []
        for categories in encode.categories_:
            positions.append({value: offset + i for i, value in enumerate(categories)})
            offset += len(categories)
        means = scale.mean_ if scale.with_mean else np.zeros(len(columns))
        scales = scale.scale_ if scale.with_std else np.ones(len(columns))
        return cls(tuple(columns), tuple(impute.statistics_.astype(float).tolist()),
                   tuple(means.tolist()), tuple(scales.tolist()), tuple(text_columns),
                   tuple(text_impute.statistics_), tuple(positions), offset)

    def learned(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "medians": self.medians, "means": self.means,
                "scales": self.scales, "categorical": self.categorical, "fills": self.fills,
                "positions": [_plain(positions) for positions in self.positions],
                "width": self.width}

    @classmethod
    def from_learned(cls, learned: Mapping[str, Any]) -> Encoder:
        return cls(tuple(learned["numeric"]), tuple(learned["medians"]), tuple(learned["means"]),
                   tuple(learned["scales"]), tuple(learned["categorical"]),
                   tuple(learned["fills"]),
                   tuple(_unplain(positions) for positions in learned["positions"]),
                   learned["width"])

    def rows(self, rows: Sequence[Row]) -> np.ndarray:
        return np.array([self._row(row) for row in rows], dtype=np.float64).reshape(-1, self.width)

    def _row(self, row: Row) -> list[float]:
        encoded = [0.0] * self.width
        for i, (column, median, mean, scale) in enumerate(
                zip(self.numeric, self.medians, self.means, self.scales, strict=True)):
            value = row[column]
            encoded[i] = ((median if math.isnan(value) else value) - mean) / scale
        for column, fill, positions in zip(self.categorical, self.fills, self.positions,
                                           strict=True):
            value = row[column]
            position = positions.get(fill if _missing(value) else value)
            if position is not None:  # an unseen category is all zeros, as "ignore" has it
                encoded[position] = 1.0
        return encoded

    def frame(self, frame: Mapping[str, Any]) -> np.ndarray:
        """Columns (arrays, or a frame) in, column-wise; a category is looked up once."""
        matrix = np.zeros((len(frame[self.numeric[0]]), self.width))
        for i, (column, median, mean, scale) in enumerate(
                zip(self.numeric, self.medians, self.means, self.scales, strict=True)):
            numbers = np.asarray(frame[column], dtype=np.float64)
            numbers = np.where(np.isnan(numbers), median, numbers)  # a copy, so in place below
            numbers -= mean
            numbers /= scale
            matrix[:, i] = numbers
        for column, fill, positions in zip(self.categorical, self.fills, self.positions,
                                           strict=True):
            codes, uniques = _distinct(frame[column])
            found = np.array([positions.get(value, -1) for value in uniques]
                             + [positions.get(fill, -1)], dtype=np.int64)  # -1: missing
            columns = found[codes]
            hits = np.flatnonzero(columns >= 0)
            matrix[hits, columns[hits]] = 1.0
        return matrix


def _checked_parts(preprocess: ColumnTransformer) -> tuple[tuple, tuple]:
    """The preprocess step's numeric and categorical parts, if they are the ones
    `features.pipeline.preprocessor` builds; anything else is not replayed."""
    parts = {name: (columns, step) for name, step, columns in preprocess.transformers_
             if name != "remainder"}
    remainder = [step for name, step, _ in preprocess.transformers_ if name == "remainder"]
    try:
        (numeric_columns, numeric), (text_columns, text) = parts["numeric"], parts["categorical"]
        impute, scale = numeric.named_steps["impute"], numeric.named_steps["scale"]
        text_impute, encode = text.named_steps["impute"], text.named_steps["encode"]
    except (KeyError, AttributeError, ValueError):
        raise UnsupportedModel(f"preprocess has parts {sorted(parts)}") from None
    if not len(numeric_columns) or not len(text_columns):  # an empty part is never fitted
        raise UnsupportedModel("preprocess has a part without columns")
    expected = (isinstance(impute, SimpleImputer) and isinstance(scale, StandardScaler)
                and isinstance(text_impute, SimpleImputer) and isinstance(encode, OneHotEncoder)
                and len(numeric.steps) == len(text.steps) == 2 and len(parts) == 2
                and all(step == "drop" for step in remainder)
                and impute.strategy == "median" and text_impute.strategy == "most_frequent"
                and not np.isnan(impute.statistics_.astype(float)).any()
                and encode.drop is None and encode.handle_unknown == "ignore"
                and getattr(encode, "infrequent_categories_", None) is None)
    if not expected:
        raise UnsupportedModel("preprocess is not the imputer/scaler/one-hot step it replays")
    return (numeric_columns, impute, scale), (text_columns, text_impute, encode)


class OnnxClassifier:
    """The fitted classifier in ONNX Runtime, on the preprocess step's float64 matrix.

    Double precision where the runtime has the kernels (the linear model scores as
    scikit-learn does, to the last bits); tree ensembles only have float kernels in
    onnxruntime, so their input is float32, as scikit-learn's trees also read it, and
    their probabilities carry float32 rounding (about 1e-7).
    """

    def __init__(self, onnx: bytes) -> None:
        self.onnx = onnx
        self.session = ort.InferenceSession(onnx, _session_options(),
                                            providers=["CPUExecutionProvider"])
        given = self.session.get_inputs()[0]
        self.input, self.dtype = given.name, _ONNX_TYPES[given.type]
        self.output = self.session.get_outputs()[1].name

    @classmethod
    def of(cls, classifier: Any, width: int) -> OnnxClassifier:
        """Converted by skl2onnx, on a float64 input where ONNX Runtime has the kernels for
        the model, else float32."""
        from skl2onnx import convert_sklearn  # compiling alone needs it, not a saved scorer
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

        for tensor in (DoubleTensorType, FloatTensorType):
            try:
                return cls(convert_sklearn(
                    classifier, initial_types=[("X", tensor([None, width]))],
                    options={id(classifier): {"zipmap": False}}).SerializeToString())
            except Exception as exc:  # skl2onnx or onnxruntime lacks this type for the model
                failure = exc
        reason = textwrap.shorten(str(failure), 100) or type(failure).__name__  # may dump a graph
        raise UnsupportedModel(f"{type(classifier).__name__} does not convert to ONNX: {reason}")

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        inputs = {self.input: matrix.astype(self.dtype, copy=False)}
        scores = self.session.run([self.output], inputs)
        return np.asarray(scores[0][:, 1], dtype=np.float64)


class SklearnClassifier:
    """The fitted classifier itself, on the encoded matrix: for one ONNX cannot take. Exact,
    as the pipeline hands it the very same float64 matrix, and still no pandas; but each call
    pays scikit-learn's input checks and its loop over trees (about 1 ms for 100 histogram
    trees, against tens of µs in ONNX Runtime)."""

    dtype = np.float64

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(matrix)[:, 1]


def compiled_classifier(classifier: Any, width: int) -> OnnxClassifier | SklearnClassifier:
    """ONNX Runtime where skl2onnx converts the classifier, else scikit-learn's own. The
    histogram boosting candidate lands on the latter: skl2onnx 1.20 cannot build its tree
    node from NumPy 2 scalars (and float32 kernels would not split its float64 bins alike)."""
    try:
        return OnnxClassifier.of(classifier, width)
    except UnsupportedModel as exc:
        log.info("%s; scored by scikit-learn on the encoded matrix", exc)
        return SklearnClassifier(classifier)


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one request is µs of work: no thread pool to wake
    options.inter_op_num_threads = 1
    return options


class Calibration:
    """The model's calibration map (`training.calibration.Calibration`), replayed from its
    plain numbers: beta or Platt scaling (logit p' = a ln p - b ln(1 - p) + c), a step
    function through points, or none."""

    _EDGE = 1e-7  # as training clips probabilities before taking logarithms

    def __init__(self, learned: Mapping[str, Any]) -> None:
        self.learned = dict(learned)
        self.method = learned["method"]
        self.a, self.b, self.c = (float(learned[name]) for name in ("a", "b", "c"))
        self.points = (np.asarray(learned["points"][0], dtype=np.float64),
                       np.asarray(learned["points"][1], dtype=np.float64))

    @classmethod
    def of(cls, model: Any) -> Calibration | None:
        fitted = getattr(model, "calibration_", None)
        return None if fitted is None else cls(fitted.to_dict())

    def apply(self, probability: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(probability, *self.points)
        if self.method == "none":
            return probability
        clipped = np.clip(probability, self._EDGE, 1 - self._EDGE)
        odds = self.a * np.log(clipped) - self.b * np.log1p(-clipped) + self.c
        return 1.0 / (1.0 + np.exp(-odds))


class CompiledScorer:
    """A model compiled for serving: raw records, stored view vectors or frames in,
    the positive class's probability out, as `model.predict_proba(...)[:, 1]` gives it."""

    def __init__(self, view: FeatureView, replay: ViewReplay, layer: Layer, encoder: Encoder,
                 classifier: OnnxClassifier | SklearnClassifier,
                 calibration: Calibration | None = None) -> None:
        self.view, self.replay, self.layer = view, replay, layer
        self.encoder, self.classifier = encoder, classifier
        self.calibration = calibration

    def probabilities(self, records: Sequence[Record] | pd.DataFrame) -> np.ndarray:
        if isinstance(records, pd.DataFrame) or len(records) >= VECTORISED_FROM:
            return self.view_probabilities(self._view_of(records))
        row = self.replay.row
        return self._scored([row(record) for record in records])

    def scored(self, records: Sequence[Record]) -> tuple[np.ndarray, list[Row]]:
        """`probabilities`, and the view row each record was scored on: what the prediction
        log keeps, taken from the scoring rather than computed again."""
        if len(records) >= VECTORISED_FROM:
            view = self._view_of(records)
            return self.view_probabilities(view), _rows(view, list(self.view.columns))
        row = self.replay.row
        rows = [row(record) for record in records]
        return self._scored(rows), rows

    def _view_of(self, records: Sequence[Record] | pd.DataFrame) -> Columns:
        return self.view_columns(raw_frame(self.view.spec, records))

    def vector_probabilities(self, vectors: Sequence[Sequence[object]]) -> np.ndarray:
        """Stored view vectors (in the view's column order), as the online store returns them."""
        if len(vectors) >= VECTORISED_FROM:
            return self.view_probabilities(self.view.from_rows(vectors))
        return self._scored([self._profile(vector) for vector in vectors])

    def _profile(self, vector: Sequence[object]) -> Row:
        return {name: _number(value) if kind == "float" else _text(value)
                for (name, kind), value in zip(self.view.columns.items(), vector, strict=True)}

    def _scored(self, profiles: list[Row]) -> np.ndarray:
        rows = [self.layer.transform(profile) for profile in profiles]
        return self._calibrated(self.classifier.probabilities(self.encoder.rows(rows)))

    def _calibrated(self, probability: np.ndarray) -> np.ndarray:
        return probability if self.calibration is None else self.calibration.apply(probability)

    def view_columns(self, columns: Mapping[str, Any]) -> Columns:
        """The view of typed input columns: a `raw_frame`, or columns as batch scoring reads
        a file (float64 numbers, Arrow strings with null for missing), no records, no frame."""
        return self.replay.columns(columns)

    def view_probabilities(self, view_rows: Mapping[str, Any]) -> np.ndarray:
        """View columns (arrays, or a typed view frame) → probabilities, column-wise."""
        matrix = self.encoder.frame(self.layer.columns(view_rows))
        return self._calibrated(self.classifier.probabilities(matrix))


def _rows(columns: Columns, names: Sequence[str]) -> list[Row]:
    """View columns (NumPy or Arrow) as one row per record; a missing value is NaN or None."""
    values = [_as_list(columns[name]) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _as_list(column: Any) -> list:
    return column.to_pylist() if isinstance(column, pa.Array) else np.asarray(column).tolist()


Steps = Mapping[str, Any]


def compile_model(spec: DatasetSpec, view: FeatureView, model: Any) -> CompiledScorer:
    """The fast scorer for `model`, or UnsupportedModel when it has a step this module
    cannot replay exactly (a view computed by other code, another pipeline shape). A
    calibrated model (`training.CalibratedModel`) is its fitted pipeline, then its map."""
    compiles = _BUILDERS.get(view.compute)
    if compiles is None:
        raise UnsupportedModel(f"no compiled scorer for feature builder {spec.features.builder!r}")
    pipeline = getattr(model, "pipeline_", model)
    steps = getattr(pipeline, "named_steps", {})
    replay, layer = compiles(view, steps)
    encoder = Encoder.of(steps["preprocess"])
    return CompiledScorer(view, replay, layer, encoder,
                      compiled_classifier(steps["classifier"], encoder.width),
                      Calibration.of(model))


def save_scorer(scorer: CompiledScorer, folder: Path) -> bool:
    """Writes the scorer into `folder`, to be loaded without the pipeline (`load_scorer`):
    no scikit-learn model to unpickle, no skops, no conversion. False, and nothing written,
    when its classifier has no ONNX form (one scikit-learn scores)."""
    if not isinstance(scorer.classifier, OnnxClassifier):
        return False
    layer = scorer.layer.learned() if isinstance(scorer.layer, TitanicLayer) else None
    calibration = scorer.calibration.learned if scorer.calibration else None
    (folder / SCORER_FILE).write_text(json.dumps({
        "feature_view": scorer.view.label, "columns": dict(scorer.view.columns),
        "encoder": scorer.encoder.learned(), "layer": layer, "calibration": calibration}))
    (folder / CLASSIFIER_FILE).write_bytes(scorer.classifier.onnx)
    return True


def load_scorer(view: FeatureView, folder: Path) -> CompiledScorer:
    """A scorer `save_scorer` wrote, for `view`: it scores as the one it saved did. One
    saved for an earlier version of the view with the same columns serves on this one, as
    its model does (`registry.view_mismatch`)."""
    saved = json.loads((folder / SCORER_FILE).read_text())
    same_columns = saved.get("columns") == dict(view.columns)
    if saved["feature_view"] != view.label and not same_columns:
        raise UnsupportedModel(f"saved for features {saved['feature_view']}, not {view.label}")
    if view.compute is passenger_profile:
        replay, layer = PassengerProfile(), TitanicLayer.from_learned(saved["layer"])
    elif view.compute is spec_columns:
        replay, layer = TypedColumns(view), IdentityLayer()
    else:
        raise UnsupportedModel(f"no compiled scorer for feature builder {view.spec.features.builder!r}")
    calibration = saved.get("calibration")
    return CompiledScorer(view, replay, layer, Encoder.from_learned(saved["encoder"]),
                      OnnxClassifier((folder / CLASSIFIER_FILE).read_bytes()),
                      Calibration(calibration) if calibration else None)


def _titanic(_view: FeatureView, steps: Steps) -> tuple[ViewReplay, Layer]:
    _check_steps(steps, "engineer")
    engineer = steps["engineer"]
    if not isinstance(engineer, TitanicFeatures):
        raise UnsupportedModel(f"engineer step {type(engineer).__name__}")
    return PassengerProfile(), TitanicLayer(engineer)


def _columns(view: FeatureView, steps: Steps) -> tuple[ViewReplay, Layer]:
    _check_steps(steps)
    return TypedColumns(view), IdentityLayer()


def _check_steps(steps: Steps, *learned: str) -> None:
    """The builder's learned step (if it has one), `preprocess`, then the classifier. A
    resampler (`balance`, SMOTE) may sit anywhere: imbalanced-learn skips it to predict."""
    replayed = [name for name, step in steps.items() if not hasattr(step, "fit_resample")]
    if replayed != [*learned, "preprocess", "classifier"]:
        raise UnsupportedModel(f"pipeline steps {list(steps)}")


# The views this module replays, by the function that computes them (`pipeline.BUILDERS`).
_BUILDERS: dict[Compute, Callable[[FeatureView, Steps], tuple[ViewReplay, Layer]]] = {
    passenger_profile: _titanic,
    spec_columns: _columns,
}

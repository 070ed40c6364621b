"""Seeded customers and their transactions: the `customers` dataset, which no public data has.

Each customer has hidden habits: a typical amount and a purchase rate driven by region and
age, a trend (some buy more as months go by, some drift away), a refund habit and a favourite
payment method. Transactions follow those habits through a calendar with a weekly rhythm and
a November/December peak, so whether a customer makes a completed purchase above $300 within
30 days is learnable from their history, and better from all of it than from their last
amount alone. Loyalty points follow the spend a customer's habits and tenure imply.

A few rows (DIRTY_SHARE) are broken the way real exports are, each one against one rule of
the spec (a type, a range, an allowed value, a required value, the unique key), so ingestion
rejects exactly those rows and loads the rest.

Transactions come one calendar month at a time, in time order, numbered as they happen:
writing ten million holds one month of them in memory, never the whole log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CUSTOMERS_FILE, TRANSACTIONS_FILE = "customers.csv", "transactions.json"
DIRTY_SHARE = 0.005

REGIONS = ("north", "south", "east", "west", "central")
_REGION_SHARE = (0.24, 0.21, 0.22, 0.19, 0.14)
_REGION_SPEND = (0.0, -0.15, 0.1, 0.3, -0.25)  # log-amount offsets: the west spends most
_REGION_RATE = (0.0, 0.1, -0.05, 0.05, -0.1)
METHODS = ("card", "paypal", "bank_transfer", "gift_card")
_METHOD_SHARE = (0.6, 0.25, 0.1, 0.05)
_METHOD_FAILS = (0.025, 0.02, 0.07, 0.01)  # bank transfers bounce most; about 3% overall
_FAVOURITE_SHARE = 0.75  # of a customer's payments made with their favourite method
STATUSES = ("completed", "refunded", "failed")

# Seasonality: purchases per day by month (January first) and weekday (Monday first), the
# late-November sales, and bigger baskets before Christmas.
_MONTH_RATE = np.array([0.85, 0.8, 0.9, 0.95, 1.0, 0.95, 0.95, 1.0, 0.95, 1.0, 1.3, 1.55])
_MONTH_SPEND = np.array([-0.05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.15, 0.25])
_WEEKDAY_RATE = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.25, 1.1])
_SALES_RATE, _SALES_FROM_DAY = 1.5, 22  # November 22nd onwards
_HOUR_RATE = np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.3,
                       1.5, 1.4, 1.2, 1.1, 1.1, 1.2, 1.4, 1.7, 1.9, 1.7, 1.2, 0.6])

_TYPICAL_AMOUNT = 90.0  # dollars, before region, age and the customer's own level
_AMOUNT_SPREAD = 0.7  # log-scale spread of one customer's amounts around their typical one
_TREND_ON_AMOUNT = 0.3  # a growing customer's baskets grow too, more slowly than their rate
_SIGNED_UP_BEFORE = 0.65  # share of customers older than the log
_POINTS_PER_DOLLAR, _POINTS_YEARS = 0.5, 3  # points expire after three years

_BAD_AGES = (7, 12, 130, 150, -3)
_BAD_REGIONS = ("atlantis", "northwest", "nord")
_BAD_STATUSES = ("pending", "chargeback", "unknown")
_BAD_TIMESTAMPS = ("2025-02-30T12:00:00Z", "2025-13-01T09:30:00Z", "not-a-date", "12:61")
_FIRST_NAMES = np.array(["ana", "ben", "chloe", "david", "emma", "farid", "grace", "hugo",
                         "ines", "jonas", "kim", "liam", "maya", "noah", "olga", "paul",
                         "quinn", "rosa", "sam", "tara", "umar", "vera", "wei", "yusuf"])
_LAST_NAMES = np.array(["smith", "garcia", "kowalski", "nguyen", "okafor", "rossi", "silva",
                        "tanaka", "muller", "dubois", "khan", "larsen", "novak", "reyes"])
_DOMAINS = np.array(["example.com", "example.org", "example.net", "mail.example"])


@dataclass(frozen=True)
class _Calendar:
    """The log's days, their relative purchase rate, and the calendar months they fall in."""

    first_day: pd.Timestamp
    day_rate_total: np.ndarray  # cumulative day rates, one longer than the days
    month_of_day: np.ndarray    # 0 = January, per day
    period_start: np.ndarray    # first day of each calendar month in the log
    period_end: np.ndarray      # its last day + 1
    day_text: pa.Array          # each day as ISO 8601 text

    @property
    def days(self) -> int:
        return len(self.month_of_day)


@dataclass(frozen=True)
class _Habits:
    """What each customer does, hidden from the files: the model has to infer it."""

    signup_day: np.ndarray  # relative to the log's first day; negative: signed up before it
    spend: np.ndarray       # log of the typical amount
    rate: np.ndarray        # relative purchases per day
    slope: np.ndarray       # yearly change of the log purchase rate
    refund: np.ndarray      # chance a completed-looking purchase is refunded
    favourite: np.ndarray   # index into METHODS


def generate_customers(customers: int, transactions: int, *, seed: int = 0,
                       end: str | pd.Timestamp = "2026-10-31",
                       months: int = 24) -> tuple[pd.DataFrame, Iterator[pd.DataFrame]]:
    """Customers as `customers.csv` holds them, and their transactions, month by month.

    The log covers `months` months up to `end` (inclusive); exactly `transactions` rows come
    in time order, about 50 per customer being what the habits are tuned for. Frames hold
    the values as the files will: timestamps as ISO text (`...Z`), dirty values as they are.
    """
    if customers < 1 or transactions < 0 or months < 1:
        raise ValueError("need customers >= 1, transactions >= 0 and months >= 1")
    streams = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(streams[0])
    calendar = _calendar(pd.Timestamp(end), months)
    region, age = _demographics(customers, rng)
    habits = _habits(region, age, calendar, rng)
    weight = _month_weights(habits, calendar)
    counts = rng.multinomial(transactions, (weight / weight.sum()).ravel()).reshape(weight.shape)
    expected = transactions * weight.sum(axis=1) / weight.sum()
    customer_id = _customer_ids(habits.signup_day)
    table = _customer_table(customer_id, region, age, habits, expected, calendar, rng)
    return table, _transaction_months(habits, calendar, counts, customer_id, streams[1])


def write_customers(folder: str | Path, seed: int = 0, *, customers: int = 3000,
                    transactions: int = 150_000,
                    json_format: Literal["lines", "array"] = "lines") -> list[Path]:
    """Writes `customers.csv` and `transactions.json` (JSON lines, or one JSON array).

    The same arguments give byte-identical files. Customers come first in the list, the
    order ingestion wants them in.
    """
    if json_format not in ("lines", "array"):
        raise ValueError("json_format must be 'lines' or 'array'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table, months = generate_customers(customers, transactions, seed=seed)
    customers_path, transactions_path = folder / CUSTOMERS_FILE, folder / TRANSACTIONS_FILE
    table.to_csv(customers_path, index=False, lineterminator="\n")
    with transactions_path.open("w", encoding="utf-8", newline="\n") as stream:
        _write_json(stream, months, array=json_format == "array")
    return [customers_path, transactions_path]


def _calendar(end: pd.Timestamp, months: int) -> _Calendar:
    last_day = (end.tz_convert(None) if end.tzinfo else end).normalize()
    first_day = last_day - pd.DateOffset(months=months) + pd.Timedelta(days=1)
    days = pd.date_range(first_day, last_day, freq="D")
    month = days.month.to_numpy() - 1
    rate = _MONTH_RATE[month] * _WEEKDAY_RATE[days.day_of_week.to_numpy()]
    rate = rate * np.where((month == 10) & (days.day.to_numpy() >= _SALES_FROM_DAY),
                           _SALES_RATE, 1.0)
    period = (days.year.to_numpy() * 12 + month)
    starts = np.flatnonzero(np.r_[True, period[1:] != period[:-1]])
    return _Calendar(first_day=first_day, day_rate_total=np.r_[0.0, np.cumsum(rate)],
                     month_of_day=month, period_start=starts,
                     period_end=np.r_[starts[1:], len(days)],
                     day_text=pa.array(days.strftime("%Y-%m-%d").to_numpy(dtype=str)))


def _demographics(customers: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    region = rng.choice(len(REGIONS), size=customers, p=_REGION_SHARE)
    age = np.clip(np.round(rng.normal(41, 13, customers)), 18, 90).astype(np.int64)
    return region, age


def _habits(region: np.ndarray, age: np.ndarray, calendar: _Calendar,
            rng: np.random.Generator) -> _Habits:
    """Middle-aged customers and the west buy dearer, the young and the south more often;
    steady, growing and fading customers in a 60/20/20 mix; a few customers refund a lot
    (a skewed refund chance, 5% on average)."""
    customers = len(region)
    before = rng.random(customers) < _SIGNED_UP_BEFORE
    signup_day = np.where(before, -1 - np.floor(rng.exponential(500, customers)) % 2190,
                          rng.integers(0, max(calendar.days - 30, 1), customers)).astype(np.int64)
    spend = (np.log(_TYPICAL_AMOUNT) + np.asarray(_REGION_SPEND)[region]
             + 0.35 * np.exp(-(((age - 48) / 14) ** 2)) + rng.normal(0, 0.55, customers))
    rate = np.exp(rng.normal(0, 0.75, customers) + np.asarray(_REGION_RATE)[region]
                  - 0.01 * (age - 40))
    kind = rng.choice(3, size=customers, p=[0.6, 0.2, 0.2])
    slope = np.choose(kind, [rng.normal(0, 0.1, customers), rng.normal(0.7, 0.25, customers),
                             rng.normal(-0.9, 0.3, customers)])
    return _Habits(signup_day=signup_day, spend=spend, rate=rate, slope=slope,
                   refund=rng.beta(1.1, 20, customers),
                   favourite=rng.choice(len(METHODS), size=customers, p=_METHOD_SHARE))


def _years_from_middle(day: np.ndarray, calendar: _Calendar) -> np.ndarray:
    return (day - calendar.days / 2) / 365.25


def _month_weights(habits: _Habits, calendar: _Calendar) -> np.ndarray:
    """Expected purchases per customer (rows) and calendar month (columns), up to a factor:
    the customer's rate and trend times the month's purchase days they were signed up for."""
    start, end = calendar.period_start, calendar.period_end
    signed_up_from = np.clip(habits.signup_day[:, None], start, end)
    active = calendar.day_rate_total[end] - calendar.day_rate_total[signed_up_from]
    middle = _years_from_middle((start + end) / 2, calendar)
    return habits.rate[:, None] * np.exp(habits.slope[:, None] * middle) * active


def _customer_ids(signup_day: np.ndarray) -> np.ndarray:
    """Numbered in signup order, as a shop's database would hand them out."""
    by_signup = np.argsort(signup_day, kind="stable")
    customer_id = np.empty(len(signup_day), dtype=object)
    customer_id[by_signup] = _numbered("C", 1, len(signup_day), 7).to_numpy(zero_copy_only=False)
    return customer_id


def _customer_table(customer_id: np.ndarray, region: np.ndarray, age: np.ndarray,
                    habits: _Habits, expected: np.ndarray, calendar: _Calendar,
                    rng: np.random.Generator) -> pd.DataFrame:
    """One row per customer, in signup order (the order of their ids)."""
    by_signup = np.argsort(habits.signup_day, kind="stable")
    signup = calendar.first_day + pd.to_timedelta(habits.signup_day, unit="D")
    table = pd.DataFrame({
        "customer_id": customer_id,
        "age": age,
        "region": np.asarray(REGIONS, dtype=object)[region],
        "signup_date": signup.strftime("%Y-%m-%d"),
        "loyalty_points": _loyalty_points(habits, expected, calendar, rng),
        "email": _emails(customer_id, rng),
    }).iloc[by_signup].reset_index(drop=True)
    return _dirty_customers(table, rng)


def _loyalty_points(habits: _Habits, expected: np.ndarray, calendar: _Calendar,
                    rng: np.random.Generator) -> np.ndarray:
    """Points earned on the spend the customer's habits imply over their (capped) tenure."""
    days_in_log = calendar.days - np.maximum(habits.signup_day, 0)
    daily_spend = expected / days_in_log * np.exp(habits.spend + _AMOUNT_SPREAD ** 2 / 2)
    tenure = np.minimum(calendar.days - habits.signup_day, 365 * _POINTS_YEARS)
    noise = rng.lognormal(0, 0.5, len(expected))
    return np.round(_POINTS_PER_DOLLAR * daily_spend * tenure * noise).astype(np.int64)


def _emails(customer_id: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    count = len(customer_id)
    parts = [_FIRST_NAMES[rng.integers(0, len(_FIRST_NAMES), count)], ".",
             _LAST_NAMES[rng.integers(0, len(_LAST_NAMES), count)],
             pd.Series(customer_id).str[1:].str.lstrip("0").to_numpy(dtype=str), "@",
             _DOMAINS[rng.integers(0, len(_DOMAINS), count)]]
    return np.asarray(pc.binary_join_element_wise(*parts, ""), dtype=object)


def _dirty_customers(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """An impossible age or a region nobody sells in, on DIRTY_SHARE of the customers."""
    rows = rng.choice(len(table), size=round(DIRTY_SHARE * len(table)), replace=False)
    bad_age = rng.random(len(rows)) < 0.5
    table.loc[rows[bad_age], "age"] = rng.choice(_BAD_AGES, bad_age.sum())
    table.loc[rows[~bad_age], "region"] = rng.choice(_BAD_REGIONS, (~bad_age).sum())
    return table


def _transaction_months(habits: _Habits, calendar: _Calendar, counts: np.ndarray,
                        customer_id: np.ndarray, seed: np.random.SeedSequence,
                        ) -> Iterator[pd.DataFrame]:
    """One frame per calendar month, each from its own random stream: a month's rows do not
    depend on how many were drawn before it."""
    ids = pa.array(customer_id, type=pa.string())
    first_number = np.r_[0, np.cumsum(counts.sum(axis=0))] + 1
    for period, stream in enumerate(seed.spawn(counts.shape[1])):
        yield _month(habits, calendar, period, counts[:, period], ids, first_number[period],
                     np.random.default_rng(stream))


def _month(habits: _Habits, calendar: _Calendar, period: int, counts: np.ndarray,
           ids: pa.Array, first_number: int, rng: np.random.Generator) -> pd.DataFrame:
    owner = np.repeat(np.arange(len(counts)), counts)
    day, second = _moments(owner, habits, calendar, period, rng)
    order = np.argsort(day * 86_400 + second, kind="stable")
    owner, day, second = owner[order], day[order], second[order]
    amount = _amounts(owner, day, habits, calendar, rng)
    method = np.where(rng.random(len(owner)) < _FAVOURITE_SHARE, habits.favourite[owner],
                      rng.choice(len(METHODS), size=len(owner), p=_METHOD_SHARE))
    status = _statuses(owner, method, habits, rng)
    month = pd.DataFrame({  # text stays in Arrow, as pandas keeps it: no Python string per cell
        "transaction_id": _numbered("T", first_number, len(owner), 10).to_pandas(),
        "customer_id": ids.take(owner).to_pandas(),
        "amount": amount,
        "currency": "USD",
        "timestamp": _iso_times(calendar, day, second).to_pandas(),
        "payment_method": pa.array(METHODS).take(method).to_pandas(),
        "status": pa.array(STATUSES).take(status).to_pandas(),
    })
    return _dirty_transactions(month, rng)


def _moments(owner: np.ndarray, habits: _Habits, calendar: _Calendar, period: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Day (drawn by the days' rates, never before signup) and second of day of each purchase."""
    start = np.maximum(calendar.period_start[period], habits.signup_day[owner])
    end = calendar.period_end[period]
    total = calendar.day_rate_total
    target = total[start] + rng.random(len(owner)) * (total[end] - total[start])
    day = np.clip(np.searchsorted(total, target, side="right") - 1, start, end - 1)
    hour = rng.choice(24, size=len(owner), p=_HOUR_RATE / _HOUR_RATE.sum())
    return day, hour * 3600 + rng.integers(0, 3600, len(owner))


def _amounts(owner: np.ndarray, day: np.ndarray, habits: _Habits, calendar: _Calendar,
             rng: np.random.Generator) -> np.ndarray:
    log_amount = (habits.spend[owner] + _MONTH_SPEND[calendar.month_of_day[day]]
                  + _TREND_ON_AMOUNT * habits.slope[owner] * _years_from_middle(day, calendar)
                  + rng.normal(0, _AMOUNT_SPREAD, len(owner)))
    return np.clip(np.round(np.exp(log_amount), 2), 1.0, 50_000.0)


def _statuses(owner: np.ndarray, method: np.ndarray, habits: _Habits,
              rng: np.random.Generator) -> np.ndarray:
    """Index into STATUSES: failures by payment method, refunds by the customer's habit."""
    fails = np.asarray(_METHOD_FAILS)[method]
    draw = rng.random(len(owner))
    return np.where(draw < fails, 2, np.where(draw < fails + habits.refund[owner], 1, 0))


def _numbered(prefix: str, first: int, count: int, digits: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(first, first + count)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, digits, "0"), "")


def _iso_times(calendar: _Calendar, day: np.ndarray, second: np.ndarray) -> pa.Array:
    """ISO 8601 in UTC with `Z`, pieced from each day's and second's text: formatting a
    million datetimes one by one takes seconds, looking up their parts takes milliseconds."""
    return pc.binary_join_element_wise(calendar.day_text.take(day), "T",
                                       _clock().take(second), "Z", "")


@cache
def _clock() -> pa.Array:
    """`HH:MM:SS` for each second of a day."""
    second = np.arange(86_400)
    parts = [pc.utf8_lpad(pc.cast(pa.array(unit), pa.string()), 2, "0")
             for unit in (second // 3600, second // 60 % 60, second % 60)]
    return pc.binary_join_element_wise(parts[0], ":", parts[1], ":", parts[2], "")


def _dirty_transactions(month: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """DIRTY_SHARE of the rows each get one fault: a negative amount, an unknown status, an
    unreadable timestamp, no customer, or the id of the row just before it.

    Faults sit on even rows only, so the row a duplicate copies is always clean and is the
    one ingestion keeps."""
    candidates = np.arange(2, len(month), 2)
    rows = np.sort(rng.choice(candidates, size=min(round(DIRTY_SHARE * len(month)),
                                                   len(candidates)), replace=False))
    fault = rng.integers(0, 5, len(rows))
    at = {name: month.columns.get_loc(name) for name in month.columns}
    negative, unknown, unreadable, orphan, copy = (rows[fault == kind] for kind in range(5))
    month.iloc[negative, at["amount"]] = -month["amount"].to_numpy()[negative]
    month.iloc[unknown, at["status"]] = rng.choice(_BAD_STATUSES, len(unknown))
    month.iloc[unreadable, at["timestamp"]] = rng.choice(_BAD_TIMESTAMPS, len(unreadable))
    month.iloc[orphan, at["customer_id"]] = None
    month.iloc[copy, at["transaction_id"]] = month["transaction_id"].iloc[copy - 1].to_numpy()
    return month


def _write_json(stream: TextIO, months: Iterator[pd.DataFrame], *, array: bool) -> None:
    """JSON lines, or the same objects as one array (`[`, objects joined by `,`, `]`)."""
    separator = ",\n" if array else "\n"
    stream.write("[\n" if array else "")
    empty = True
    for month in months:
        if len(month):
            stream.write(("" if empty else separator) + _joined(_json_objects(month), separator))
            empty = False
    stream.write("\n]\n" if array else "" if empty else "\n")


def _joined(texts: pa.Array, separator: str) -> str:
    """The texts joined into one string by Arrow, not a Python string per text first."""
    one_list = pa.LargeListArray.from_arrays(pa.array([0, len(texts)], pa.int64()),
                                             texts.cast(pa.large_string()))
    return pc.binary_join(one_list, pa.scalar(separator, pa.large_string()))[0].as_py()


def _json_objects(frame: pd.DataFrame) -> pa.Array:
    """One JSON object per row, built column-wise in Arrow: pandas' to_json takes seconds a
    million rows. The generator's text (ids, fixed words, ISO times) never needs escaping."""
    parts: list[object] = []
    for position, name in enumerate(frame.columns):
        values = pa.array(frame[name], from_pandas=True)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = pc.binary_join_element_wise('"', values.cast(pa.string()), '"', "")
        else:
            values = pc.cast(values, pa.string())
        parts += [("{" if position == 0 else ",") + f'"{name}":', pc.fill_null(values, "null")]
    return pc.binary_join_element_wise(*parts, "}", "")

"""The customers generator: seeded files in the spec's shape, dirty rows the spec's rules
reject, and structure a model can learn (a label rate in range, history beating the last
amount alone)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from lifeboat.datasets import load_spec
from lifeboat.datasets.spec import TableSpec
from lifeboat.features.aggregates import CUTOFF, cutoff_times, future_labels, point_in_time
from lifeboat.synthetic import GENERATORS
from lifeboat.synthetic.customers import (
    DIRTY_SHARE,
    generate_customers,
    write_customers,
)

CUSTOMERS, TRANSACTIONS = 3000, 150_000


@pytest.fixture(scope="module")
def spec():
    return load_spec("customers")


@pytest.fixture(scope="module")
def generated() -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    table, months = generate_customers(CUSTOMERS, TRANSACTIONS, seed=0)
    return table, list(months)


@pytest.fixture(scope="module")
def transactions(generated) -> pd.DataFrame:
    return pd.concat(generated[1], ignore_index=True)


def broken_rules(frame: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """Per row and column, True where a value breaks the table's rules: its type, a range,
    the allowed values, a required value; the key column also flags a key seen before."""
    broken = pd.DataFrame(False, index=frame.index, columns=list(table.columns))
    for name, column in table.columns.items():
        raw = frame[name]
        missing = raw.isna() | raw.astype(str).isin(table.missing_values)
        value = raw
        if column.type in ("integer", "float"):
            value = pd.to_numeric(raw, errors="coerce")
        elif column.type == "datetime":
            value = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
        bad = ~missing & value.isna()
        if column.type == "integer":
            bad |= ~missing & (value % 1 != 0)
        if column.min is not None:
            bad |= value < column.min
        if column.max is not None:
            bad |= value > column.max
        if column.allowed is not None:
            bad |= ~missing & ~raw.isin(column.allowed)
        if column.required:
            bad |= missing
        broken[name] = bad.fillna(False).to_numpy(bool)
    key = table.entity.key
    valid = ~broken.any(axis=1)
    broken[key] |= valid & frame[key].where(valid).duplicated() & frame[key].notna()
    return broken


def test_files_are_byte_identical_for_a_seed_and_differ_for_another(tmp_path: Path) -> None:
    small = {"customers": 200, "transactions": 5_000}
    first = write_customers(tmp_path / "a", 3, **small)
    again = write_customers(tmp_path / "b", 3, **small)
    other = write_customers(tmp_path / "c", 4, **small)
    assert [path.name for path in first] == ["customers.csv", "transactions.json"]
    for one, two, three in zip(first, again, other):
        assert one.read_bytes() == two.read_bytes()
        assert one.read_bytes() != three.read_bytes()


def test_json_lines_and_the_json_array_hold_the_same_transactions(tmp_path: Path,
                                                                  spec) -> None:
    small = {"customers": 100, "transactions": 3_000}
    lines = write_customers(tmp_path / "lines", 1, **small)[1]
    array = write_customers(tmp_path / "array", 1, json_format="array", **small)[1]
    from_lines = [json.loads(line) for line in lines.read_text().splitlines()]
    from_array = json.loads(array.read_text())
    assert from_lines == from_array and len(from_array) == 3_000
    assert list(from_array[0]) == list(spec.events.columns)
    assert lines.read_text().endswith("}\n")


def test_written_files_are_the_generated_frames(tmp_path: Path, generated,
                                                transactions) -> None:
    customers_csv, transactions_json = write_customers(tmp_path, 0)
    table = pd.read_csv(customers_csv, dtype=str, keep_default_na=False)
    expected = generated[0].astype(str)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    written = pd.DataFrame([json.loads(line) for line in transactions_json.open()])
    assert len(written) == TRANSACTIONS
    assert written["transaction_id"].tolist() == transactions["transaction_id"].tolist()
    np.testing.assert_array_equal(written["amount"].to_numpy(float),
                                  transactions["amount"].to_numpy(float))
    assert written["customer_id"].isna().sum() == transactions["customer_id"].isna().sum() > 0


def test_the_generator_the_spec_names_writes_the_default_sizes(tmp_path: Path, spec) -> None:
    customers_csv, transactions_json = GENERATORS[spec.generated_by](tmp_path, 0)
    assert customers_csv.name == "customers.csv"
    assert sum(1 for _ in customers_csv.open()) == CUSTOMERS + 1
    assert sum(1 for _ in transactions_json.open()) == TRANSACTIONS


def test_columns_and_text_formats_follow_the_spec(generated, transactions, spec) -> None:
    table, _ = generated
    assert list(table.columns) == list(spec.columns)
    assert list(transactions.columns) == list(spec.events.columns)
    assert table["signup_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    iso = transactions["timestamp"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
    assert iso.mean() > 0.998 and not iso.all()  # the few others are the unreadable ones
    assert table["customer_id"].is_unique and table["email"].is_unique


def test_exactly_the_dirty_rows_break_a_rule_one_of_each_kind(generated, transactions,
                                                              spec) -> None:
    table, months = generated
    broken = broken_rules(transactions, spec.events)
    planted = sum(round(DIRTY_SHARE * len(month)) for month in months)
    assert broken.any(axis=1).sum() == planted
    assert broken.sum(axis=1).max() == 1  # one fault per dirty row
    for column in ("transaction_id", "customer_id", "amount", "timestamp", "status"):
        assert broken[column].sum() > planted / 10, column
    assert (transactions.loc[broken["amount"], "amount"] < 0).all()

    customers_broken = broken_rules(table, spec)
    assert customers_broken.any(axis=1).sum() == round(DIRTY_SHARE * CUSTOMERS)
    assert customers_broken["age"].any() and customers_broken["region"].any()


def test_a_duplicate_copies_a_clean_row_that_comes_first(transactions, spec) -> None:
    ids = transactions["transaction_id"]
    repeated = ids[ids.duplicated(keep=False)]
    first = ~repeated.duplicated()
    assert first.sum() == len(repeated) / 2  # each id appears twice at most
    kept = transactions.loc[repeated[first].index]
    assert not broken_rules(kept, spec.events).any(axis=None)


def test_transactions_come_a_month_at_a_time_in_time_order(generated, transactions) -> None:
    _, months = generated
    assert len(months) == 24
    assert max(len(month) for month in months) < 2.5 * TRANSACTIONS / 24
    times = pd.to_datetime(transactions["timestamp"], format="ISO8601", utc=True,
                           errors="coerce").dropna()
    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp("2024-11-01", tz="UTC")
    assert times.max() < pd.Timestamp("2026-11-01", tz="UTC")
    numbers = transactions["transaction_id"].str[1:].astype(int)
    assert (numbers.diff().dropna() >= -1).all()  # numbered as they happen (duplicates: -1)


def test_nobody_buys_before_signing_up(generated, transactions) -> None:
    table, _ = generated
    signup = pd.to_datetime(table.set_index("customer_id")["signup_date"], utc=True)
    times = pd.to_datetime(transactions["timestamp"], format="ISO8601", utc=True,
                           errors="coerce")
    known = times.notna() & transactions["customer_id"].notna()
    assert (times[known] >= signup.reindex(transactions["customer_id"][known]).to_numpy()).all()
    assert (signup > pd.Timestamp("2024-11-01", tz="UTC")).mean() > 0.2  # some sign up later


def test_statuses_and_payment_methods_have_realistic_shares(transactions) -> None:
    share = transactions["status"].value_counts(normalize=True)
    assert 0.90 < share["completed"] < 0.94
    assert 0.04 < share["refunded"] < 0.065
    assert 0.02 < share["failed"] < 0.04
    methods = transactions["payment_method"].value_counts(normalize=True)
    assert methods.index[0] == "card" and methods["gift_card"] < 0.1


def test_purchases_peak_in_november_december_and_at_weekends(transactions) -> None:
    times = pd.to_datetime(transactions["timestamp"], format="ISO8601", utc=True,
                           errors="coerce").dropna()
    per_day = times.dt.floor("D").value_counts()
    months = per_day.groupby(per_day.index.month).mean()
    assert months[[11, 12]].mean() > 1.25 * months.drop([11, 12]).mean()
    weekdays = per_day.groupby(per_day.index.day_of_week).mean()
    assert weekdays[[4, 5]].mean() > 1.15 * weekdays[[0, 1]].mean()


def test_amounts_are_skewed_and_mostly_below_the_threshold(transactions) -> None:
    amount = transactions["amount"][transactions["amount"] > 0]
    assert amount.mean() > 1.3 * amount.median()
    assert 0.05 < (amount > 300).mean() < 0.3
    assert amount.max() <= 100_000  # the spec's maximum


def test_some_customers_trend_up_and_some_down(transactions) -> None:
    times = pd.to_datetime(transactions["timestamp"], format="ISO8601", utc=True,
                           errors="coerce")
    second_year = times >= pd.Timestamp("2025-11-01", tz="UTC")
    counts = pd.crosstab(transactions["customer_id"], second_year)
    busy = counts[(counts[False] >= 10)]
    ratio = busy[True] / busy[False]
    assert (ratio > 2).mean() > 0.05 and (ratio < 0.5).mean() > 0.05


def test_loyalty_points_follow_spend(generated, transactions) -> None:
    table, _ = generated
    completed = transactions[transactions["status"] == "completed"]
    spend = completed.groupby("customer_id")["amount"].sum()
    points = table.set_index("customer_id")["loyalty_points"].reindex(spend.index)
    assert points.corr(spend, method="spearman") > 0.5
    assert (table["loyalty_points"] >= 0).all()


def test_large_purchases_are_learnable_from_history_more_than_from_the_last_amount(
        generated, transactions, spec) -> None:
    table, _ = generated
    broken = broken_rules(transactions, spec.events).any(axis=1)
    events = transactions[~broken].assign(
        timestamp=pd.to_datetime(transactions["timestamp"][~broken], utc=True))
    entities = table[~broken_rules(table, spec).any(axis=1)].assign(
        signup_date=lambda frame: pd.to_datetime(frame["signup_date"], utc=True))
    frame = point_in_time(spec, entities, events, cutoff_times(spec, events["timestamp"].max()))
    labels = future_labels(spec, events, frame)
    assert 0.15 <= labels.mean() <= 0.35

    held_out = (frame[CUTOFF] == frame[CUTOFF].max()).to_numpy()

    def auc(columns: list[str]) -> float:
        model = HistGradientBoostingClassifier(random_state=0, max_iter=100)
        model.fit(frame.loc[~held_out, columns].astype(float), labels[~held_out])
        scores = model.predict_proba(frame.loc[held_out, columns].astype(float))[:, 1]
        return roc_auc_score(labels[held_out], scores)

    assert auc(spec.features.numeric) > auc(["last_amount"]) + 0.07
    assert auc(spec.features.numeric) > 0.78

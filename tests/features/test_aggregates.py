"""Point-in-time aggregates: exact values on hand-built logs, and no peeking past the cut-off.

Most tests use a spec with its own names (members and their visits), so nothing in the engine
may lean on the customers dataset's columns; the leakage test uses the real customers spec
on generated data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.features.aggregates import CUTOFF, cutoff_times, future_labels, point_in_time
from lifeboat.synthetic.customers import generate_customers

DAY = 86_400.0  # seconds
JUNE, JULY = pd.Timestamp("2024-06-01", tz="UTC"), pd.Timestamp("2024-07-01", tz="UTC")


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return DatasetSpec.model_validate({
        "name": "members",
        "table": "members",
        "entity": {"key": "member", "since": "joined"},
        "columns": {"member": {"type": "string", "required": True},
                    "joined": {"type": "datetime"},
                    "plan": {"type": "string"},
                    "outcome": {"type": "integer"}},
        "events": {"name": "visits", "table": "visits", "match": "visits*",
                   "entity": {"key": "visit"}, "join_key": "member_ref", "time": "at",
                   "columns": {"visit": {"type": "string"}, "member_ref": {"type": "string"},
                               "at": {"type": "datetime"}, "spent": {"type": "float"},
                               "kind": {"type": "string"}}},
        "aggregates": {
            "buys": {"function": "count", "where": {"kind": "buy"}},
            "spent_total": {"function": "sum", "column": "spent"},
            "average_buy": {"function": "mean", "column": "spent", "where": {"kind": "buy"}},
            "cheapest": {"function": "min", "column": "spent",
                         "where": {"kind": ["buy", "gift"]}},
            "dearest": {"function": "max", "column": "spent", "where": {"kind": "buy"}},
            "last_spent": {"function": "last", "column": "spent"},
            "idle_days": {"function": "days_since_last", "where": {"kind": "buy"}},
            "buy_trend": {"function": "trend", "column": "spent", "where": {"kind": "buy"},
                          "window_days": 30},
            "recent_buys": {"function": "count", "where": {"kind": "buy"}, "window_days": 30},
            "recent_dearest": {"function": "max", "column": "spent", "where": {"kind": "buy"},
                               "window_days": 30},
            "recent_cheapest": {"function": "min", "column": "spent", "window_days": 30},
            "membership_days": {"function": "days_since", "column": "joined"},
        },
        "label": {"where": {"kind": "buy"}, "column": "spent", "above": 100,
                  "horizon_days": 30, "cutoffs": {"every_days": 30, "count": 2}},
        "target": {"column": "big_buy", "labels": {0: "no", 1: "yes"}},
        "features": {"builder": "columns", "view": "member_activity", "numeric": ["buys"],
                     "categorical": ["plan"]},
    })


def _times(*texts: str) -> pd.Series:
    return pd.to_datetime(pd.Series(texts), utc=True)


@pytest.fixture
def members() -> pd.DataFrame:
    """m3 joins after June's cut-off; m4 never visits."""
    return pd.DataFrame({
        "member": pd.Series(["m1", "m2", "m3", "m4"], dtype=object),
        "joined": _times("2024-01-01", "2024-01-01", "2024-06-15", "2024-03-01"),
        "plan": pd.Series(["gold", "basic", "basic", "gold"], dtype=object),
    })


@pytest.fixture
def visits() -> pd.DataFrame:
    """m1's June buys sit on both edges: one exactly at the cut-off (counts), one a second
    after it (does not, and is a big buy for the label); one sits exactly on a window edge."""
    rows = [
        ("m1", "2024-03-01T10:00:00Z", 10.0, "buy"),
        ("m1", "2024-04-10T00:00:00Z", 30.0, "buy"),
        ("m1", "2024-04-15T00:00:00Z", 5.0, "return"),
        ("m1", "2024-05-02T00:00:00Z", 3.0, "buy"),     # June cut-off - 30 days exactly
        ("m1", "2024-05-31T23:59:59Z", 20.0, "buy"),
        ("m1", "2024-06-01T00:00:00Z", 40.0, "buy"),    # exactly at June's cut-off
        ("m1", "2024-06-01T00:00:01Z", 1000.0, "buy"),  # just after it
        ("m2", "2024-02-10T08:00:00Z", 7.0, "gift"),
        ("m3", "2024-06-20T00:00:00Z", 50.0, "buy"),
        ("m9", "2024-05-01T00:00:00Z", 999.0, "buy"),   # no such member
    ]
    frame = pd.DataFrame(rows, columns=["member_ref", "at", "spent", "kind"]).astype(
        {"member_ref": object, "kind": object})
    return frame.assign(at=pd.to_datetime(frame["at"], utc=True))


def _row(frame: pd.DataFrame, member: str, cutoff: pd.Timestamp) -> pd.Series:
    found = frame[(frame["member"] == member) & (frame[CUTOFF] == cutoff)]
    assert len(found) == 1, f"{member} at {cutoff}: {len(found)} rows"
    return found.iloc[0]


def test_every_function_has_its_exact_value_at_a_cutoff(spec, members, visits) -> None:
    m1 = _row(point_in_time(spec, members, visits, [JUNE]), "m1", JUNE)
    assert m1["buys"] == 5  # 10, 30, 3, 20 and 40: the return is not a buy, the 1000 is later
    assert m1["spent_total"] == pytest.approx(108.0)
    assert m1["average_buy"] == pytest.approx(103 / 5)
    assert m1["cheapest"] == 3.0
    assert m1["dearest"] == 40.0
    assert m1["last_spent"] == 40.0
    assert m1["idle_days"] == 0.0
    # (May 2, June 1]: 20 + 40; (April 2, May 2]: 30 + 3 (May 2 closes the older window).
    assert m1["buy_trend"] == pytest.approx(60 - 33)
    assert m1["recent_buys"] == 2
    assert m1["recent_dearest"] == 40.0
    assert m1["recent_cheapest"] == 20.0
    assert m1["membership_days"] == 152.0  # 2024 is a leap year


def test_an_entity_without_matching_events_counts_zero_and_has_no_mean(spec, members,
                                                                       visits) -> None:
    frame = point_in_time(spec, members, visits, [JUNE])
    m2, m4 = _row(frame, "m2", JUNE), _row(frame, "m4", JUNE)
    assert (m2["buys"], m2["spent_total"], m2["cheapest"], m2["last_spent"]) == (0, 7, 7, 7)
    assert m2["buy_trend"] == 0.0 and m2["recent_buys"] == 0.0
    for column in ("average_buy", "dearest", "idle_days", "recent_dearest", "recent_cheapest"):
        assert np.isnan(m2[column]), column
    assert (m4["buys"], m4["spent_total"], m4["buy_trend"]) == (0, 0, 0)
    assert np.isnan(m4["last_spent"]) and np.isnan(m4["idle_days"])
    assert m4["membership_days"] == 92.0


def test_days_since_last_counts_fractions_of_a_day(spec, members, visits) -> None:
    frame = point_in_time(spec, members, visits, [JULY])
    assert _row(frame, "m1", JULY)["idle_days"] == pytest.approx(30 - 1 / DAY)
    assert _row(frame, "m3", JULY)["idle_days"] == pytest.approx(11.0)
    assert _row(frame, "m3", JULY)["membership_days"] == 16.0


def test_entities_appear_from_their_start_on_oldest_cutoff_first(spec, members,
                                                                visits) -> None:
    frame = point_in_time(spec, members, visits, [JULY, JUNE])
    assert frame[CUTOFF].tolist() == [JUNE] * 3 + [JULY] * 4
    assert frame["member"].tolist() == ["m1", "m2", "m4", "m1", "m2", "m3", "m4"]
    assert "m9" not in set(frame["member"])
    assert list(frame.columns[:4]) == ["member", CUTOFF, "joined", "plan"]
    assert list(frame.columns[4:]) == list(spec.aggregates)
    assert all(frame[name].dtype == np.float64 for name in spec.aggregates)


def test_an_entity_with_no_start_time_never_appears(spec, members, visits) -> None:
    members.loc[1, "joined"] = pd.NaT
    assert "m2" not in set(point_in_time(spec, members, visits, [JUNE])["member"])


def test_where_keeps_the_listed_values_only(spec, members, visits) -> None:
    visits.loc[visits["kind"] == "gift", "kind"] = "buy"
    m2 = _row(point_in_time(spec, members, visits, [JUNE]), "m2", JUNE)
    assert (m2["buys"], m2["average_buy"], m2["cheapest"]) == (1, 7.0, 7.0)
    visits.loc[visits["member_ref"] == "m2", "kind"] = "voucher"
    m2 = _row(point_in_time(spec, members, visits, [JUNE]), "m2", JUNE)
    assert m2["buys"] == 0 and np.isnan(m2["cheapest"]) and m2["spent_total"] == 7.0


def test_events_without_a_time_or_value_are_left_out(spec, members, visits) -> None:
    visits.loc[0, "at"] = pd.NaT  # m1's 10.0 buy
    visits.loc[1, "spent"] = np.nan  # m1's 30.0 buy: still a buy, no longer an amount
    m1 = _row(point_in_time(spec, members, visits, [JUNE]), "m1", JUNE)
    assert m1["buys"] == 4
    assert m1["average_buy"] == pytest.approx(63 / 3)
    assert m1["spent_total"] == pytest.approx(68.0)


def test_ties_in_time_make_the_later_row_the_last(spec, members, visits) -> None:
    tie = pd.DataFrame({"member_ref": ["m4", "m4"], "at": _times("2024-05-05", "2024-05-05"),
                        "spent": [1.0, 2.0], "kind": ["buy", "buy"]})
    frame = point_in_time(spec, members, pd.concat([visits, tie], ignore_index=True), [JUNE])
    assert _row(frame, "m4", JUNE)["last_spent"] == 2.0


def test_typed_inputs_as_the_database_returns_them_are_accepted(spec, members,
                                                               visits) -> None:
    """Arrow-backed text, nullable numbers, other time units and zones: the same values."""
    expected = point_in_time(spec, members, visits, [JUNE])
    typed_visits = visits.astype({"member_ref": "str", "kind": "str", "spent": "Float64"})
    typed_visits["at"] = typed_visits["at"].dt.tz_convert("Europe/Berlin").dt.as_unit("us")
    typed_members = members.astype({"member": "str", "plan": "str"})
    found = point_in_time(spec, typed_members, typed_visits, [JUNE.tz_convert(None)])
    pd.testing.assert_frame_equal(found[list(spec.aggregates)], expected[list(spec.aggregates)])


def test_whole_number_join_keys_match_text_entity_keys(spec, members, visits) -> None:
    members["member"] = ["1", "2", "3", "4"]
    visits["member_ref"] = visits["member_ref"].str[1:].astype("Int64")
    m1 = _row(point_in_time(spec, members, visits, [JUNE]), "1", JUNE)
    assert m1["buys"] == 5


def test_no_cutoffs_give_an_empty_frame_with_every_column(spec, members, visits) -> None:
    frame = point_in_time(spec, members, visits, [])
    assert frame.empty and list(frame.columns[4:]) == list(spec.aggregates)


def test_labels_look_at_the_horizon_after_the_cutoff_only(spec, members, visits) -> None:
    frame = point_in_time(spec, members, visits, [JUNE, JULY])
    labels = future_labels(spec, visits, frame)
    assert labels.index.equals(frame.index) and labels.name == "big_buy"
    by_row = dict(zip(zip(frame["member"], frame[CUTOFF]), labels))
    assert by_row == {("m1", JUNE): 1, ("m2", JUNE): 0, ("m4", JUNE): 0,
                      ("m1", JULY): 0, ("m2", JULY): 0, ("m3", JULY): 0, ("m4", JULY): 0}


@pytest.mark.parametrize(("moment", "label"), [
    ("2024-06-01T00:00:00Z", 0),   # at the cut-off: already known, not future
    ("2024-07-01T00:00:00Z", 1),   # cut-off + 30 days: the horizon's last moment
    ("2024-07-01T00:00:01Z", 0),   # past the horizon
])
def test_the_horizon_is_open_at_the_cutoff_and_closed_at_its_end(spec, members, moment,
                                                                 label) -> None:
    visits = pd.DataFrame({"member_ref": ["m4"], "at": _times(moment), "spent": [500.0],
                           "kind": ["buy"]})
    frame = point_in_time(spec, members, visits, [JUNE])
    assert future_labels(spec, visits, frame)[frame["member"] == "m4"].tolist() == [label]


def test_labels_need_the_kind_and_an_amount_above_the_threshold(spec, members) -> None:
    visits = pd.DataFrame({"member_ref": ["m1", "m2", "m4"],
                           "at": _times("2024-06-10", "2024-06-10", "2024-06-10"),
                           "spent": [100.0, 5000.0, 100.01], "kind": ["buy", "return", "buy"]})
    frame = point_in_time(spec, members, visits, [JUNE])
    assert future_labels(spec, visits, frame).tolist() == [0, 0, 1]


def test_cutoffs_end_a_horizon_before_the_newest_event_at_midnight() -> None:
    spec = load_spec("customers")
    expected = [pd.Timestamp(day, tz="UTC") for day in
                ("2026-05-04", "2026-06-03", "2026-07-03", "2026-08-02", "2026-09-01",
                 "2026-10-01")]
    assert cutoff_times(spec, pd.Timestamp("2026-10-31T15:30:00Z")) == expected
    assert cutoff_times(spec, pd.Timestamp("2026-10-31T15:30:00")) == expected  # naive: UTC
    in_utc_the_day_before = pd.Timestamp("2026-10-31T02:00:00+05:00")
    assert cutoff_times(spec, in_utc_the_day_before)[-1] == pd.Timestamp("2026-09-30", tz="UTC")


def test_a_spec_without_a_label_has_no_cutoffs(titanic: DatasetSpec) -> None:
    with pytest.raises(ValueError, match="no label"):
        cutoff_times(titanic, pd.Timestamp("2026-01-01", tz="UTC"))


@pytest.fixture(scope="module")
def customers_log() -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 generated customers and their clean transactions, typed as the database has them."""
    table, months = generate_customers(300, 15_000, seed=5)
    transactions = pd.concat(list(months), ignore_index=True)
    when = pd.to_datetime(transactions["timestamp"], format="ISO8601", utc=True, errors="coerce")
    clean = (when.notna() & transactions["customer_id"].notna() & (transactions["amount"] >= 0)
             & transactions["status"].isin(["completed", "refunded", "failed"]))
    events = transactions[clean].assign(timestamp=when[clean]).reset_index(drop=True)
    entities = table.assign(signup_date=pd.to_datetime(table["signup_date"], utc=True),
                            age=table["age"].astype("Int64"))
    return entities, events


def test_transactions_after_the_cutoff_change_labels_and_no_feature(customers_log) -> None:
    """The leakage test: flood every customer's future with huge purchases (20 within the
    horizon, the first a nanosecond after the last cut-off) and, beyond it, a year of huge
    purchases, refunds and failures."""
    spec = load_spec("customers")
    entities, events = customers_log
    cutoffs = cutoff_times(spec, events["timestamp"].max())
    before = point_in_time(spec, entities, events, cutoffs)
    labels_before = future_labels(spec, events, before)

    rng = np.random.default_rng(0)
    each, customers = 20, len(entities)
    horizon, year = 30 * 86_400 * 10**9, 365 * 86_400 * 10**9
    soon = np.r_[1, rng.integers(1, horizon, each * customers - 1)]
    later = rng.integers(horizon + 1, year, each * customers)
    after = pd.DataFrame({
        "transaction_id": [f"X{number}" for number in range(2 * each * customers)],
        "customer_id": np.tile(np.repeat(entities["customer_id"].to_numpy(), each), 2),
        "amount": rng.uniform(20_000, 99_000, 2 * each * customers),
        "currency": "USD",
        "timestamp": cutoffs[-1] + pd.to_timedelta(np.r_[soon, later], unit="ns"),
        "payment_method": "card",
        "status": np.r_[np.full(each * customers, "completed"),
                        rng.choice(["completed", "refunded", "failed"], each * customers)],
    })
    flooded = pd.concat([events, after], ignore_index=True)
    assert after["timestamp"].min() == cutoffs[-1] + pd.Timedelta(1, "ns")
    now = point_in_time(spec, entities, flooded, cutoffs)
    pd.testing.assert_frame_equal(now, before)

    labels_now = future_labels(spec, flooded, now)
    latest = (now[CUTOFF] == cutoffs[-1]).to_numpy()
    assert labels_before[latest].mean() < 0.5
    assert labels_now[latest].all()  # each customer got completed purchases within 30 days
    assert labels_now[~latest].equals(labels_before[~latest])


def test_customer_features_move_with_the_cutoff(customers_log) -> None:
    """The same customers a month later: the cut-off is really applied, not ignored."""
    spec = load_spec("customers")
    entities, events = customers_log
    cutoffs = cutoff_times(spec, events["timestamp"].max())
    frame = point_in_time(spec, entities, events, cutoffs[-2:])
    early, late = (frame[frame[CUTOFF] == cutoff].set_index("customer_id") for cutoff in
                   cutoffs[-2:])
    shared = early.index
    assert (late.loc[shared, "completed_count"] >= early["completed_count"]).all()
    assert (late.loc[shared, "completed_count"] > early["completed_count"]).mean() > 0.5
    assert (late.loc[shared, "tenure_days"] - early["tenure_days"] == 30).all()
    assert len(late) >= len(early)

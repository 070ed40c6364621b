"""The synthetic passenger generator: seeded, realistic, valid, shiftable, corruptible."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.datasets import DatasetSpec
from lifeboat.ingest.reader import read_chunks
from lifeboat.synthetic.passengers import (
    FORMULA_INJECTION,
    TITANIC3_COLUMNS,
    Shift,
    inject_errors,
    synthetic_passengers,
    write_passengers,
)
from lifeboat.validation import RowIssue, validate_chunk

ROWS = 10_000
FORMULA_NAMES = 12


@pytest.fixture(scope="module")
def real(titanic: DatasetSpec) -> pd.DataFrame:
    return pd.read_csv(titanic.bundled_path(), na_values=["?"], keep_default_na=False)


@pytest.fixture(scope="module")
def passengers() -> pd.DataFrame:
    return synthetic_passengers(ROWS, seed=7)


@pytest.fixture(scope="module")
def corruption(passengers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return inject_errors(passengers, rate=0.1, seed=3, formula_names=FORMULA_NAMES)


def _errors(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[truth["issue"] != FORMULA_INJECTION]


def _with_surname(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(surname=frame["name"].str.split(",").str[0])


def test_same_seed_gives_the_same_frame_and_another_seed_another() -> None:
    first = synthetic_passengers(500, seed=1)
    pd.testing.assert_frame_equal(first, synthetic_passengers(500, seed=1))
    assert not first.equals(synthetic_passengers(500, seed=2))


@pytest.mark.parametrize("rows", [0, 1, 17, 1309, 4_001])
def test_row_count_is_exactly_what_was_asked(rows: int) -> None:
    assert len(synthetic_passengers(rows, seed=rows)) == rows


def test_columns_are_titanic3_in_order(passengers: pd.DataFrame) -> None:
    assert list(passengers.columns) == list(TITANIC3_COLUMNS)


@pytest.mark.parametrize("shift", [None, Shift(class_mix=(0.8, 0.1, 0.1), female_share=0.9)])
def test_name_and_ticket_identify_every_passenger(shift: Shift | None) -> None:
    frame = synthetic_passengers(20_000, seed=11, shift=shift)
    assert not frame.duplicated(["name", "ticket"]).any()


def test_values_keep_to_the_spec(passengers: pd.DataFrame) -> None:
    age = passengers["age"].dropna()
    assert age.between(0, 100).all()
    assert (passengers["fare"].dropna() >= 0).all()
    assert set(passengers["pclass"]) <= {1, 2, 3}
    assert set(passengers["sex"]) <= {"male", "female"}
    assert set(passengers["embarked"].dropna()) <= {"C", "Q", "S"}
    for count in ("sibsp", "parch"):
        assert pd.api.types.is_integer_dtype(passengers[count])
        assert (passengers[count] >= 0).all()


def _validated(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Good rows and issues, as ingestion would find them in the frame written as CSV."""
    content = frame.to_csv(index=False).encode()
    chunks = read_chunks(lambda: io.BytesIO(content), spec)
    seen: set[str] = set()
    parts = [validate_chunk(chunk, spec, seen) for chunk in chunks.chunks]
    assert chunks.malformed == []
    return (pd.concat([part.good for part in parts], ignore_index=True),
            pd.concat([part.issues for part in parts], ignore_index=True))


def test_validation_accepts_every_row(passengers: pd.DataFrame, titanic: DatasetSpec) -> None:
    good, issues = _validated(passengers, titanic)
    assert issues.empty
    assert len(good) == ROWS


def test_names_are_real_parts_recombined(passengers: pd.DataFrame, real: pd.DataFrame) -> None:
    parts = passengers["name"].str.extract(r"^(?P<surname>[^,]+), (?P<given>(?P<title>[^.]+)\..*)$")
    real_parts = real["name"].str.extract(r"^(?P<surname>[^,]+), (?P<given>.*)$")
    assert parts.notna().all().all()
    assert parts["surname"].isin(set(real_parts["surname"])).all()
    assert parts["given"].isin(set(real_parts["given"])).all()
    assert passengers["name"].isin(set(real["name"])).mean() < 0.05
    sex_of_title = {"Mr": "male", "Master": "male", "Mrs": "female", "Miss": "female"}
    expected_sex = parts["title"].map(sex_of_title)
    known = expected_sex.notna()
    assert (passengers["sex"][known] == expected_sex[known]).all()


def test_travel_groups_are_kept_but_never_joined_to_real_ones(passengers: pd.DataFrame,
                                                              real: pd.DataFrame) -> None:
    def share_travelling_together(frame: pd.DataFrame, *group: str) -> float:
        return float(frame.groupby(list(group))["name"].transform("size").gt(1).mean())

    for group in (["ticket"], ["surname", "fare"]):  # the two kinds of travel group features use
        synthetic = share_travelling_together(_with_surname(passengers), *group)
        assert synthetic == pytest.approx(share_travelling_together(_with_surname(real), *group),
                                          abs=0.03)
    by_ticket = passengers.groupby("ticket")
    assert (by_ticket["pclass"].nunique() == 1).all()
    # One real ticket (7534) lists two fares; every other group keeps a single fare.
    assert (by_ticket["fare"].nunique(dropna=False) == 1).mean() > 0.99
    assert not passengers["ticket"].isin(set(real["ticket"])).any()


def test_survival_class_mix_and_missing_ages_match_the_real_list(passengers: pd.DataFrame,
                                                                 real: pd.DataFrame) -> None:
    assert passengers["survived"].mean() == pytest.approx(real["survived"].mean(), abs=0.03)
    assert passengers["age"].isna().mean() == pytest.approx(real["age"].isna().mean(), abs=0.03)
    synthetic_mix = passengers["pclass"].value_counts(normalize=True).sort_index()
    real_mix = real["pclass"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(synthetic_mix, real_mix, atol=0.03)


def test_survival_still_follows_sex_and_class(passengers: pd.DataFrame,
                                              real: pd.DataFrame) -> None:
    def survival(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby(["sex", "pclass"])["survived"].mean()

    np.testing.assert_allclose(survival(passengers), survival(real), atol=0.08)


def test_default_shift_changes_nothing(passengers: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(synthetic_passengers(ROWS, seed=7, shift=Shift()), passengers)


def test_age_offset_moves_ages(passengers: pd.DataFrame) -> None:
    older = synthetic_passengers(ROWS, seed=7, shift=Shift(age_offset=10))
    assert older["age"].mean() - passengers["age"].mean() == pytest.approx(10, abs=0.5)
    assert older["age"].isna().sum() == passengers["age"].isna().sum()
    assert older["age"].max() <= 100


def test_fare_factor_scales_fares(passengers: pd.DataFrame) -> None:
    dearer = synthetic_passengers(ROWS, seed=7, shift=Shift(fare_factor=2.0))
    assert dearer["fare"].median() / passengers["fare"].median() == pytest.approx(2, rel=0.01)


def test_class_mix_is_met_in_rows() -> None:
    frame = synthetic_passengers(20_000, seed=5, shift=Shift(class_mix=(0.6, 0.3, 0.1)))
    mix = frame["pclass"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(mix, [0.6, 0.3, 0.1], atol=0.02)


def test_female_share_is_met_in_every_class_alongside_the_class_mix() -> None:
    shift = Shift(class_mix=(0.2, 0.2, 0.6), female_share=0.7)
    frame = synthetic_passengers(20_000, seed=5, shift=shift)
    female = frame["sex"] == "female"
    assert female.mean() == pytest.approx(0.7, abs=0.02)
    np.testing.assert_allclose(female.groupby(frame["pclass"]).mean(), 0.7, atol=0.03)
    mix = frame["pclass"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(mix, [0.2, 0.2, 0.6], atol=0.02)


@pytest.mark.parametrize("arguments", [
    {"fare_factor": -1.0},
    {"class_mix": (0.5, 0.5, 0.5)},
    {"class_mix": (1.2, -0.2, 0.0)},
    {"class_mix": (0.5, 0.5)},
    {"female_share": 1.5},
])
def test_impossible_shifts_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Shift(**arguments)


def test_errors_touch_exactly_the_asked_share_of_rows(
        passengers: pd.DataFrame, corruption: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, truth = corruption
    errors = _errors(truth)
    assert len(errors) == round(0.1 * ROWS)
    assert truth["row"].is_unique
    assert (truth["issue"] == FORMULA_INJECTION).sum() == FORMULA_NAMES


def test_every_kind_appears(corruption: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    # Malformed lines are a property of a file's text, and an already-loaded key of the
    # database, not of a frame, so neither is injected.
    expected = ({kind.value for kind in RowIssue} - {RowIssue.MALFORMED_ROW, RowIssue.ALREADY_LOADED}
                | {FORMULA_INJECTION})
    assert set(corruption[1]["issue"]) == expected


def test_truth_matches_the_corrupted_cells(corruption: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    corrupted, truth = corruption
    for injected in truth.itertuples():
        if injected.issue == RowIssue.DUPLICATE_KEY:
            assert injected.column == "passenger_id"
            assert injected.copies_row < injected.row
            assert injected.copies_row not in set(truth["row"])
            key = corrupted[["name", "ticket"]]
            assert key.iloc[injected.row].tolist() == key.iloc[injected.copies_row].tolist()
        elif injected.value is None:
            assert pd.isna(corrupted[injected.column].iloc[injected.row])
        else:
            assert corrupted[injected.column].iloc[injected.row] == injected.value


def test_formula_names_start_like_formulas_and_keep_the_name(
        passengers: pd.DataFrame, corruption: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    corrupted, truth = corruption
    formulas = truth[truth["issue"] == FORMULA_INJECTION]
    names = corrupted["name"].iloc[formulas["row"]]
    assert names.str[0].isin(["=", "+", "-", "@"]).all()
    originals = passengers["name"].iloc[formulas["row"]]
    assert all(original in name for original, name in zip(originals, names))


def test_rows_not_in_the_truth_are_untouched(
        passengers: pd.DataFrame, corruption: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    corrupted, truth = corruption
    untouched = ~np.isin(np.arange(ROWS), truth["row"])

    def as_text(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.astype(object).where(frame.notna(), None).astype(str)

    pd.testing.assert_frame_equal(as_text(corrupted[untouched]), as_text(passengers[untouched]))


def test_validation_finds_exactly_the_injected_errors_and_keeps_formula_names(
        corruption: tuple[pd.DataFrame, pd.DataFrame], titanic: DatasetSpec) -> None:
    corrupted, truth = corruption
    good, issues = _validated(corrupted, titanic)
    errors = _errors(truth)
    expected = set(zip(errors["row"] + 1, errors["column"], errors["issue"].astype(str)))
    assert set(zip(issues["row"], issues["column"], issues["issue"].astype(str))) == expected
    assert len(good) == len(corrupted) - len(errors)
    assert good["name"].str[0].isin(["=", "+", "-", "@"]).sum() == FORMULA_NAMES


def test_injection_is_seeded_and_a_zero_rate_changes_nothing(passengers: pd.DataFrame) -> None:
    frame = passengers.head(300)
    first, first_truth = inject_errors(frame, rate=0.2, seed=1)
    again, again_truth = inject_errors(frame, rate=0.2, seed=1)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first_truth, again_truth)
    untouched, truth = inject_errors(frame, rate=0.0)
    assert truth.empty
    pd.testing.assert_frame_equal(untouched, frame)


@pytest.mark.parametrize(("rate", "formula_names"), [(-0.1, 0), (1.1, 0), (0.5, 10_000)])
def test_impossible_injections_are_refused(passengers: pd.DataFrame, rate: float,
                                           formula_names: int) -> None:
    with pytest.raises(ValueError):
        inject_errors(passengers, rate=rate, formula_names=formula_names)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_written_files_read_back_the_same(passengers: pd.DataFrame, tmp_path: Path,
                                          suffix: str) -> None:
    path = write_passengers(passengers, tmp_path / f"passengers{suffix}")
    if suffix == ".parquet":
        back = pd.read_parquet(path)
    else:
        back = pd.read_csv(path, dtype=passengers.dtypes.to_dict(),
                           keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(back, passengers)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_corrupted_frames_can_be_written(corruption: tuple[pd.DataFrame, pd.DataFrame],
                                         tmp_path: Path, suffix: str) -> None:
    corrupted, truth = corruption
    path = write_passengers(corrupted, tmp_path / f"bad{suffix}")
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=[""])
    rows = truth["row"].to_numpy()
    written = back["name"].iloc[rows].astype(object).where(back["name"].iloc[rows].notna(), None)
    assert written.tolist() == corrupted["name"].iloc[rows].tolist()


def test_gzip_files_carry_no_timestamp(passengers: pd.DataFrame, tmp_path: Path) -> None:
    path = write_passengers(passengers.head(50), tmp_path / "passengers.csv.gz")
    header = path.read_bytes()[:10]
    assert header[4:8] == b"\x00\x00\x00\x00"
    assert gzip.decompress(path.read_bytes()).startswith(b"pclass,survived,name")


def test_unknown_file_types_are_refused(passengers: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        write_passengers(passengers, tmp_path / "passengers.xlsx")


def test_a_large_frame_is_generated_in_process() -> None:
    frame = synthetic_passengers(200_000, seed=99)
    assert len(frame) == 200_000
    assert not frame.duplicated(["name", "ticket"]).any()

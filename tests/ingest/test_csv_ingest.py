from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import inspect, select

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, IngestionIssue, IngestionRun, dataset_table
from lifeboat.ingest import LandingZone, ingest_file, loader, row_count
from lifeboat.metrics import exposition
from lifeboat.monitoring import monitoring_summary
from lifeboat.monitoring.collector import MonitoringCollector
from lifeboat.orchestration import JobContext
from lifeboat.orchestration.jobs import ingest_counts, ingest_files
from tests.support.homes import make_settings
from tests.support.paths import EXAMPLES

KAGGLE_CSV = """PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked
1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S
2,1,1,"Cumings, Mrs. John Bradley (Florence Briggs Thayer)",female,38,1,0,PC 17599,71.2833,C85,C
3,1,3,"Heikkinen, Miss. Laina",female,26,0,0,STON/O2. 3101282,7.925,,S
"""


def _runs(database: Database) -> list[IngestionRun]:
    with database.session() as session:
        return list(session.scalars(select(IngestionRun).order_by(IngestionRun.id)))


def test_bundled_titanic_loads_once(database: Database, titanic: DatasetSpec, zone: LandingZone) -> None:
    first = ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    second = ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    assert (first.status, first.rows_loaded, first.rows_rejected) == ("succeeded", 1309, 0)
    assert second.status == "skipped"
    assert row_count(database, titanic) == 1309
    assert [run.status for run in _runs(database)] == ["succeeded", "duplicate"]
    # A first load into an empty PostgreSQL table rebuilds the primary key it dropped.
    assert inspect(database.engine).get_pk_constraint("passengers")["constrained_columns"] == [
        "passenger_id"]


def test_content_loaded_before_is_a_duplicate_run_naming_the_run_that_loaded_it(
        database: Database, titanic: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    """Every attempt is a run: a file whose content is already in leaves a `duplicate` row
    (loading nothing), which the ingest job counts and the quality chart and the rejected
    share metric leave out, as nothing of it was validated."""
    (tmp_path / "first.csv").write_text(KAGGLE_CSV)
    (tmp_path / "again.csv").write_text(KAGGLE_CSV)
    context = JobContext(make_settings(tmp_path / "home"), database, titanic)
    first = ingest_files(context, [str(tmp_path / "first.csv")], remove=False)
    again = ingest_files(context, [str(tmp_path / "again.csv")], remove=False)

    loaded, duplicate = _runs(database)
    assert (loaded.status, loaded.rows_loaded) == ("succeeded", 3)
    assert (duplicate.status, duplicate.source, duplicate.checksum) == (
        "duplicate", str(tmp_path / "again.csv"), loaded.checksum)
    assert (duplicate.rows_total, duplicate.rows_loaded, duplicate.rows_rejected) == (0, 0, 0)
    assert duplicate.finished_at is not None
    assert f"as run {loaded.id}, first.csv, loaded " in duplicate.error
    assert f"sha256 {loaded.checksum[:12]}" in duplicate.error
    assert again[0].reason == duplicate.error and row_count(database, titanic) == 3
    assert ingest_counts(first)["files_duplicate"] == 0
    assert ingest_counts(again) == {"files": 1, "rows_loaded": 0, "rows_rejected": 0,
                                    "files_rejected": 0, "files_duplicate": 1}

    assert [run.run_id for run in monitoring_summary(database, titanic.name).quality] == [
        loaded.id]
    ratio = exposition(MonitoringCollector(database, titanic.name, lambda: None))[0].decode()
    assert f'lifeboat_last_ingestion_rejected_ratio{{dataset="{titanic.name}"}} 0.0' in ratio


def test_derived_passenger_ids_never_change(database: Database, titanic: DatasetSpec,
                                            zone: LandingZone) -> None:
    """Ids live on in the tables, the feature store and the prediction log: a new release
    that derived other ids would load every passenger a second time."""
    ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    table = dataset_table(titanic)
    with database.session() as session:
        allen = session.scalar(select(table.c.passenger_id).where(
            table.c.name == "Allen, Miss. Elisabeth Walton", table.c.ticket == "24160"))
    assert allen == "9e03420f8fc86fef"


def test_same_rows_under_another_name_add_nothing(database: Database, titanic: DatasetSpec, zone: LandingZone,
                                                   tmp_path: Path) -> None:
    original = titanic.bundled_path().read_text()
    ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    reordered = tmp_path / "copy.csv"
    lines = original.splitlines()
    reordered.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    report = ingest_file(database, titanic, str(reordered), zone)
    assert (report.status, report.rows_loaded, report.rows_rejected) == ("succeeded", 0, 1309)
    assert (report.rows_duplicate, report.issues) == (1309, {"already_loaded": 1309})
    assert row_count(database, titanic) == 1309


def test_a_grown_file_under_its_old_name_loads_only_its_new_rows(
        database: Database, titanic: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    path = tmp_path / "daily.csv"
    path.write_text(KAGGLE_CSV)
    ingest_file(database, titanic, str(path), zone)
    path.write_text(KAGGLE_CSV + '4,1,1,"Futrelle, Mrs. Jacques Heath",female,35,1,0,113803,53.1,C123,S\n')
    report = ingest_file(database, titanic, str(path), zone)
    assert (report.rows_loaded, report.rows_rejected, report.rows_duplicate) == (1, 3, 3)
    assert row_count(database, titanic) == 4
    with database.session() as session:
        issues = session.execute(select(IngestionIssue.row, IngestionIssue.issue, IngestionIssue.value)
                                 .order_by(IngestionIssue.row)).all()
    assert [tuple(issue) for issue in issues] == [(1, "already_loaded", "1"), (2, "already_loaded", "2"),
                                                  (3, "already_loaded", "3")]


def test_kaggle_column_names_are_accepted(database: Database, titanic: DatasetSpec, zone: LandingZone,
                                          tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(KAGGLE_CSV)
    report = ingest_file(database, titanic, str(path), zone)
    assert report.rows_loaded == 3
    table = dataset_table(titanic)
    with database.engine.connect() as connection:
        rows = pd.read_sql(select(table).order_by(table.c.passenger_id), connection)
    assert rows["passenger_id"].tolist() == ["1", "2", "3"]
    assert rows["survived"].tolist() == [0, 1, 1]
    assert rows.loc[1, "cabin"] == "C85"
    assert pd.isna(rows.loc[0, "cabin"])


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_unparseable_rows_are_rejected_without_losing_the_good_ones(
        database: Database, titanic: DatasetSpec, tmp_path: Path, zone: LandingZone) -> None:
    loaded_before = _metric("lifeboat_ingested_rows_total", dataset="titanic", status="loaded")
    rejected_before = _metric("lifeboat_ingested_rows_total", dataset="titanic", status="rejected")
    malformed_before = _metric("lifeboat_validation_issues_total", dataset="titanic", issue="malformed_row")
    path = tmp_path / "messy.csv"
    path.write_text(
        KAGGLE_CSV
        + '4,1,1,"Futrelle, Mrs. Jacques Heath",female,old,1,0,113803,53.1,C123,S\n'
        + '5,0,7,"Allen, Mr. William Henry",male,35,0,0,373450,8.05,,S\n'
        + '6,0,3,"Moran, Mr. James",male,,0,0,330877,-8.4583,,Q\n'
        + "7,0,1,too,few,fields\n"
        + '8,0,3,"Palsson, Master. Gosta Leonard",male,2,3,1,349909,21.075,,S,extra,fields\n'
    )
    report = ingest_file(database, titanic, str(path), zone)
    assert report.status == "succeeded"
    assert report.rows_loaded == 3
    assert report.rows_rejected == 5
    assert row_count(database, titanic) == 3
    assert _metric("lifeboat_ingested_rows_total", dataset="titanic", status="loaded") - loaded_before == 3
    assert _metric("lifeboat_ingested_rows_total", dataset="titanic", status="rejected") - rejected_before == 5
    assert _metric("lifeboat_validation_issues_total", dataset="titanic", issue="malformed_row") - malformed_before == 2


def test_issues_carry_the_files_row_numbers_even_after_a_skipped_line(
        database: Database, titanic: DatasetSpec, tmp_path: Path, zone: LandingZone) -> None:
    lines = KAGGLE_CSV.splitlines()
    path = tmp_path / "skips.csv"
    path.write_text("\n".join([lines[0], lines[1], "2,1,too,few", lines[2], "3,x,y",
                               lines[3].replace(",26,", ",old,")]) + "\n")
    ingest_file(database, titanic, str(path), zone)
    with database.session() as session:
        issues = session.execute(select(IngestionIssue.row, IngestionIssue.column, IngestionIssue.issue)
                                 .order_by(IngestionIssue.row)).all()
    assert [tuple(issue) for issue in issues] == [(2, None, "malformed_row"), (4, None, "malformed_row"),
                                                  (5, "age", "wrong_type")]
    bad = pd.read_csv(next((Path(zone.url) / "bad").glob("*.bad.csv")))
    assert bad["row"].tolist() == [2, 4, 5]


def test_missing_required_column_fails_clearly(database: Database, titanic: DatasetSpec, zone: LandingZone,
                                               tmp_path: Path) -> None:
    path = tmp_path / "no_sex.csv"
    path.write_text("Pclass,Name\n1,\"A, Mr. B\"\n")
    report = ingest_file(database, titanic, str(path), zone)
    assert (report.status, report.reason) == ("rejected", "required columns missing: sex")
    assert [(run.status, run.error) for run in _runs(database)] == [("rejected", report.reason)]
    assert row_count(database, titanic) == 0
    quarantined = sorted(p.name for p in (Path(zone.url) / "bad").iterdir())
    assert quarantined == [f"no_sex.{report.checksum[:12]}.csv",
                           f"no_sex.{report.checksum[:12]}.reason.txt"]


def test_a_crash_mid_load_leaves_no_rows(database: Database, titanic: DatasetSpec, zone: LandingZone,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real_insert = loader.insert_rows

    def insert_then_crash(session, table, frame, constants, **options):  # noqa: ANN001, ANN202
        real_insert(session, table, frame, constants, **options)
        raise RuntimeError("power cut")

    monkeypatch.setattr(loader, "insert_rows", insert_then_crash)
    with pytest.raises(RuntimeError):
        ingest_file(database, titanic, str(titanic.bundled_path()), zone)
    assert row_count(database, titanic) == 0
    monkeypatch.setattr(loader, "insert_rows", real_insert)
    assert ingest_file(database, titanic, str(titanic.bundled_path()), zone).rows_loaded == 1309
    with database.session() as session:
        statuses = session.scalars(select(IngestionRun.status).order_by(IngestionRun.id)).all()
    assert statuses == ["failed", "succeeded"]


ADULT_SPEC = EXAMPLES / "adult.yaml"


def _loaded(database: Database, spec: DatasetSpec, key: str) -> pd.DataFrame:
    table = dataset_table(spec)
    with database.engine.connect() as connection:
        return pd.read_sql(select(table).order_by(table.c[key]), connection)


def test_values_are_trimmed_then_matched_to_missing_tokens_and_categories(
        database: Database, titanic: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    """titanic's missing tokens are "?" and "": " ?" is missing too, and " FEMALE " is the
    spec's `female`, " s" its `S`, in a file as in a request."""
    path = tmp_path / "spelled.csv"
    path.write_text("PassengerId,Survived,Pclass,Name,Sex,Age,Cabin,Embarked\n"
                    '1,0,3,"Braund, Mr. Owen Harris", MALE , ? , ? , s\n'
                    '2,1,1,"Cumings, Mrs. John", Female ,38,  C85 ,c\n')
    report = ingest_file(database, titanic, str(path), zone)
    assert (report.rows_loaded, report.rows_rejected) == (2, 0)
    rows = _loaded(database, titanic, "passenger_id")
    assert rows["sex"].tolist() == ["male", "female"]
    assert rows["embarked"].tolist() == ["S", "C"]
    assert pd.isna(rows.loc[0, "age"]) and pd.isna(rows.loc[0, "cabin"])
    assert rows.loc[1, "cabin"] == "C85"


@pytest.mark.parametrize(("spec_name", "key", "column", "values", "expected"), [
    (str(ADULT_SPEC), "person_id", "income", [" >50K", " <=50K", ">50k ", "other"], [1, 0, 1, 0]),
    ("titanic", "passenger_id", "survived", ["1", " true", "FALSE", "0"], [1, 1, 0, 0]),
])
def test_a_target_is_read_from_its_positive_text_or_as_0_1_and_booleans(
        database: Database, zone: LandingZone, tmp_path: Path, spec_name: str, key: str,
        column: str, values: list[str], expected: list[int]) -> None:
    spec = load_spec(spec_name)
    path = tmp_path / "targets.csv"
    path.write_text(f"{key},{column},age,name,sex,pclass,relationship\n" + "".join(
        f"{i},{value},30,\"N{i}, Mr. M\",male,3,Husband\n" for i, value in enumerate(values)))
    report = ingest_file(database, spec, str(path), zone)
    assert (report.rows_loaded, report.rows_rejected) == (len(values), 0)
    assert _loaded(database, spec, key)[column].tolist() == expected


def test_a_string_longer_than_its_max_length_is_a_bad_row(
        database: Database, titanic: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    """titanic takes the default limit (1,000 characters); the adult spec sets 100."""
    path = tmp_path / "long.csv"
    lines = KAGGLE_CSV.splitlines()
    path.write_text("\n".join([*lines[:3], lines[3].replace("Heikkinen", "H" * 1_000)]) + "\n")
    report = ingest_file(database, titanic, str(path), zone)
    assert (report.rows_loaded, report.rows_rejected) == (2, 1)
    with database.session() as session:
        issue = session.execute(select(IngestionIssue.row, IngestionIssue.column,
                                       IngestionIssue.issue, IngestionIssue.value)).one()
    assert tuple(issue)[:3] == (3, "name", "too_long") and len(issue.value) < 50
    bad = pd.read_csv(next((Path(zone.url) / "bad").glob("*.bad.csv")))
    assert bad["issues"].tolist() == ["name: too_long"]
    adult = load_spec(str(ADULT_SPEC))
    assert adult.columns["workclass"].max_length == 100
    assert titanic.columns["name"].max_length == 1_000

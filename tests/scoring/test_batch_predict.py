"""`lifeboat predict FILE`: every row scored in order through the serving path, written out,
and logged once as source `batch`, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import Table, delete, event, func, select
from sqlalchemy.orm import Session

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, Prediction, upgrade
from lifeboat.features import feature_view
from lifeboat.registry import ModelRegistry
from lifeboat.scoring import batch
from lifeboat.scoring import predictor as predictor_module
from lifeboat.scoring.batch import BatchProgress, champion_predictor, score_file
from lifeboat.scoring.compiled import UnsupportedModel
from lifeboat.scoring.predictor import Predictor
from lifeboat.validation import FILE_NUMBER

ROWS = 300


@pytest.fixture
def passengers(tmp_path: Path, titanic: DatasetSpec) -> Path:
    """The first rows of the bundled list, as titanic3 spells its columns."""
    path = tmp_path / "passengers.csv"
    path.write_text("".join(titanic.bundled_path().read_text().splitlines(True)[: ROWS + 1]))
    return path


def expected_probabilities(settings: Settings, spec: DatasetSpec, path: Path) -> np.ndarray:
    """What the API's one scoring path gives for the file's rows, read independently."""
    rows = pd.read_csv(path, na_values=spec.missing_values, keep_default_na=False)
    rows = rows.rename(columns=lambda name: spec.canonical(name) or name)
    return champion_predictor(settings, spec).probabilities(rows)


def logged(database: Database) -> list[Prediction]:
    with database.session() as session:
        return list(session.scalars(select(Prediction).order_by(Prediction.id)))


def test_every_row_is_scored_in_order_written_and_logged_as_batch(
        trained_settings: Settings, titanic: DatasetSpec, database: Database,
        passengers: Path) -> None:
    report = score_file(trained_settings, database, titanic, str(passengers))
    output = passengers.with_name("passengers.predictions.csv")
    assert report.output == str(output) and report.rows == report.logged == ROWS
    scored = pd.read_csv(output)
    assert scored["row"].tolist() == list(range(1, ROWS + 1))
    source = pd.read_csv(passengers)
    assert scored["name"].tolist() == source["name"].tolist()
    np.testing.assert_allclose(scored["probability"],
                               expected_probabilities(trained_settings, titanic, passengers),
                               rtol=1e-12)
    assert (scored["prediction"] == (scored["probability"] >= 0.5)).all()
    assert set(scored["label"]) <= {"died", "survived"} and scored["issues"].isna().all()
    log = logged(database)
    assert len(log) == ROWS and {p.source for p in log} == {"batch"}
    assert [p.id for p in log] == scored["prediction_id"].tolist()  # ids rise with the row
    first = log[0]
    assert first.input == {"pclass": 1, "name": source["name"][0], "sex": "female", "age": 29.0,
                           "sibsp": 0, "parch": 0, "ticket": "24160", "fare": 211.3375,
                           "cabin": "B5", "embarked": "S"}
    assert first.probability == pytest.approx(scored["probability"][0], rel=1e-12)
    assert first.model_version == report.model_version
    view = feature_view(titanic)
    expected = view.from_records([first.input]).iloc[0]
    assert first.entity_id is None  # titanic3 has no key column
    assert first.features == {name: None if pd.isna(value) else value
                              for name, value in expected.items()}
    assert first.features["title"] == "Miss" and first.features["deck"] == "B"
    assert all(list(p.features) == list(view.columns) for p in log)


def test_a_rerun_logs_only_what_is_missing(trained_settings: Settings, titanic: DatasetSpec,
                                           database: Database, passengers: Path) -> None:
    score_file(trained_settings, database, titanic, str(passengers))
    with database.session() as session:  # a run that died part-way: only a prefix is logged
        ids = sorted(session.scalars(select(Prediction.id)))
        session.execute(delete(Prediction).where(Prediction.id > ids[99]))
    again = score_file(trained_settings, database, titanic, str(passengers))
    assert (again.logged, again.already_logged) == (ROWS - 100, 100)
    third = score_file(trained_settings, database, titanic, str(passengers))
    assert (third.rows, third.logged, third.already_logged) == (ROWS, 0, ROWS)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == ROWS


@pytest.fixture
def chunked(passengers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The rows as Parquet, read 50 at a time: six chunks to log."""
    monkeypatch.setattr(batch, "_CHUNK_ROWS", 50)
    path = tmp_path / "chunked.parquet"
    pd.read_csv(passengers, dtype=str, keep_default_na=False).to_parquet(path, index=False)
    return path


def _first_chunk_slowed(monkeypatch: pytest.MonkeyPatch, fails: bool = False) -> dict[int, str]:
    """Makes the first chunk's insert take 0.3 s longer (and fail, if asked), so the next
    chunk's COPY ends first when two are logged at once. Returns each connection's chunk,
    by the chunk's first id."""
    copied: dict[int, str] = {}
    insert = batch.insert_table

    def slowed(session: Session, table: Table, rows: pa.Table, constants: dict) -> int:
        first = rows["id"][0].as_py()
        copied[id(session.connection().connection.dbapi_connection)] = first
        inserted = insert(session, table, rows, constants)
        if first.endswith("-000000000001"):
            time.sleep(0.3)
            if fails:
                raise RuntimeError("the first chunk's COPY failed")
        return inserted

    monkeypatch.setattr(batch, "insert_table", slowed)
    return copied


def test_chunks_commit_in_file_order_when_a_later_one_is_copied_first(
        trained_settings: Settings, titanic: DatasetSpec, database: Database, chunked: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    copied, committed = _first_chunk_slowed(monkeypatch), []
    event.listen(database.engine, "commit", lambda connection: committed.append(
        copied.pop(id(connection.connection.dbapi_connection), None)))
    report = score_file(trained_settings, database, titanic, str(chunked))
    assert report.logged == ROWS and len(logged(database)) == ROWS
    chunks = [first for first in committed if first is not None]
    assert len(chunks) == ROWS // 50 and chunks == sorted(chunks)


def test_a_failed_chunk_leaves_no_later_chunk_logged(
        trained_settings: Settings, titanic: DatasetSpec, database: Database, chunked: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _first_chunk_slowed(monkeypatch, fails=True)
    with pytest.raises(RuntimeError, match="first chunk"):
        score_file(trained_settings, database, titanic, str(chunked))
    assert logged(database) == []  # the log holds a prefix of the file: here, none of it
    monkeypatch.undo()
    assert score_file(trained_settings, database, titanic, str(chunked)).logged == ROWS


_LOADED = """
import json, sys
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.scoring.batch import champion_predictor
predictor = champion_predictor(Settings(), load_spec("titanic"))
print(json.dumps({"pipeline": predictor.model is not None, "fast": predictor.fast is not None,
                  "imported": sorted({"skops", "skl2onnx", "imblearn"} & set(sys.modules))}))
"""


def test_the_champion_is_loaded_from_its_saved_scorer_alone(
        trained_settings: Settings, titanic: DatasetSpec, passengers: Path) -> None:
    """In a fresh process: no pipeline unpickled, none of what that takes imported."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    loaded = subprocess.run([sys.executable, "-c", _LOADED], capture_output=True, text=True,
                            env={**env, "LIFEBOAT_HOME": str(trained_settings.resolved_home)},
                            timeout=300, check=True)
    assert json.loads(loaded.stdout.splitlines()[-1]) == {
        "pipeline": False, "fast": True, "imported": []}
    records = pd.read_csv(passengers, na_values=titanic.missing_values, keep_default_na=False)
    records = records.rename(columns=lambda name: titanic.canonical(name) or name)
    registry = ModelRegistry(trained_settings, titanic.model_name)
    version, model = registry.load_champion()
    pipeline = Predictor(titanic, model, version, feature_view(titanic))
    saved = champion_predictor(trained_settings, titanic)
    np.testing.assert_array_equal(saved.probabilities(records), pipeline.probabilities(records))


def test_a_version_logged_without_a_scorer_loads_its_pipeline(
        trained_settings: Settings, titanic: DatasetSpec, database: Database, passengers: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictor_module, "SCORER_ARTIFACT", "no_such_folder")  # older versions
    predictor = champion_predictor(trained_settings, titanic)
    assert predictor.model is not None and predictor.fast is not None
    report = score_file(trained_settings, database, titanic, str(passengers))
    np.testing.assert_allclose(pd.read_csv(report.output)["probability"],
                               expected_probabilities(trained_settings, titanic, passengers),
                               rtol=1e-12)


def test_a_saved_scorer_that_cannot_be_used_is_passed_over_for_the_pipeline(
        trained_settings: Settings, titanic: DatasetSpec, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def unusable(*_args: object) -> NoReturn:
        raise UnsupportedModel("saved for features titanic@other")

    monkeypatch.setattr(predictor_module, "load_scorer", unusable)
    with caplog.at_level(logging.WARNING, logger="lifeboat.scoring.predictor"):
        predictor = champion_predictor(trained_settings, titanic)
    assert predictor.model is not None and predictor.fast is not None
    assert "its saved scorer is not used (saved for features titanic@other)" in caplog.text


def test_parquet_and_gzip_inputs_score_the_same(trained_settings: Settings, titanic: DatasetSpec,
                                               passengers: Path, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'log.db'}")
    upgrade(database)
    rows = pd.read_csv(passengers, dtype=str, keep_default_na=False)
    rows.to_parquet(tmp_path / "as.parquet", index=False)
    (tmp_path / "as.csv.gz").write_bytes(gzip.compress(passengers.read_bytes()))
    plain = score_file(trained_settings, database, titanic, str(passengers))
    parquet = score_file(trained_settings, database, titanic, str(tmp_path / "as.parquet"))
    zipped = score_file(trained_settings, database, titanic, str(tmp_path / "as.csv.gz"))
    assert parquet.output == str(tmp_path / "as.predictions.parquet")
    assert zipped.output == str(tmp_path / "as.predictions.csv")
    expected = pd.read_csv(plain.output)["probability"]
    np.testing.assert_allclose(pd.read_parquet(parquet.output)["probability"], expected)
    np.testing.assert_allclose(pd.read_csv(zipped.output)["probability"], expected)
    assert parquet.logged == zipped.logged == ROWS  # other content: logged again


def test_an_unusable_value_is_scored_as_missing_and_named(
        trained_settings: Settings, titanic: DatasetSpec, database: Database,
        tmp_path: Path) -> None:
    """The file lacks sibsp, parch and embarked, which the online store holds: its ids
    (the store knows passengers by derived ids) are named unknown, and those score missing."""
    source = tmp_path / "messy.csv"
    source.write_text("PassengerId,Pclass,Name,Sex,Age,Fare\n"
                      '1,3,"A, Mr. B",male,old,7.25\n'
                      '2,4,"C, Mrs. D",robot,30,-3\n'
                      '3,1,"E, Mrs. F",female,2.5,80\n'
                      '4,,"G, Mr. H",male, 40 ,8\n')
    report = score_file(trained_settings, database, titanic, str(source))
    scored = pd.read_csv(report.output, dtype={"issues": str})
    unknown = "passenger_id: unknown_entity"
    assert scored["issues"].tolist() == [
        f"{unknown}; age: wrong_type",
        f"{unknown}; pclass: not_allowed; sex: not_allowed; fare: out_of_range", unknown,
        f"{unknown}; pclass: missing_required"]
    assert report.rows == 4 and report.with_issues == 4
    as_missing = pd.DataFrame({
        "pclass": [3, None, 1, None], "name": ["A, Mr. B", "C, Mrs. D", "E, Mrs. F", "G, Mr. H"],
        "sex": ["male", None, "female", "male"], "age": [None, 30, 2.5, 40],
        "fare": [7.25, None, 80, 8]})
    expected = champion_predictor(trained_settings, titanic).probabilities(as_missing)
    np.testing.assert_allclose(scored["probability"], expected, rtol=1e-12)
    inputs = {p.input["name"]: p.input for p in logged(database)}
    assert inputs["A, Mr. B"]["age"] is None and inputs["G, Mr. H"]["age"] == 40.0
    features = {p.entity_id: p.features for p in logged(database)}
    assert set(features) == {"1", "2", "3", "4"}
    assert features["2"]["pclass"] is None and features["2"]["age"] == 30.0
    assert features["4"]["sibsp"] == 0.0 and features["4"]["embarked"] is None


def test_formulas_are_defused_in_csv_but_kept_in_parquet(
        trained_settings: Settings, titanic: DatasetSpec, database: Database,
        tmp_path: Path) -> None:
    source = tmp_path / "formulas.csv"
    source.write_text('pclass,name,sex,ticket,cabin\n'
                      '3,"=HYPERLINK(""http://x"")",male,+1,@A\n'
                      '1,"Plain, Mr. P",male,12,C85\n'
                      '2,"Back\\slash, Mr. ""Q""\n\tof\x01line",male,,\n')
    csv = pd.read_csv(score_file(trained_settings, database, titanic, str(source)).output, dtype=str)
    assert csv.loc[0, ["name", "ticket", "cabin"]].tolist() == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'@A"]
    assert csv.loc[1, ["name", "ticket", "cabin"]].tolist() == ["Plain, Mr. P", "12", "C85"]
    parquet = score_file(trained_settings, database, titanic, str(source),
                         str(tmp_path / "out" / "formulas.parquet"))
    assert pd.read_parquet(parquet.output)["name"][0] == '=HYPERLINK("http://x")'
    names = {p.input["name"] for p in logged(database)}  # JSON text round-trips, escapes and all
    assert names == {'=HYPERLINK("http://x")', "Plain, Mr. P", 'Back\\slash, Mr. "Q"\n\tof\x01line'}


def test_progress_has_a_total_from_the_start(trained_settings: Settings, titanic: DatasetSpec,
                                            database: Database, passengers: Path,
                                            tmp_path: Path) -> None:
    """The file's rows: a CSV file's lines (plain or gzip), a Parquet file's footer count."""
    zipped = tmp_path / "as.csv.gz"
    zipped.write_bytes(gzip.compress(passengers.read_bytes()))
    parquet = tmp_path / "as.parquet"
    pd.read_csv(passengers, dtype=str, keep_default_na=False).to_parquet(parquet, index=False)
    for source in (passengers, zipped, parquet):
        seen: list[BatchProgress] = []
        score_file(trained_settings, database, titanic, str(source), progress=seen.append)
        assert seen[0] == BatchProgress(rows=0, done=0, total=ROWS)
        assert seen[-1] == BatchProgress(rows=ROWS, done=ROWS, total=ROWS)


def test_numbers_are_typed_as_the_pattern_says_whichever_way_they_are_read() -> None:
    """Arrow's cast, taken when a column holds only number characters, accepts exactly what
    the number pattern does: every string of up to five such characters, and the spellings
    of infinity and NaN that the cast knows, go both ways to the same values. A number
    beyond a float's range is no usable number, as the API has it."""
    strings = ["".join(chars) for size in range(1, 6) for chars in itertools.product("07+-.eE",
                                                                                     repeat=size)]
    strings += ["inf", "-Infinity", "nan", "1e999", "١", "0x10", " 1"]
    numbers = {s for s in strings if re.fullmatch(FILE_NUMBER, s, re.ASCII)}  # RE2's \d
    finite = {s for s in numbers if math.isfinite(float(s))}
    value, wrong = batch._numbers(pa.array(sorted(finite)), pa.array([True] * len(finite)))
    assert wrong is None  # all number characters: read by the cast
    assert value.to_pylist() == [float(s) for s in sorted(finite)]
    value, wrong = batch._numbers(pa.array(strings), pa.array([True] * len(strings)))
    assert wrong.to_pylist() == [s not in finite for s in strings]  # 1e999 is no float
    assert value.to_pylist() == [float(s) if s in finite else None for s in strings]


def test_json_objects_are_what_json_dumps_writes_row_by_row() -> None:
    """Consecutive columns whose values repeat are written once per distinct combination
    (unless nearly every row is one of its own), the others value by value: either way each
    row reads back as its values, keys in column order."""
    rng = np.random.default_rng(5)
    rows = 3000

    def drawn(values: list) -> list:
        return [values[i] for i in rng.integers(0, len(values), rows)]

    values = {
        "class": (drawn([1.0, 2.5, None]), "float"),
        "port": (drawn(["S", 'q"uote', "back\\slash", None]), "string"),
        "fare": ([None if i % 7 == 0 else float(x) for i, x in enumerate(rng.normal(size=rows))],
                 "float"),
        "count": (drawn([0.0, 3.0, None]), "integer"),
        "name": ([f"n{i}" + ("\x01" if i % 50 == 0 else "") for i in range(rows)], "string"),
        "deck": (drawn(list("ABCDEFGU")), "string"),
        # Repeating each, but together nearly every row a combination of its own.
        "row_a": (drawn([float(n) for n in range(60)]), "float"),
        "row_b": (drawn([f"b{n}" for n in range(60)]), "string"),
    }
    built = batch._json_objects({name: (pa.array(column, pa.float64() if kind != "string"
                                                 else pa.string()), kind)
                                 for name, (column, kind) in values.items()})
    expected = [{name: (int(column[i]) if kind == "integer" and column[i] is not None
                        else column[i]) for name, (column, kind) in values.items()}
                for i in range(rows)]
    read = [json.loads(text) for text in built.to_pylist()]
    assert read == expected and all(list(row) == list(values) for row in read)


def lifeboat(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env.update(LIFEBOAT_HOME=str(settings.resolved_home), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "lifeboat", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_cli_scores_writes_and_summarises(trained_settings: Settings, passengers: Path,
                                          tmp_path: Path) -> None:
    output = tmp_path / "scored.csv"
    result = lifeboat(trained_settings, "predict", str(passengers), "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert f"scored {ROWS} rows with lifeboat-titanic" in result.stdout
    assert "(source batch)" in result.stdout and len(pd.read_csv(output)) == ROWS


@pytest.mark.parametrize(("content", "message"), [
    (None, "error: cannot read"),
    ("just some words\n", "error: cannot score"),
    ("", "error: cannot score"),
])
def test_cli_failures_are_one_line_and_exit_1(trained_settings: Settings, tmp_path: Path,
                                              content: str | None, message: str) -> None:
    source = tmp_path / "input.csv"
    if content is not None:
        source.write_text(content)
    result = lifeboat(trained_settings, "predict", str(source))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "input.predictions.csv").exists()


def test_cli_without_a_champion_says_how_to_get_one(tmp_path: Path, passengers: Path) -> None:
    result = lifeboat(Settings(_env_file=None, home=tmp_path / "empty"), "predict", str(passengers))
    assert result.returncode == 1
    assert "has no champion yet" in result.stderr.strip().splitlines()[-1]


def test_a_value_past_its_max_length_is_scored_as_missing_and_named(
        trained_settings: Settings, titanic: DatasetSpec, database: Database,
        tmp_path: Path) -> None:
    source = tmp_path / "long.csv"
    header = "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
    source.write_text(header + f'1,3,"{"N" * 1_001}", male ,22,1,0,A/5 21171,7.25, ? , s\n'
                      '2,3,"Doe, Mr. John",male,22,1,0,A/5 21171,7.25,,S\n')
    report = score_file(trained_settings, database, titanic, str(source))
    scored = pd.read_csv(report.output, dtype={"issues": str}, keep_default_na=False)
    assert scored["issues"].tolist() == ["name: too_long", ""]
    as_missing = pd.DataFrame({"pclass": [3], "name": [None], "sex": ["male"], "age": [22],
                               "sibsp": [1], "parch": [0], "ticket": ["A/5 21171"],
                               "fare": [7.25], "cabin": [None], "embarked": ["S"]})
    expected = champion_predictor(trained_settings, titanic).probabilities(as_missing)
    np.testing.assert_allclose(scored["probability"][:1], expected, rtol=1e-12)


def test_a_whole_number_beyond_64_bits_is_scored_and_logged_by_its_digits(
        trained_settings: Settings, titanic: DatasetSpec, database: Database,
        tmp_path: Path) -> None:
    source = tmp_path / "huge.csv"
    source.write_text("pclass,name,sex,age,sibsp,parch,fare,embarked\n"
                      "3,\"Kelly, Mr. James\",male,34.5,99999999999999999999,0,7.8292,Q\n"
                      "1,\"Allen, Miss. Elisabeth\",female,29,0,0,211.3375,S\n")
    report = score_file(trained_settings, database, titanic, str(source))
    assert (report.rows, report.logged) == (2, 2)
    first, second = logged(database)
    assert first.input["sibsp"] == int(float("99999999999999999999")) and second.input["sibsp"] == 0


def test_cli_error_keeps_brackets_in_the_path(trained_settings: Settings, tmp_path: Path) -> None:
    result = lifeboat(trained_settings, "predict", str(tmp_path / "scores[b].csv"))
    assert result.returncode == 1
    assert "scores[b].csv" in result.stderr.strip().splitlines()[-1]  # not read as markup


def test_each_logged_row_carries_its_share_of_the_chunk_s_time(
        trained_settings: Settings, titanic: DatasetSpec, database: Database,
        passengers: Path) -> None:
    """Not the whole chunk's time on every row, which made 300 rows look 300 times slower."""
    started = time.perf_counter()
    score_file(trained_settings, database, titanic, str(passengers))
    elapsed_ms = (time.perf_counter() - started) * 1000
    latencies = [p.latency_ms for p in logged(database)]
    assert len(latencies) == ROWS
    assert 0 < sum(latencies) <= elapsed_ms

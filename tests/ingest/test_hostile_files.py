"""A corpus of hostile files, each with its documented outcome and exact row counts."""

import csv
import gzip
import io
import os
import posixpath
import random
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, IngestionRun
from lifeboat.ingest import LandingZone, ingest_file, row_count
from lifeboat.orchestration.jobs import JobContext, ingest_files
from tests.support.homes import make_settings

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
ROWS = [
    '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S\n',
    '2,1,1,"Cumings, Mrs. John Bradley",female,38,1,0,PC 17599,71.2833,C85,C\n',
    '3,1,3,"Heikkinen, Miss. Laina",female,26,0,0,STON/O2. 3101282,7.925,,S\n',
]
GOOD = HEADER + "".join(ROWS)


def _bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


# name → (content, status, rows loaded, rows rejected, reason or issue counts)
CORPUS = {
    "empty.csv": (b"", "rejected", 0, 0, "empty file"),
    "blank.csv": (b"\n\n  \n", "rejected", 0, 0, "empty file"),
    "header_only.csv": (_bytes(HEADER), "rejected", 0, 0, "no data rows"),
    "garbage.csv": (random.Random(1).randbytes(4096), "rejected", 0, 0,
                    "not a text file: binary content (NUL bytes)"),
    "prose.csv": (b"Dear team, please find the passenger list attached.\n", "rejected", 0, 0,
                  "required columns missing: pclass, name, sex"),
    "picture.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "rejected", 0, 0,
                    "not a text file: binary content (NUL bytes)"),
    "broken.csv.gz": (b"\x1f\x8b\x08\x00" + b"not really gzip", "rejected", 0, 0,
                      "unreadable gzip compression"),
    "no_sex_column.csv": (b"PassengerId,Pclass,Name\n1,3,\"A, Mr. B\"\n", "rejected", 0, 0,
                          "required columns missing: sex"),
    "extra_column.csv": (_bytes(HEADER.replace("\n", ",Favourite\n")
                                + "".join(r.replace("\n", ",tea\n") for r in ROWS)),
                         "succeeded", 3, 0, {}),
    "semicolons.csv": (_bytes(GOOD.replace(",", ";").replace('"Braund; Mr. Owen Harris"',
                                                            '"Braund, Mr. Owen Harris"')
                              .replace('"Cumings; Mrs. John Bradley"', '"Cumings, Mrs. John Bradley"')
                              .replace('"Heikkinen; Miss. Laina"', '"Heikkinen, Miss. Laina"')),
                       "succeeded", 3, 0, {}),
    "latin1.csv": (_bytes(GOOD.replace("Laina", "Laïna Göran"), "latin-1"), "succeeded", 3, 0, {}),
    "bom.csv": (b"\xef\xbb\xbf" + _bytes(GOOD), "succeeded", 3, 0, {}),
    "gzipped.csv.gz": (gzip.compress(_bytes(GOOD), mtime=0), "succeeded", 3, 0, {}),
    "quoted_newlines.csv": (_bytes(HEADER + '4,1,1,"Smith,\nMrs. Jane\n(née Doe)",female,40,0,0,X1,30,,S\n'
                                   + ROWS[0]), "succeeded", 2, 0, {}),
    "ragged.csv": (_bytes(GOOD + "5,0,3,short,row\n" + '6,0,3,"Long, Mr. Row",male,30,0,0,T,8,,S,x,y\n'),
                   "succeeded", 3, 2, {"malformed_row": 2}),
    "duplicate_ids.csv": (_bytes(GOOD + ROWS[0] + ROWS[1]), "succeeded", 3, 2, {"duplicate_key": 2}),
    "bad_values.csv": (_bytes(GOOD
                              + '7,0,3,"A, Mr. Old",male,old,0,0,T7,8,,S\n'
                              + '8,0,3,"B, Mr. Aged",male,150,0,0,T8,8,,S\n'
                              + '9,0,5,"C, Mr. Class",male,30,0,0,T9,8,,S\n'
                              + '10,0,3,"D, Mr. Fare",male,30,-1,0,T10,-8,,X\n'
                              + '11,0,3,,,30,0,0,T11,8,,S\n'),
                       "succeeded", 3, 5,
                       {"wrong_type": 1, "out_of_range": 3, "not_allowed": 2, "missing_required": 2}),
    # Integers no SQL INTEGER holds, one beyond even 64 bits: each costs its row, not the load.
    "huge_integers.csv": (_bytes(GOOD + '14,0,3,"E, Mr. Big",male,30,99999999999999999999,0,T14,8,,S\n'
                                 + '15,0,3,"F, Mr. Many",male,30,0,3000000000,T15,8,,S\n'),
                          "succeeded", 3, 2, {"out_of_range": 2}),
    "formula_names.csv": (_bytes(GOOD + '12,0,3,"=HYPERLINK(""http://x"",""Click"")",male,30,0,0,T12,8,,S\n'
                                 + '13,0,3,"@SUM(A1:A2), Mr. X",male,30,0,0,T13,8,,S\n'),
                          "succeeded", 5, 0, {}),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_file_outcome(name: str, database: Database, titanic: DatasetSpec,
                              zone: LandingZone, tmp_path: Path) -> None:
    content, status, loaded, rejected, detail = CORPUS[name]
    path = tmp_path / name
    path.write_bytes(content)
    report = ingest_file(database, titanic, str(path), zone)
    assert (report.status, report.rows_loaded, report.rows_rejected) == (status, loaded, rejected)
    assert row_count(database, titanic) == loaded
    bad = Path(zone.url) / "bad"
    if status == "rejected":
        assert report.reason.startswith(detail)
        reason_file, = bad.glob("*.reason.txt")
        assert detail in reason_file.read_text()
        assert any(p.read_bytes() == content for p in bad.iterdir() if p.suffix != ".txt")
    else:
        assert (report.issues or {}) == detail
        bad_files = list(bad.glob("*.bad.csv")) if bad.exists() else []
        if rejected:
            bad_file, = bad_files
            assert len(pd.read_csv(bad_file)) == rejected
        else:
            assert bad_files == []


def test_formula_names_load_as_data_and_are_defused_in_exports(
        database: Database, titanic: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    path = tmp_path / "formulas.csv"
    path.write_bytes(_bytes(HEADER + '1,0,3,"=1+2",male,30,0,0,T1,8,,S\n'
                            + '2,0,3,"Fine, Mr. A",male,150,0,0,T2,8,,S\n'
                            + '3,0,3,"+cmd, Mr. B",male,old,0,0,T3,8,,S\n'))
    report = ingest_file(database, titanic, str(path), zone)
    assert (report.rows_loaded, report.rows_rejected) == (1, 2)
    exported = (next((Path(zone.url) / "bad").glob("*.bad.csv"))).read_text()
    assert "'+cmd, Mr. B" in exported
    assert re.search(r'(^|,)"?[=+@-]', exported, re.MULTILINE) is None


def test_a_carriage_return_before_a_formula_stays_inside_its_quoted_cell_in_bad_csv(
        database: Database, titanic: DatasetSpec, zone: LandingZone, tmp_path: Path) -> None:
    path = tmp_path / "carriage.csv"
    path.write_bytes(_bytes(HEADER + '1,0,3,"a\r=1+1",male,old,0,0,T1,8,,S\n'
                            + '2,0,3,"\r=2+2",male,old,0,0,T2,8,,S\n'))
    assert ingest_file(database, titanic, str(path), zone).rows_rejected == 2
    exported = next((Path(zone.url) / "bad").glob("*.bad.csv")).read_bytes()
    rows = list(csv.reader(io.StringIO(exported.decode(), newline="")))
    assert [row[rows[0].index("name")] for row in rows[1:]] == ["a\r=1+1", "'=2+2"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def _symlink_and_pipe(raw: Path, outside: Path) -> dict[str, str]:
    """Entries no ingestion may read: links to a file and a folder outside, and a FIFO."""
    secret = outside / "secret.csv"
    secret.write_text(GOOD)
    (outside / "folder").mkdir()
    (outside / "folder" / "inner.csv").write_text(GOOD)
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "link.csv").symlink_to(secret)
    (raw / "folder.csv").symlink_to(outside / "folder")
    os.mkfifo(raw / "pipe.csv")
    return {"link.csv": "a symbolic link, not followed",
            "folder.csv": "a symbolic link, not followed",
            "pipe.csv": "not a regular file (other)"}


def test_links_and_pipes_in_raw_are_quarantined_by_name_never_read(
        database: Database, titanic: DatasetSpec, tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path / "landing"))
    outside = tmp_path / "outside"
    outside.mkdir()
    expected = _symlink_and_pipe(tmp_path / "landing" / "raw", outside)
    context = JobContext(make_settings(tmp_path / "home", storage_url=zone.url), database, titanic)
    reports = ingest_files(context, zone.waiting(), remove=True)
    assert {posixpath.basename(r.source): (r.status, r.reason) for r in reports} == {
        name: ("rejected", f"{reason}: only regular files are ingested")
        for name, reason in expected.items()}
    bad = Path(zone.url) / "bad"
    assert sorted(p.name.split(".")[0] for p in bad.iterdir()) == ["folder", "link", "pipe"]
    assert all(p.name.endswith(".reason.txt") for p in bad.iterdir())
    assert not any(GOOD in p.read_text() for p in bad.iterdir())
    assert row_count(database, titanic) == 0
    with database.session() as session:
        runs = session.scalars(select(IngestionRun)).all()
        assert sorted((r.status, r.error) for r in runs) == sorted(
            ("rejected", f"{reason}: only regular files are ingested")
            for reason in expected.values())
    assert list((tmp_path / "landing" / "raw").iterdir()) == []
    assert (outside / "secret.csv").read_text() == GOOD  # the links went, their targets stayed
    assert (outside / "folder" / "inner.csv").read_text() == GOOD

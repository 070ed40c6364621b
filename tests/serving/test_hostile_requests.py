"""A corpus of hostile requests, sent over HTTP to every route of the OpenAPI document (and
CSV uploads), on SQLite and on PostgreSQL: none may get a 5xx, and the ones the service
refuses are refused with a 4xx naming the problem.

The server runs with an admin key, sent with every request, so each request reaches the
handler it targets instead of stopping at the key check (POST /retrain, which would start
a retrain and takes no input, is left out)."""

import csv
import io
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from lifeboat.config import Settings
from lifeboat.db import Database, Prediction, upgrade
from lifeboat.serving import create_app
from lifeboat.serving.bodies import MAX_DEPTH
from tests.support.live_server import live_server
from tests.support.services import scratch_postgres_database

KEY = "hostile-admin-key"
RECORD = {"pclass": 3, "name": "Braund, Mr. Owen Harris", "sex": "male", "age": 22,
          "sibsp": 1, "parch": 0, "ticket": "A/5 21171", "fare": 7.25, "embarked": "S"}
CSV_HEADER = "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
CSV_ROW = '1,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S\n'
SKIPPED = {("post", "/retrain")}
DEEP = 950  # what the issue sent: a 1.9 KB body

# Text for path and query parameters: traversal, encodings, bounds, formats.
HOSTILE_TEXT = ["../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00", "%ff%fe", "%ED%A0%80",
                "-1", "0", "99999999999999999999999999", "1e400", "NaN", "-Infinity", "",
                " ", "9" * 4000, "\u202egnp.exe", "😀", "€", "<script>alert(1)</script>",
                "' OR 1=1 --", "true", "null", "[]", "{}", "2026-13-45T25:61:00",
                "+275760-09-13T00:00:00Z", "0001-01-01T00:00:00+14:00"]

# JSON bodies (bytes as sent) for every route that takes one.
HOSTILE_BODIES = {
    "nested objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "nested arrays": b"[" * DEEP + b"]" * DEEP,
    "nested in a field": json.dumps({**RECORD, "name": "x"}).encode().replace(
        b'"x"', b"[" * DEEP + b"]" * DEEP),
    "nested records": b'{"records": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "lone surrogate": json.dumps({**RECORD, "name": "\ud800"}).encode(),
    "lone low surrogate": json.dumps({**RECORD, "ticket": "x\udfff"}).encode(),
    "surrogate key": json.dumps({**RECORD, "\ud800": 1}).encode(),
    "surrogate entity": json.dumps({"entity_ids": ["\ud800"]}).encode(),
    "surrogate feedback": json.dumps({"id": "\udbff", "actual": 1}).encode(),
    "surrogate record in batch": json.dumps(
        {"records": [RECORD, {**RECORD, "sex": "\ud800"}]}).encode(),
    "NUL in text": json.dumps({**RECORD, "name": "a\u0000b"}).encode(),
    "NUL feedback id": json.dumps({"id": "\u0000", "actual": 1}).encode(),
    "invalid UTF-8": b'{"name": "\xff\xfe\xfd", "pclass": 1}',
    "UTF-8-encoded surrogate": json.dumps(RECORD).encode().replace(b"Braund", b"\xed\xa0\x80"),
    "5000-digit integer": json.dumps(RECORD).encode().replace(b"22", b"7" * 5000),
    "UTF-16": json.dumps(RECORD).encode("utf-16"),
    "1e400": json.dumps(RECORD).encode().replace(b"7.25", b"1e400"),
    "-1e400": json.dumps(RECORD).encode().replace(b"22", b"-1e400"),
    "huge integer": json.dumps(RECORD).encode().replace(b"22", b"1" + b"0" * 400),
    "NaN": json.dumps(RECORD).encode().replace(b"7.25", b"NaN"),
    "Infinity": json.dumps(RECORD).encode().replace(b"22", b"Infinity"),
    "-Infinity": json.dumps({"id": "x", "actual": 1}).encode().replace(b"1}", b"-Infinity}"),
    "empty": b"",
    "whitespace": b" \n\t ",
    "null": b"null",
    "array": b"[]",
    "string": b'"predict me"',
    "number": b"0",
    "truncated": json.dumps(RECORD).encode()[:-7],
    "duplicate keys": b'{"pclass": 1, "pclass": "first", "name": "a", "name": null, "sex": "male"}',
    "huge string": json.dumps({**RECORD, "name": "x" * 2_000_000}).encode(),
    "many records": json.dumps({"records": [RECORD] * 10_001}).encode(),
    "records not a list": b'{"records": {"0": {}}}',
    "records of nulls": b'{"records": [null, null]}',
    "many entity ids": json.dumps({"entity_ids": ["1"] * 10_001}).encode(),
    "entity ids of objects": b'{"entity_ids": [{}, [], null, true]}',
    "explain many": json.dumps({"records": [RECORD] * 50, "explain": True}).encode(),
    "explain not a bool": json.dumps({**RECORD, "explain": "yes please"}).encode(),
    "source unknown": json.dumps({**RECORD, "source": "../../etc"}).encode(),
    "feedback actual 2": b'{"id": "x", "actual": 2}',
    "feedback id huge": json.dumps({"id": "9" * 100_000, "actual": 0}).encode(),
    "control characters": json.dumps({**RECORD, "name": "\x1b[31m\r\n=1+1\u2028"}).encode(),
}
CONTENT_TYPES = ["application/json", "text/plain", "application/xml",
                 "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=zzz", "application/json; charset=latin-1",
                 "application/merge-patch+json", "", "\u00ff/\u00ff"]


@contextmanager
def _server(settings: Settings, database_url: str) -> Iterator[httpx.Client]:
    database = Database(database_url)
    upgrade(database)
    database.dispose()
    app = create_app(settings.model_copy(update={"database_url": database_url,
                                                 "admin_keys": [SecretStr(KEY)]}))
    with live_server(app) as url, httpx.Client(
            base_url=url, timeout=120, headers={"authorization": f"Bearer {KEY}"}) as client:
        yield client


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'lifeboat.db'}"
        return
    with scratch_postgres_database("lifeboat_hostile") as url:
        yield url


@pytest.fixture(scope="module")
def client(trained_settings: Settings, database_url: str) -> Iterator[httpx.Client]:
    with _server(trained_settings, database_url) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def operations(client: httpx.Client) -> list[tuple[str, str, dict[str, Any]]]:
    document = client.get("/openapi.json").json()
    found = [(method, path, operation) for path, item in document["paths"].items()
             for method, operation in item.items() if (method, path) not in SKIPPED]
    assert len(found) > 15  # every route, not a few
    return found


def _no_5xx(response: httpx.Response, what: str, failures: list[str]) -> None:
    if response.status_code >= 500:
        failures.append(f"{what}: {response.status_code} {response.text[:300]}")


def _path(path: str, value: str) -> str:
    """`path` with every parameter set to `value`, sent as written (%-escapes kept)."""
    filled = path
    while "{" in filled:
        start, end = filled.index("{"), filled.index("}")
        filled = filled[:start] + urllib.parse.quote(value, safe="%") + filled[end + 1:]
    return filled


def test_hostile_path_and_query_values_get_no_5xx(client: httpx.Client, operations: list) -> None:
    failures: list[str] = []
    for method, path, operation in operations:
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        for value in HOSTILE_TEXT:
            target = _path(path, value) if "{" in path else path
            query = "&".join(f"{name}={urllib.parse.quote(value, safe='%')}" for name in names)
            url = f"{target}?{query}" if query else target
            _no_5xx(client.request(method, url), f"{method} {url[:120]}", failures)
    assert failures == []


def test_negative_huge_and_malformed_query_values_are_a_422_naming_the_parameter(
        client: httpx.Client) -> None:
    for query, name in (("limit=-1", "limit"), ("limit=1e400", "limit"),
                        ("offset=99999999999999999999", "offset"), ("since=2026-13-45", "since"),
                        ("source=..%2F..", "source"), ("limit=%00", "limit")):
        answer = client.get(f"/past-predictions?{query}")
        assert answer.status_code == 422, query
        assert ["query", name] in [error["loc"] for error in answer.json()["detail"]], query


def test_hostile_bodies_get_no_5xx_on_any_route(client: httpx.Client, operations: list) -> None:
    failures: list[str] = []
    for method, path, _operation in operations:
        if method != "post":
            continue
        for name, body in HOSTILE_BODIES.items():
            for content_type in ("application/json", ""):
                response = client.post(_path(path, "1"), content=body,
                                       headers={"content-type": content_type})
                _no_5xx(response, f"{path} {name} ({content_type or 'no type'})", failures)
    assert failures == []


def test_any_content_type_gets_no_5xx(client: httpx.Client, operations: list) -> None:
    failures: list[str] = []
    for method, path, _operation in operations:
        if method != "post":
            continue
        for content_type in CONTENT_TYPES:
            for body in (json.dumps(RECORD).encode(), b"--zzz\r\n\r\n--zzz--", b"a=1&b=%ff"):
                response = client.post(_path(path, "1"), content=body,
                                       headers={"content-type": content_type.encode("latin-1")})
                _no_5xx(response, f"{path} as {content_type!r}", failures)
    assert failures == []


@pytest.mark.parametrize("route", ["/predict", "/feedback", "/datasets/titanic/predict"])
@pytest.mark.parametrize("name", ["nested objects", "nested arrays", "nested in a field",
                                  "nested records"])
def test_deep_json_is_a_422_saying_so(client: httpx.Client, route: str, name: str) -> None:
    answer = client.post(route, content=HOSTILE_BODIES[name],
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422
    error, = answer.json()["detail"]
    assert error["msg"] == f"JSON nested deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize(("route", "name", "location"), [
    ("/predict", "lone surrogate", ["body", "name"]),
    ("/predict", "lone low surrogate", ["body", "ticket"]),
    ("/predict", "surrogate key", ["body", "\\ud800"]),
    ("/predict", "surrogate entity", ["body", "entity_ids", 0]),
    ("/predict", "surrogate record in batch", ["body", "records", 1, "sex"]),
    ("/feedback", "surrogate feedback", ["body", "id"]),
    ("/predict", "NUL in text", ["body", "name"]),
    ("/feedback", "NUL feedback id", ["body", "id"]),
    ("/predict", "NaN", ["body", "fare"]),
    ("/predict", "Infinity", ["body", "age"]),
    ("/feedback", "-Infinity", ["body", "actual"]),
    ("/predict", "1e400", ["body", "fare"]),
    ("/predict", "-1e400", ["body", "age"]),
    ("/predict", "huge integer", ["body", "age"]),
    ("/predict", "5000-digit integer", ["body", "age"]),
])
def test_text_and_numbers_no_column_can_hold_are_a_422_naming_the_field(
        client: httpx.Client, route: str, name: str, location: list) -> None:
    answer = client.post(route, content=HOSTILE_BODIES[name],
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert [error["loc"] for error in answer.json()["detail"]] == [location]


@pytest.mark.parametrize("name", ["invalid UTF-8", "UTF-8-encoded surrogate", "truncated"])
def test_a_body_that_is_not_json_in_utf_8_is_a_422_saying_where(client: httpx.Client,
                                                                name: str) -> None:
    for route in ("/predict", "/feedback"):
        answer = client.post(route, content=HOSTILE_BODIES[name],
                             headers={"content-type": "application/json"})
        assert answer.status_code == 422
        error, = answer.json()["detail"]
        assert (error["type"], error["loc"][0]) == ("json_invalid", "body")
        assert isinstance(error["loc"][1], int)  # where in the body


def test_a_big_batch_with_escaped_text_and_pairs_of_surrogates_is_scored(
        client: httpx.Client) -> None:
    """The checks that skip the walk must not refuse what is fine: 100 records (past the
    bracket count that looks at depth), names escaped as Python's json writes them."""
    records = [{**RECORD, "name": f"Ren\u00e9e \U0001F6A2 {i}"} for i in range(100)]
    body = json.dumps({"records": records, "source": "api"}).encode()
    assert b"\\ud83d" in body
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 100


def test_a_422_echoing_odd_input_is_valid_json(client: httpx.Client) -> None:
    """Pairs of surrogates (an emoji written as escapes) are fine text: the record is
    refused for its field, and the answer echoing it is JSON any parser reads."""
    body = json.dumps({"pclass": "\ud83d\ude00", "name": "\u2028", "sex": "x"}).encode()
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.content.isascii()
    refused = {tuple(error["loc"]) for error in answer.json()["detail"]}
    assert refused >= {("body", "pclass"), ("body", "sex")}


def test_a_20_mb_body_is_a_413_before_it_is_read(client: httpx.Client) -> None:
    for route in ("/predict", "/feedback", "/predict/csv"):
        answer = client.post(route, content=b"[" + b"1," * 10_000_000 + b"1]",
                             headers={"content-type": "application/json"})
        assert answer.status_code == 413, route


UPLOAD_NAMES = ["€.csv", "пассажиры.csv", "乘客.csv", "🚢 passengers.csv", "a;b=c, d.csv",
                "../../etc/passwd.csv", "C:\\Users\\x\\list.csv", ".csv", "%0d%0aX-Evil: 1.csv",
                "x" * 300 + ".csv", "no suffix"]


def _predictions(database_url: str) -> int:
    database = Database(database_url)
    try:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(Prediction)) or 0
    finally:
        database.dispose()


@pytest.mark.parametrize("filename", UPLOAD_NAMES)
def test_a_csv_answer_is_named_after_any_upload(client: httpx.Client, filename: str) -> None:
    answer = client.post("/predict/csv", headers={"accept": "text/csv"},
                         files={"file": (filename, (CSV_HEADER + CSV_ROW).encode(), "text/csv")})
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert disposition.isascii()
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.endswith(".predictions.csv") and "/" not in fallback and "\\" not in fallback
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "upload"
    assert urllib.parse.unquote(encoded) == f"{stem}.predictions.csv"


def test_every_cell_with_a_line_break_stays_in_its_quoted_cell_and_formulas_are_defused(
        client: httpx.Client) -> None:
    rows = (CSV_ROW.replace('"Braund, Mr. Owen Harris"', '"a\r=1+1"')
            + CSV_ROW.replace("1,3,", "2,3,", 1).replace('"Braund, Mr. Owen Harris"',
                                                         '"b\n@SUM(A1)"')
            + CSV_ROW.replace("1,3,", "3,3,", 1).replace('"Braund, Mr. Owen Harris"', '"\r-2+3"')
            + CSV_ROW.replace("1,3,", "4,3,", 1).replace('"Braund, Mr. Owen Harris"', '"+cmd"'))
    answer = client.post("/predict/csv", headers={"accept": "text/csv"},
                         files={"file": ("cells.csv", (CSV_HEADER + rows).encode(), "text/csv")})
    assert answer.status_code == 200, answer.text
    table = list(csv.DictReader(io.StringIO(answer.content.decode(), newline="")))
    assert [row["name"] for row in table] == ["a\r=1+1", "b\n@SUM(A1)", "'-2+3", "'+cmd"]
    assert [row["passenger_id"] for row in table] == ["1", "2", "3", "4"]


def test_nothing_is_logged_when_the_csv_answer_cannot_be_built(
        client: httpx.Client, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifeboat.serving.routes import predict

    def broken(*_args: object) -> str:
        raise UnicodeEncodeError("latin-1", "€", 0, 1, "as the old header did")

    client.get("/past-predictions")  # the log flushed: what was logged before is counted
    before = _predictions(database_url)
    monkeypatch.setattr(predict, "_attachment", broken)
    answer = httpx.post(f"{client.base_url}/predict/csv", headers={
        "accept": "text/csv", "authorization": f"Bearer {KEY}"},
        files={"file": ("€.csv", (CSV_HEADER + CSV_ROW).encode(), "text/csv")})
    assert answer.status_code == 500
    monkeypatch.undo()
    client.get("/past-predictions")
    assert _predictions(database_url) == before


HOSTILE_UPLOADS = {
    "invalid UTF-8": CSV_HEADER.encode() + b'1,3,"\xff\xfe\xfd",male,22,1,0,T,7.25,,S\n',
    "NUL bytes": CSV_HEADER.encode() + b"1,3,\x00\x00,male,22,1,0,T,7.25,,S\n",
    "NUL in a name": CSV_HEADER.encode() + b'1,3,"a\x00b",male,22,1,0,T,7.25,,S\n',
    "UTF-16": (CSV_HEADER + CSV_ROW).encode("utf-16"),
    "empty": b"",
    "header only": CSV_HEADER.encode(),
    "10001 rows": (CSV_HEADER + CSV_ROW * 10_001).encode(),
    "a 2 MB cell": CSV_HEADER.encode() + b'1,3,"' + b"x" * 2_000_000 + b'",male,22,1,0,T,7.25,,S\n',
    "1e400 fare": (CSV_HEADER + CSV_ROW.replace("7.25", "1e400")).encode(),
    "NaN age": (CSV_HEADER + CSV_ROW.replace(",22,", ",NaN,")).encode(),
    "huge integer age": (CSV_HEADER + CSV_ROW.replace(",22,", "," + "9" * 400 + ",")).encode(),
    "negative class": (CSV_HEADER + CSV_ROW.replace("1,3,", "1,-3,", 1)).encode(),
    "unterminated quote": (CSV_HEADER + '1,3,"Braund, Mr. Owen Harris,male,22\n').encode(),
    "duplicate columns": (CSV_HEADER.replace("Cabin", "Name") + CSV_ROW).encode(),
    "only commas": b",,,,,,\n,,,,,,\n",
    "binary": bytes(range(256)) * 64,
    "gzip bomb header": b"\x1f\x8b\x08\x00" + b"\x00" * 64,
    "formula header": ("=cmd()," + CSV_HEADER).encode(),
}


@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_hostile_csv_uploads_get_no_5xx(client: httpx.Client, accept: str) -> None:
    failures: list[str] = []
    for name, content in HOSTILE_UPLOADS.items():
        for filename in ("hostile.csv", "€.csv"):
            response = client.post("/predict/csv", headers={"accept": accept},
                                   files={"file": (filename, content, "text/csv")})
            _no_5xx(response, f"{name} as {filename}", failures)
    assert failures == []


def test_an_upload_without_a_file_or_of_a_form_field_is_a_422(client: httpx.Client) -> None:
    for data in ({"file": "not a file"}, {"other": "x"}):
        answer = client.post("/predict/csv", data=data)
        assert answer.status_code == 422
        assert ["body", "file"] in [error["loc"] for error in answer.json()["detail"]]

"""Schemathesis generates requests from the service's own OpenAPI document, valid ones and
deliberately invalid ones, against a real server, and runs every one of its checks on each
answer: no 5xx, every status code and content type documented, bodies matching their
schemas, invalid requests rejected and valid ones accepted, authentication enforced.

The server has an admin key, which the requests do not carry: the admin routes are checked
for rejecting them as documented (a valid key would retrain and promote models). Uploads
to `/predict/csv` are CSV files made of the bundled passengers' rows, so that a request
valid by the schema is a usable file, and mangled by schemathesis in its negative cases.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database, upgrade
from lifeboat.serving import create_app
from tests.support.homes import make_settings
from tests.support.live_server import live_server
from tests.support.served_history import drift_and_feedback_history

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25  # generated per operation, besides the coverage phase's cases


def _csv_files(spec: DatasetSpec) -> st.SearchStrategy[bytes]:
    """Files of 1-20 rows of the bundled passenger list, with its header."""
    with open(spec.bundled_path(), newline="", encoding="utf-8") as bundled:
        header, *rows = list(csv.reader(bundled))

    def as_file(picked: list[list[str]]) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerows([header, *picked])
        return text.getvalue().encode()

    return st.lists(st.sampled_from(rows), min_size=1, max_size=20).map(as_file)


schemathesis.openapi.media_type("text/csv", _csv_files(load_spec("titanic")))


# The document the served app publishes: it depends on the dataset specs only, so it is read
# from an app that is never started, when pytest collects one test per operation.
schema = schemathesis.openapi.from_dict(
    create_app(make_settings(Path(tempfile.gettempdir()) / "lifeboat-fuzz-schema")).openapi())
# The service refuses NUL in any text of a body, the keys it ignores included (PostgreSQL
# cannot store one), which JSON Schema cannot say of a record's free extra keys;
# tests/serving/test_hostile_requests.py holds NUL to its 422.
schema.config.generation.update(allow_x00=False)


@pytest.fixture(scope="module")
def base_url(trained_settings: Settings, titanic: DatasetSpec,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The trained champion behind a live server, logging into a database of its own that
    has predictions, feedback and a drift report, so that the routes answer with content."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'lifeboat.db'}"
    database = Database(database_url)
    upgrade(database)
    database.dispose()
    served = trained_settings.model_copy(update={
        "database_url": database_url, "api_key": SecretStr("fuzz-admin-key"),
        "drift_window_size": 100})
    with live_server(create_app(served)) as url:
        drift_and_feedback_history(served, titanic, f"{url}/")
        yield url


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
          database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_its_documentation(case: schemathesis.Case,
                                                       base_url: str) -> None:
    case.call_and_validate(base_url=base_url)


# What schemathesis found, each pinned by a request of its own.

@pytest.mark.parametrize("until", ["0.5", "1700000000", "2026-01-31T12:00:00", "2026-01-31",
                                   "0001-01-01T00:02:01+01:02"])
def test_a_time_filter_is_a_date_and_time_with_its_zone(base_url: str, until: str) -> None:
    response = httpx.get(f"{base_url}/past-predictions", params={"until": until})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "until"]
    zoned = httpx.get(f"{base_url}/past-predictions", params={"until": "2026-01-31T12:00:00+01:00"})
    assert zoned.status_code == 200


def test_every_time_in_an_answer_carries_its_zone(base_url: str) -> None:
    drift = httpx.get(f"{base_url}/drift").json()
    summary = httpx.get(f"{base_url}/monitoring/summary").json()
    past = httpx.get(f"{base_url}/past-predictions", params={"limit": 1}).json()
    times = [drift["created_at"], drift["window_start"], drift["window_end"],
             summary["drift"][0]["created_at"], summary["predictions_over_time"][0]["bucket"],
             past["items"][0]["created_at"]]
    assert all(datetime.fromisoformat(moment).utcoffset() == timedelta(0) for moment in times), times


def test_explain_is_a_boolean_not_a_number(base_url: str) -> None:
    response = httpx.post(f"{base_url}/predict", json={
        "records": [{"pclass": 1, "name": "A", "sex": "male"}], "explain": 0})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "explain"]


def test_a_method_not_allowed_names_every_method_of_the_path(base_url: str) -> None:
    response = httpx.request("OPTIONS", f"{base_url}/retrain")
    assert response.status_code == 405
    assert {"GET", "POST"} <= set(response.headers["allow"].split(", "))

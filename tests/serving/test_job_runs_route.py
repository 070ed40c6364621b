"""GET /jobs: the recorded job runs of every trigger, newest first, with what each did or
why it failed; on SQLite and PostgreSQL, whose filters and times must read the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.errors import JobFailed
from lifeboat.orchestration import JobContext, recorded_run, run
from lifeboat.serving import create_app
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers
from tests.support.homes import make_settings


@pytest.fixture
def runs(trained_settings: Settings, database_url: str, titanic: DatasetSpec,
         tmp_path: Path) -> Settings:
    """Four runs, oldest first: an ingest of 40 rows, a score of them, a failed ingest_file,
    and a score with nothing left to do. The session's champion; this test's own database."""
    settings = make_settings(trained_settings.home, database_url,
                             storage_url=str(tmp_path / "landing"))
    database = Database(settings.db_url)
    upgrade(database)
    context = JobContext(settings, database, titanic)
    raw = tmp_path / "landing" / "raw"
    raw.mkdir(parents=True)
    write_passengers(synthetic_passengers(40, seed=21), raw / ".arrivals.csv")
    (raw / ".arrivals.csv").rename(raw / "arrivals.csv")
    run(context, "ingest", "cli")
    run(context, "score", "schedule")
    with pytest.raises(JobFailed):
        run(context, "ingest_file", "watch", source="/no/such.csv")
    run(context, "score", "schedule")
    database.dispose()
    return settings


@pytest.fixture
def client(runs: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(runs)) as test_client:
        yield test_client


def test_runs_are_listed_newest_first_with_what_each_did(client: TestClient) -> None:
    response = client.get("/jobs")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["job"], i["trigger"], i["status"]) for i in items] == [
        ("score", "schedule", "succeeded"), ("ingest_file", "watch", "failed"),
        ("score", "schedule", "succeeded"), ("ingest", "cli", "succeeded")]
    latest, failed, scored, ingested = items
    assert ingested["counts"] == {"files": 1, "rows_loaded": 40, "rows_rejected": 0,
                                  "files_rejected": 0, "files_duplicate": 0}
    assert scored["counts"] == {"files": 1, "predictions": 40, "failed": 0}
    assert latest["counts"] == {"files": 0, "predictions": 0, "failed": 0}
    assert failed["counts"] == {}
    assert "no such" in failed["error"].lower()
    assert all(i["error"] is None for i in (latest, scored, ingested))
    for item in items:
        started = datetime.fromisoformat(item["started_at"])
        finished = datetime.fromisoformat(item["finished_at"])
        assert started.utcoffset() is not None and finished.utcoffset() is not None
        assert item["seconds"] == pytest.approx((finished - started).total_seconds())
        assert 0 <= item["seconds"] < 60
    assert len({i["id"] for i in items}) == 4


def test_runs_filter_by_job_and_status_and_limit(client: TestClient) -> None:
    def listed(**params: object) -> list[tuple[str, str]]:
        response = client.get("/jobs", params=params)
        assert response.status_code == 200
        return [(i["job"], i["status"]) for i in response.json()["items"]]

    assert listed(job="score") == [("score", "succeeded")] * 2
    assert listed(status="failed") == [("ingest_file", "failed")]
    assert listed(job="ingest", status="succeeded") == [("ingest", "succeeded")]
    assert listed(job="drift") == []
    assert listed(limit=2) == [("score", "succeeded"), ("ingest_file", "failed")]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"limit": "many"},
                                    {"job": "nosuchjob"}, {"status": "done"}])
def test_bad_parameters_are_a_422_naming_the_parameter(client: TestClient,
                                                       params: dict[str, object]) -> None:
    response = client.get("/jobs", params=params)
    assert response.status_code == 422
    name, = params
    assert [error["loc"] for error in response.json()["detail"]] == [["query", name]]


def test_the_route_and_its_filters_are_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/jobs"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["limit"].items() >= {"minimum": 1, "maximum": 500, "default": 50}.items()
    assert parameters["job"]["anyOf"][0]["enum"] == [
        "ingest", "ingest_file", "score", "outcomes", "drift", "pipeline"]
    assert parameters["status"]["anyOf"][0]["enum"] == ["running", "succeeded", "failed"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobRunsPage"}


def test_idle_runs_are_left_out_on_request(runs: Settings, titanic: DatasetSpec) -> None:
    """Idle: succeeded with every count of work at 0. A pipeline's champion version and a
    skipped drift turn are not work; a failed run is never idle, whatever its counts."""
    database = Database(runs.db_url)
    for job, counts in (("pipeline", {"files": 0, "trained": 0, "version": 3, "promoted": 0}),
                        ("drift", {"derived": 0, "checked": 0, "skipped": 1}),
                        ("drift", {"derived": 0, "checked": 1, "drifted": 0}),
                        ("outcomes", {"derived": 12})):
        recorded_run(database, titanic.name, job, "schedule", lambda counts=counts: counts)
    database.dispose()
    with TestClient(create_app(runs)) as client:
        def listed(**params: object) -> list[tuple[str, str]]:
            response = client.get("/jobs", params=params)
            assert response.status_code == 200, response.text
            return [(i["job"], i["status"]) for i in response.json()["items"]]

        worked = [("outcomes", "succeeded"), ("drift", "succeeded"), ("ingest_file", "failed"),
                  ("score", "succeeded"), ("ingest", "succeeded")]
        assert listed(include_idle="false") == worked
        assert len(listed()) == len(listed(include_idle="true")) == 8  # every run by default
        assert listed(include_idle="false", status="succeeded") == [
            run for run in worked if run[1] == "succeeded"]
        assert listed(include_idle="false", job="score") == [("score", "succeeded")]
        assert listed(include_idle="false", limit=2) == worked[:2]  # the limit after the filter
        bad = client.get("/jobs", params={"include_idle": "maybe"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "include_idle"]

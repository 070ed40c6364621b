"""HTTP request metrics: every request counted by method, route template and status, and
timed by method and route, on the real app (and, with two uvicorn workers, in a real
`lifeboat serve`): the label is the route that served it, never the path asked for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.routing import Route

from lifeboat.config import Settings
from lifeboat.serving import create_app
from lifeboat.serving.http_metrics import UNMATCHED, HttpMetrics
from tests.support.live_server import serving_with_workers

PASSENGER = {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female"}


class Counts:
    """The process registry's HTTP series, read as differences from when it was made: the
    registry is the test process's, shared with every other test."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> dict[tuple[str, tuple], float]:
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in REGISTRY.collect() if family.name.startswith("lifeboat_http_")
                for sample in family.samples}

    def added(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self._now().get(key, 0.0) - self.start.get(key, 0.0)

    def routes(self) -> set[str]:
        """Route labels of every series that grew."""
        now = self._now()
        return {dict(labels)["route"] for (name, labels), value in now.items()
                if value != self.start.get((name, labels), 0.0) and "route" in dict(labels)}


@pytest.fixture
def client(trained_settings: Settings) -> Iterator[TestClient]:
    settings = trained_settings.model_copy(update={"max_request_bytes": 2048})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_prediction_is_counted_and_timed_under_its_route(client: TestClient) -> None:
    counts = Counts()
    for path in ("/predict", "/predict", "/datasets/titanic/predict"):
        assert client.post(path, json=PASSENGER).status_code == 200
    assert counts.added("lifeboat_http_requests_total",
                        method="POST", route="/predict", status="200") == 2
    assert counts.added("lifeboat_http_requests_total",
                        method="POST", route="/datasets/titanic/predict", status="200") == 1
    assert counts.added("lifeboat_http_request_duration_seconds_count",
                        method="POST", route="/predict") == 2
    assert counts.added("lifeboat_http_request_duration_seconds_sum",
                        method="POST", route="/predict") > 0
    assert counts.added("lifeboat_http_request_duration_seconds_bucket",
                        method="POST", route="/predict", le="+Inf") == 2


def test_a_path_with_a_parameter_is_labelled_by_its_template(client: TestClient) -> None:
    counts = Counts()
    for version in ("1", "99", "no-such-version"):
        client.get(f"/models/{version}/curves")
    assert counts.routes() == {"/models/{version}/curves"}
    statuses = {status: counts.added("lifeboat_http_requests_total", method="GET",
                                     route="/models/{version}/curves", status=status)
                for status in ("200", "404")}
    assert statuses == {"200": 1, "404": 2}


def test_paths_no_route_serves_share_one_label(client: TestClient) -> None:
    counts = Counts()
    for path in ("/wp-login.php", "/no/such/thing/123", "/datasets/nobody/predict"):
        assert client.get(path).status_code == 404
    assert client.post("/datasets/nobody/predict", json=PASSENGER).status_code == 404
    assert counts.routes() == {UNMATCHED}
    assert counts.added("lifeboat_http_requests_total",
                        method="GET", route=UNMATCHED, status="404") == 3
    assert counts.added("lifeboat_http_requests_total",
                        method="POST", route=UNMATCHED, status="404") == 1


def test_refusals_before_routing_keep_their_route_and_status(client: TestClient) -> None:
    """A body refused by the JSON check (422) or the size limit (413) is answered before
    the router runs; a wrong method is the route's 405; an odd method is `other`."""
    counts = Counts()
    assert client.post("/predict", content=b'{"pclass": NaN}',
                       headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/predict", content=b"[" + b"1," * 2000 + b"1]",
                       headers={"content-type": "application/json"}).status_code == 413
    assert client.get("/predict").status_code == 405
    assert client.request("PROPFIND", "/health").status_code == 405
    added = {status: counts.added("lifeboat_http_requests_total", method="POST",
                                  route="/predict", status=status) for status in ("422", "413")}
    assert added == {"422": 1, "413": 1}
    assert counts.added("lifeboat_http_requests_total",
                        method="GET", route="/predict", status="405") == 1
    assert counts.added("lifeboat_http_requests_total",
                        method="other", route="/health", status="405") == 1


def test_an_exception_in_a_route_is_counted_as_the_500_the_server_answers() -> None:
    def broken(request: object) -> None:
        raise RuntimeError("the route failed")

    app = Starlette(routes=[Route("/broken/{part}", broken)])
    app.add_middleware(HttpMetrics)
    counts = Counts()
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/broken/7").status_code == 500
    assert counts.added("lifeboat_http_requests_total",
                        method="GET", route="/broken/{part}", status="500") == 1


def test_two_workers_count_every_request_once(trained_settings: Settings,
                                              tmp_path: Path) -> None:
    """uvicorn's worker processes count into the multiprocess folder, which /metrics sums."""
    with serving_with_workers(trained_settings.home, tmp_path / "metrics") as base:
        for _ in range(30):  # new connections: the kernel spreads them over both workers
            assert httpx.post(base + "/predict", json=PASSENGER).status_code == 200
        for _ in range(10):
            assert httpx.get(base + "/nowhere").status_code == 404
        text = httpx.get(base + "/metrics").text
    assert len(list((tmp_path / "metrics").glob("counter_*.db"))) == 2  # both workers counted
    assert _value(text, 'lifeboat_http_requests_total'
                        '{method="POST",route="/predict",status="200"}') == 30
    assert _value(text, 'lifeboat_http_requests_total'
                        f'{{method="GET",route="{UNMATCHED}",status="404"}}') == 10
    assert _value(text, 'lifeboat_http_request_duration_seconds_count'
                        '{method="POST",route="/predict"}') == 30


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match[1])

"""Scoped API keys over real HTTP: each route needs a key of the scope its OpenAPI operation
declares, an admin key opens every scope, and without keys the service says what is open."""

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from lifeboat.config import Settings
from lifeboat.db import Database, upgrade
from lifeboat.serving import create_app
from tests.support.live_server import live_server

KEYS = {"admin": "admin-key", "read": "read-key", "feedback": "feedback-key",
        "predict": "predict-key"}
WOMAN = {"pclass": 1, "name": "Allen, Miss. Elisabeth Walton", "sex": "female", "age": 29}
OPEN = {("get", "/health"), ("get", "/ready"), ("get", "/datasets")}
EXPECTED = {("get", "/past-predictions"): "read", ("get", "/jobs"): "read",
            ("get", "/past-predictions.csv"): "read",
            ("get", "/past-predictions/{prediction_id}"): "read",
            ("get", "/drift"): "read", ("get", "/models"): "read", ("get", "/retrain"): "read",
            ("get", "/monitoring/summary"): "read", ("post", "/feedback"): "feedback",
            ("post", "/predict"): "predict", ("post", "/predict/csv"): "predict",
            ("post", "/retrain"): "admin", ("post", "/models/{version}/promote"): "admin",
            ("post", "/models/rollback"): "admin"}


def _own_database(settings: Settings, folder: Path) -> Settings:
    """The session's trained registry, logging into a database of this module's."""
    url = f"sqlite:///{folder / 'lifeboat.db'}"
    database = Database(url)
    upgrade(database)
    database.dispose()
    return settings.model_copy(update={"database_url": url})


@pytest.fixture(scope="module")
def keyed_url(trained_settings: Settings,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = _own_database(trained_settings, tmp_path_factory.mktemp("keyed"))
    keyed = Settings.model_validate({**settings.model_dump(), **{
        f"{scope}_keys": f" {key} , another-{scope}-key" for scope, key in KEYS.items()}})
    with live_server(create_app(keyed)) as url:
        yield url


@pytest.fixture(scope="module")
def operations(keyed_url: str) -> dict[tuple[str, str], dict]:
    paths = httpx.get(f"{keyed_url}/openapi.json").json()["paths"]
    return {(method, path): operation for path, item in paths.items()
            for method, operation in item.items()}


def _scope(operation: dict) -> str | None:
    requirement, = operation.get("security", [{None: []}])
    name, = requirement
    return name and name.removesuffix("_key")


def _call(url: str, method: str, path: str, key: str | None) -> httpx.Response:
    """The operation with no body (authorization is decided before the body is looked at)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, url + path.replace("{version}", "1"), headers=headers, timeout=30)


def test_the_openapi_page_names_the_scope_of_every_route_but_health(operations: dict) -> None:
    scopes = {operation: _scope(spec) for operation, spec in operations.items()}
    assert {operation for operation, scope in scopes.items() if scope is None} == OPEN
    assert {operation: scopes[operation] for operation in EXPECTED} == EXPECTED
    assert set(scopes.values()) == {None, *KEYS}


def test_every_route_refuses_a_missing_or_wrong_key_and_takes_its_scope_s(
        keyed_url: str, operations: dict) -> None:
    for (method, path), spec in operations.items():
        scope = _scope(spec)
        if scope is None:
            assert _call(keyed_url, method, path, None).status_code < 400, path
            continue
        for key in (None, "not-a-key", *(k for s, k in KEYS.items() if s not in (scope, "admin"))):
            refused = _call(keyed_url, method, path, key)
            assert refused.status_code == 401, (method, path, key, refused.text)
            assert refused.headers["www-authenticate"].startswith("Bearer")
            detail = refused.json()["detail"]
            assert f"LIFEBOAT_{scope.upper()}_KEYS" in detail
            assert detail.count("LIFEBOAT_ADMIN_KEYS") == 1, detail
        if (method, path) == ("post", "/retrain"):
            continue  # a good key would start a retrain: test_routes_beyond_predict covers it
        for key in (KEYS[scope], f"another-{scope}-key", KEYS["admin"]):
            assert _call(keyed_url, method, path, key).status_code not in (401, 403), (path, key)


def test_a_dataset_s_prefixed_routes_and_pages_keep_their_scopes(keyed_url: str) -> None:
    assert httpx.get(f"{keyed_url}/datasets/titanic/past-predictions").status_code == 401
    assert httpx.get(f"{keyed_url}/datasets/titanic/past-predictions", headers={
        "authorization": f"Bearer {KEYS['read']}"}).status_code == 200
    for page in ("/", "/datasets/titanic/", "/metrics", "/ui/static/js/main.js", "/docs"):
        assert httpx.get(keyed_url + page).status_code == 200, page


def test_a_key_is_not_accepted_in_another_scheme_or_place(keyed_url: str) -> None:
    key = KEYS["admin"]
    for headers in ({"authorization": f"Basic {key}"}, {"authorization": key},
                    {"x-api-key": key}):
        assert httpx.get(f"{keyed_url}/jobs", headers=headers).status_code == 401
    assert httpx.get(f"{keyed_url}/jobs", params={"key": key}).status_code == 401


def test_without_keys_reads_scoring_and_feedback_are_open_admin_shut_and_a_warning_says_so(
        trained_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _own_database(trained_settings, tmp_path)
    caplog.set_level(logging.WARNING, logger="lifeboat.serving.admin")
    with live_server(create_app(settings)) as url:
        assert httpx.get(f"{url}/past-predictions").status_code == 200
        assert httpx.post(f"{url}/predict", json=WOMAN).status_code == 200
        assert httpx.post(f"{url}/feedback", json={"id": "x", "actual": 1}).status_code == 404
        shut = httpx.post(f"{url}/models/rollback", headers={"authorization": "Bearer x"})
        assert shut.status_code == 403 and "LIFEBOAT_ADMIN_KEYS" in shut.json()["detail"]
    warning, = [r.getMessage() for r in caplog.records if r.name == "lifeboat.serving.admin"]
    assert warning.startswith("the feedback, read, predict routes are open to anyone")


def test_only_scopes_left_without_keys_are_named_open(trained_settings: Settings,
                                                      tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings = _own_database(trained_settings, tmp_path).model_copy(update={
        "read_keys": [SecretStr("r")], "predict_keys": [SecretStr("p")]})
    caplog.set_level(logging.WARNING, logger="lifeboat.serving.admin")
    with live_server(create_app(settings)) as url:
        assert httpx.post(f"{url}/feedback", json={"id": "x", "actual": 1}).status_code == 404
        assert httpx.get(f"{url}/jobs").status_code == 401
    warning, = [r.getMessage() for r in caplog.records if r.name == "lifeboat.serving.admin"]
    assert warning.startswith("the feedback routes are open") and "READ" not in warning


def test_the_openapi_page_asks_no_key_for_an_open_scope(trained_settings: Settings,
                                                       tmp_path: Path) -> None:
    settings = _own_database(trained_settings, tmp_path).model_copy(update={
        "read_keys": [SecretStr("r")]})
    with live_server(create_app(settings)) as url:
        document = httpx.get(f"{url}/openapi.json").json()
    paths = document["paths"]
    assert paths["/jobs"]["get"]["security"] == [{"read_key": []}]
    assert paths["/models/rollback"]["post"]["security"] == [{"admin_key": []}]  # shut, not open
    assert "security" not in paths["/predict"]["post"]
    assert "security" not in paths["/feedback"]["post"]
    assert set(document["components"]["securitySchemes"]) == {"read_key", "admin_key"}


def test_the_older_single_api_key_is_still_an_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFEBOAT_API_KEY", "old-key")
    monkeypatch.setenv("LIFEBOAT_ADMIN_KEYS", "new-key,rotated-key")
    monkeypatch.setenv("LIFEBOAT_READ_KEYS", "reader")
    settings = Settings(_env_file=None)
    assert settings.keys_for("admin") == (b"new-key", b"rotated-key", b"old-key")
    assert settings.keys_for("read") == (b"reader", b"new-key", b"rotated-key", b"old-key")
    assert settings.keys_for("predict") == ()

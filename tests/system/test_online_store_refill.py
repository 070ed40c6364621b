"""The service refills an online store that lost its vectors (Redis restarted empty, or
flushed) by itself, with no `lifeboat features materialize`; meanwhile entity-id requests
get a 503 that says so, with Retry-After."""

from __future__ import annotations

import time

import httpx
import redis
from prometheus_client import REGISTRY

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.features import feature_view, materialize, open_online_store
from lifeboat.serving import create_app
from tests.support.homes import make_settings
from tests.support.live_server import live_server
from tests.support.passengers import stored_passengers
from tests.support.redis_server import RedisServer

CHECK_SECONDS = 5
REFILLED_WITHIN = 30  # seconds: a check, then a materialization of the bundled data


def refills(dataset: str) -> float:
    return REGISTRY.get_sample_value("lifeboat_online_store_refills_total",
                                     {"dataset": dataset}) or 0.0


def test_a_restarted_empty_redis_is_refilled_without_a_command(
        trained_settings: Settings, titanic: DatasetSpec) -> None:
    server = RedisServer().start()
    try:
        settings = make_settings(trained_settings.home, trained_settings.db_url,
                                 redis_url=server.url, online_check_seconds=CHECK_SECONDS)
        store = open_online_store(server.url)
        database = Database(settings.db_url)
        materialize(database, titanic, store)
        store.close()
        database.dispose()
        before = refills(titanic.name)
        ids = stored_passengers(settings, titanic, 2)
        with live_server(create_app(settings)) as base:
            served = httpx.post(f"{base}/predict", json={"entity_ids": ids})
            assert served.status_code == 200 and len(served.json()["predictions"]) == 2

            server.stop()
            server.start()  # no persistence: back empty

            emptied = httpx.post(f"{base}/predict", json={"entity_ids": ids})
            assert emptied.status_code == 503, emptied.text
            assert emptied.headers["retry-after"] == str(CHECK_SECONDS)
            assert "being refilled" in emptied.json()["detail"]
            deadline = time.monotonic() + REFILLED_WITHIN
            while (again := httpx.post(f"{base}/predict", json={"entity_ids": ids})
                   ).status_code != 200:
                assert time.monotonic() < deadline, f"not refilled: {again.text}"
                time.sleep(0.5)
            assert len(again.json()["predictions"]) == 2
            assert httpx.get(f"{base}/ready").status_code == 200
        assert refills(titanic.name) == before + 1
    finally:
        server.stop()


def test_one_process_at_a_time_may_refill(titanic: DatasetSpec) -> None:
    server = RedisServer().start()
    try:
        first, second = open_online_store(server.url), open_online_store(server.url)
        name = f"refill:{feature_view(titanic).key.prefix}"
        assert first.claim(name, 1) is True
        assert second.claim(name, 1) is False
        assert first.claim(name, 1) is False  # not even twice by the same process
        client = redis.Redis(port=server.port)
        assert 0 < client.ttl(f"lifeboat:claim:{name}") <= 1
        client.close()
        time.sleep(1.2)
        assert second.claim(name, 1) is True  # a claim lapses: a dead refiller frees it
        first.close()
        second.close()
    finally:
        server.stop()

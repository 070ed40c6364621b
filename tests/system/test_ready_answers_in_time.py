"""`/ready` answers within 2 s whatever a dependency does: a database or Redis connection that
hangs (a proxy holding every byte) is reported, not waited for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import make_url

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.features import materialize, open_online_store
from lifeboat.serving import create_app
from tests.support.homes import make_settings
from tests.support.live_server import live_server
from tests.support.redis_server import RedisServer
from tests.support.tcp_proxy import TcpProxy

BOUND_SECONDS = 2.0


def timed_ready(base: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(f"{base}/ready", timeout=30)
    return response, time.monotonic() - started


def wait_ready(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while httpx.get(f"{base}/ready", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, f"not ready again within {seconds} s"
        time.sleep(0.2)


@contextmanager
def proxied(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.close()


def test_ready_answers_in_time_while_the_database_hangs(
        postgres_server_url: str, trained_settings: Settings) -> None:
    server = make_url(postgres_server_url)
    upgrade(Database(postgres_server_url))
    with proxied(server.host, server.port or 5432) as proxy:
        url = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = make_settings(trained_settings.home, url)
        with live_server(create_app(settings)) as base:
            wait_ready(base, 30)
            proxy.pause()
            try:
                for _ in range(3):  # the hung check is not started again, nor waited on longer
                    response, took = timed_ready(base)
                    assert took < BOUND_SECONDS, f"/ready took {took:.1f} s"
                    assert response.status_code == 503
                    assert response.json()["checks"]["database"].startswith(
                        "not ready: no answer within"), response.json()
            finally:
                proxy.resume()
            wait_ready(base, 30)


def test_ready_answers_in_time_while_redis_hangs(trained_settings: Settings,
                                                 titanic: DatasetSpec) -> None:
    redis = RedisServer().start()
    try:
        with proxied("127.0.0.1", redis.port) as proxy:
            settings = make_settings(trained_settings.home, trained_settings.db_url,
                                     redis_url=f"redis://127.0.0.1:{proxy.port}/0")
            store = open_online_store(settings.online_store_url)
            database = Database(settings.db_url)
            materialize(database, titanic, store)
            store.close()
            database.dispose()
            with live_server(create_app(settings)) as base:
                wait_ready(base, 30)
                proxy.pause()
                try:
                    for _ in range(3):
                        response, took = timed_ready(base)
                        assert took < BOUND_SECONDS, f"/ready took {took:.1f} s"
                        features = response.json()["checks"]["features"]
                        assert features != "ok" and "online store" in features, features
                finally:
                    proxy.resume()
                wait_ready(base, 30)
    finally:
        redis.stop()

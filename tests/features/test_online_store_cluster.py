"""The online store on a real Redis Cluster: where a view's keys land, what a lookup costs,
and a master failing over under a store in use. The session's cluster (`redis_cluster`) is
three masters with a replica each; the store's own tests also run on it
(test_online_store.py), this file checks what only a cluster has.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from lifeboat.errors import LifeboatError
from lifeboat.features.online import OnlineStore, OnlineStoreUnavailable, ViewKey, open_online_store
from lifeboat.features.online.redis import BUCKETS, entity_keys
from tests.features.test_online_store import delete_keys
from tests.support.live_server import free_port
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

VECTORS = 2_000
IDS = [f"{n:06d}" for n in range(VECTORS)]
VALUES = [[n] for n in range(VECTORS)]
RECOVERED_WITHIN = 15  # seconds after the promotion for the store to answer again


@pytest.fixture
def view() -> ViewKey:
    return ViewKey(f"test{uuid.uuid4().hex[:12]}", "passenger", "v1")


@pytest.fixture
def store(redis_cluster: RedisCluster, view: ViewKey) -> Iterator[OnlineStore]:
    """A store holding the view's `VECTORS` vectors; its keys are deleted afterwards."""
    store = open_online_store(redis_cluster.url)
    store.write(view, ["n"], IDS, VALUES)
    yield store
    store.close()
    client = redis_cluster.client()
    delete_keys(client, f"*{view.dataset}:*")
    client.close()


def test_a_views_buckets_spread_over_every_master_each_whole(
        redis_cluster: RedisCluster, store: OnlineStore, view: ViewKey) -> None:
    tags = {}
    for master in redis_cluster.masters():
        with _connect(master) as client:
            names = client.scan_iter(f"{{{view.prefix}:*", count=1_000)
            tags[master.port] = [name[:name.index("}") + 1] for name in names]
    assert all(tags.values()), f"a master holds none of the view's keys: {tags.keys()}"
    assert sum(map(len, tags.values())) == VECTORS
    buckets = [set(held) for held in tags.values()]
    assert sum(map(len, buckets)) == len(set().union(*buckets)) == BUCKETS


def test_a_lookup_of_100_ids_is_one_mget_per_bucket(
        redis_cluster: RedisCluster, store: OnlineStore, view: ViewKey) -> None:
    wanted = random.Random(7).sample(IDS, 100)
    masters = redis_cluster.masters()
    before = [_mgets(master) for master in masters]
    assert store.read(view, wanted) == [[int(entity_id)] for entity_id in wanted]
    spent = [after - earlier for after, earlier in zip(map(_mgets, masters), before, strict=True)]
    buckets = {name[:name.index("}")] for name in entity_keys(view, wanted)}
    assert sum(spent) == len(buckets) <= BUCKETS
    assert all(spent), f"MGETs per master: {spent}"


def test_a_master_fails_over_under_the_same_store(
        redis_cluster: RedisCluster, store: OnlineStore, view: ViewKey) -> None:
    """Lookups made while a master is killed and its replica takes over either fail as
    `OnlineStoreUnavailable` or answer the right vectors; once the replica serves, the same
    store object reads every vector and writes again."""
    redis_cluster.replicated()  # no acknowledged write may be lost with the master
    master = redis_cluster.master_of(entity_keys(view, IDS[:1])[0])
    outcomes: list[str] = []
    stop = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            looking_up = pool.submit(_look_up_until, stop, store, view, outcomes)
            try:
                redis_cluster.fail_over(master)
            finally:
                stop.set()
            looking_up.result()
        assert "unavailable" in outcomes, "no lookup saw the master down"
        assert _first_answer(lambda: store.read(view, IDS)) == VALUES
        store.write(view, ["n"], ["new", IDS[0]], [[-1], [-2]])
        assert store.read(view, ["new", IDS[0], IDS[1]]) == [[-1], [-2], [1]]
        assert store.columns(view) == ["n"]
    finally:
        redis_cluster.rejoin(master)


def test_any_seed_that_answers_will_do(redis_cluster: RedisCluster, store: OnlineStore,
                                       view: ViewKey) -> None:
    nobody = free_port()
    seeds = redis_cluster.url.removeprefix("redis+cluster://")
    other = open_online_store(f"redis+cluster://127.0.0.1:{nobody},{seeds}")
    assert other.read(view, IDS[:3]) == VALUES[:3]
    other.close()


def test_one_store_at_a_time_holds_a_claim(redis_cluster: RedisCluster, store: OnlineStore,
                                           view: ViewKey) -> None:
    """What keeps two services from refilling the same view at once works on a cluster too."""
    other = open_online_store(redis_cluster.url)
    name = f"refill:{view.prefix}"
    assert (store.claim(name, 30), other.claim(name, 30), store.claim(name, 30)) == (
        True, False, False)
    other.close()


def test_an_unreachable_cluster_is_unavailable_and_hides_the_password(view: ViewKey) -> None:
    first, second = free_port(), free_port()
    url = f"redis+cluster://user:secret@127.0.0.1:{first},127.0.0.1:{second}"
    store = open_online_store(url)  # opens: the service starts, degraded
    with pytest.raises(OnlineStoreUnavailable) as raised:
        store.read(view, ["a"])
    assert str(raised.value).startswith(
        f"online store redis+cluster://user:***@127.0.0.1:{first},127.0.0.1:{second} is ")
    assert "secret" not in str(raised.value)
    store.close()


@pytest.mark.parametrize(("url", "problem"), [
    ("redis+cluster://127.0.0.1:port", "Port could not be cast"),
    ("redis+cluster://127.0.0.1:7000,", "no host in ''"),
    ("rediss+cluster://u:pw@127.0.0.1:7000/2", "database 0 only"),
])
def test_a_cluster_url_it_cannot_read_is_a_clear_error(url: str, problem: str) -> None:
    with pytest.raises(LifeboatError, match=f"is not a Redis cluster URL .*{problem}") as raised:
        open_online_store(url)
    assert "pw" not in str(raised.value)


def _look_up_until(stop: threading.Event, store: OnlineStore, view: ViewKey,
                   outcomes: list[str]) -> None:
    """Lookups of 100 vectors, some on the failing master, until `stop`: each answer right
    to the last value, or the store unavailable."""
    while not stop.is_set():
        try:
            got = store.read(view, IDS[:100])
        except OnlineStoreUnavailable:
            outcomes.append("unavailable")
        else:
            assert got == VALUES[:100]
            outcomes.append("answered")
        time.sleep(0.01)


def _first_answer(lookup: Callable[[], list]) -> list:
    deadline = time.monotonic() + RECOVERED_WITHIN
    while True:
        try:
            return lookup()
        except OnlineStoreUnavailable:
            assert time.monotonic() < deadline, "the store did not answer after the failover"
            time.sleep(0.05)


def _mgets(master: RedisServer) -> int:
    with _connect(master) as client:
        return client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)


def _connect(master: RedisServer) -> redis.Redis:
    return redis.Redis(port=master.port, decode_responses=True)

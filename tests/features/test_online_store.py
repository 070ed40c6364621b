"""The online feature store, on Redis, on a Redis Cluster and on the embedded SQLite file alike.

Redis tests use the real server (`redis_url`), cluster tests the session's cluster of six
redis-server processes (`redis_cluster`), each under a dataset name of its own, and delete
their keys afterwards; the outage test runs its own redis-server, kills it and restarts it.
The cluster's own behaviour (hash slots, failover) is in test_online_store_cluster.py.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from lifeboat.errors import LifeboatError
from lifeboat.features.online import (
    OnlineStore,
    OnlineStoreUnavailable,
    ViewKey,
    open_online_store,
)
from lifeboat.features.online import redis as redis_backend
from lifeboat.features.online import store as online
from tests.support.redis_server import RedisServer

COLUMNS = ["age", "sibsp", "sex", "cabin", "fare"]

StoreFactory = Callable[..., OnlineStore]


@pytest.fixture
def dataset() -> str:
    return f"test{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["redis", "redis-cluster", "sqlite"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path,
               dataset: str) -> Iterator[StoreFactory]:
    """Opens stores of one backend (any TTL); closes them and deletes the test's Redis keys."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(url)
    elif request.param == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        url, client = cluster.url, cluster.client()
    else:
        url, client = f"sqlite:///{tmp_path / 'online.db'}", None
    opened: list[OnlineStore] = []

    def factory(ttl_seconds: int | None = None) -> OnlineStore:
        opened.append(open_online_store(url, ttl_seconds))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()
    if client is not None:
        delete_keys(client, f"*{dataset}:*")
        client.close()


@pytest.fixture
def store(open_store: StoreFactory) -> OnlineStore:
    return open_store()


@pytest.fixture
def view(dataset: str) -> ViewKey:
    return ViewKey(dataset, "passenger", "v1")


def test_round_trip_keeps_types_order_and_unknown_ids(store: OnlineStore, view: ViewKey) -> None:
    rows = [[22.5, 1, "male", "C85", 7.25], [None, 0, "female", None, math.nan],
            [np.float64(38.0), np.int64(2), "female", "", np.nan]]
    assert store.write(view, COLUMNS, ["a", "b", "c"], rows) == 3
    got = store.read(view, ["c", "missing", "a", "b"])
    assert got == [[38.0, 2, "female", "", None], None,
                   [22.5, 1, "male", "C85", 7.25], [None, 0, "female", None, None]]
    assert [type(value) for value in got[0]] == [float, int, str, str, type(None)]


def test_upsert_overwrites_and_keeps_the_others(store: OnlineStore, view: ViewKey) -> None:
    store.write(view, COLUMNS, ["a", "b"], [[1.0, 0, "male", None, 5.0]] * 2)
    store.write(view, COLUMNS, ["b"], [[2.0, 1, "female", "B5", 9.5]])
    assert store.read(view, ["a", "b"]) == [[1.0, 0, "male", None, 5.0],
                                            [2.0, 1, "female", "B5", 9.5]]


def test_a_frame_is_packed_into_the_bytes_its_rows_are() -> None:
    """`write_frame` packs column by column what `write` packs row by row: the same bytes,
    for every kind of value a column can hold."""
    frame = pd.DataFrame({
        "float": [0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, 5e-324, 0.1, 0.1],
        "text": ["é", None, "", 'q"\n\\', np.nan, "\u2028 \x7f", "日本", "plain", "plain"],
        "int": [1, 2, 3, -4, 0, 10 ** 18, 7, 8, 9],
        "mixed": [1, "1", 1.0, None, np.nan, True, "x", -0.0, 0.0],
    })
    rows = frame.astype(object).itertuples(index=False, name=None)
    assert online.pack_frame(frame) == [online._pack(row, 4) for row in rows]
    assert online.pack_frame(frame.iloc[:0]) == []


def test_a_frame_reads_back_as_its_rows(store: OnlineStore, view: ViewKey) -> None:
    frame = pd.DataFrame({"age": [22.5, math.nan], "sex": ["male", None], "n": [1, 2]})
    other = ViewKey(view.dataset, view.view, "v2")
    assert store.write_frame(view, ["a", "b"], frame) == 2
    store.write(other, list(frame.columns), ["a", "b"], frame.astype(object).itertuples(
        index=False, name=None))
    assert store.read(view, ["a", "b"]) == store.read(other, ["a", "b"]) == [
        [22.5, "male", 1], [None, None, 2]]
    assert store.columns(view) == ["age", "sex", "n"]


def test_ids_and_vectors_must_pair_up(store: OnlineStore, view: ViewKey) -> None:
    with pytest.raises(ValueError, match="fewer entity ids"):
        store.write(view, ["n"], ["a"], [[1], [2]])
    with pytest.raises(ValueError, match="more entity ids"):
        store.write(view, ["n"], ["a", "b", "c"], [[1], [2]])


def test_columns_appear_with_the_first_write(store: OnlineStore, view: ViewKey) -> None:
    assert store.columns(view) is None
    store.write(view, COLUMNS, ["a"], [[1.0, 0, "male", None, 5.0]])
    assert store.columns(view) == COLUMNS


def test_versions_are_isolated(store: OnlineStore, view: ViewKey) -> None:
    other = ViewKey(view.dataset, view.view, "v2")
    store.write(view, COLUMNS, ["a"], [[1.0, 0, "male", None, 5.0]])
    store.write(other, ["fare"], ["a", "b"], [[9.0], [8.0]])
    assert store.read(view, ["a", "b"]) == [[1.0, 0, "male", None, 5.0], None]
    assert store.read(other, ["a", "b"]) == [[9.0], [8.0]]
    assert (store.columns(view), store.columns(other)) == (COLUMNS, ["fare"])


def test_a_version_keeps_its_columns(store: OnlineStore, view: ViewKey) -> None:
    store.write(view, COLUMNS, ["a"], [[1.0, 0, "male", None, 5.0]])
    with pytest.raises(ValueError, match="new version"):
        store.write(view, ["fare"], ["a"], [[1.0]])
    with pytest.raises(ValueError, match="1 values for 5 columns"):
        store.write(view, COLUMNS, ["a"], [[1.0]])


def test_vectors_expire_after_the_ttl(open_store: StoreFactory, view: ViewKey) -> None:
    store = open_store(ttl_seconds=1)
    store.write(view, COLUMNS, ["a"], [[1.0, 0, "male", None, 5.0]])
    assert store.read(view, ["a"]) == [[1.0, 0, "male", None, 5.0]]
    time.sleep(1.1)
    assert store.read(view, ["a"]) == [None]
    assert store.columns(view) is None


@pytest.mark.parametrize("count", [0, 1, 100])
def test_reads_of_any_size_in_request_order(store: OnlineStore, view: ViewKey,
                                            count: int) -> None:
    ids = [f"{n:016x}" for n in range(150)]
    store.write(view, ["n"], ids, ([float(n)] for n in range(150)))
    wanted = random.Random(count).sample(range(150), count)
    assert store.read(view, [ids[n] for n in wanted]) == [[float(n)] for n in wanted]


def test_writes_go_in_batches(store: OnlineStore, view: ViewKey,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(online, "BATCH_ROWS", 7)
    monkeypatch.setattr(redis_backend, "_MSET_KEYS", 3)
    sizes: list[int] = []
    write_vectors = store._write_vectors
    monkeypatch.setattr(store, "_write_vectors", lambda key, entity_ids, vectors: sizes.append(
        len(vectors)) or write_vectors(key, entity_ids, vectors))
    ids = [str(n) for n in range(25)]
    assert store.write(view, ["n"], ids, ([n] for n in range(25))) == 25
    assert sizes == [7, 7, 7, 4]
    assert store.read(view, ids) == [[n] for n in range(25)]


def test_concurrent_reads_during_a_write(store: OnlineStore, view: ViewKey) -> None:
    """As FastAPI's threadpool calls it: reads from many threads while a write goes on."""
    ids = [str(n) for n in range(2_000)]
    store.write(view, ["n"], ids, ([n] for n in range(2_000)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        writing = pool.submit(store.write, view, ["n"], ids, ([n] for n in range(2_000)))
        reads = [pool.submit(store.read, view, ids[n:n + 100]) for n in range(0, 2_000, 100)]
        assert [read.result() for read in reads] == [[[m] for m in range(n, n + 100)]
                                                     for n in range(0, 2_000, 100)]
        assert writing.result() == 2_000


def test_embedded_write_is_atomic_and_never_blocks_a_read(
        tmp_path: Path, view: ViewKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lookups made while a write is under way (here: from inside its row stream) are
    answered at once, and see none of it until all of it is there."""
    monkeypatch.setattr(online, "BATCH_ROWS", 10)
    store = open_online_store(f"sqlite:///{tmp_path / 'online.db'}")
    seen_during: list[object] = []

    def rows() -> Iterator[list[int]]:
        for n in range(3 * online.BATCH_ROWS):
            if n == 2 * online.BATCH_ROWS:
                seen_during.extend([store.read(view, ["0"]), store.columns(view)])
            yield [n]

    store.write(view, ["n"], [str(n) for n in range(3 * online.BATCH_ROWS)], rows())
    assert seen_during == [[None], None]
    assert (store.read(view, ["0"]), store.columns(view)) == ([[0]], ["n"])
    store.close()


def test_embedded_store_creates_its_folder(tmp_path: Path, view: ViewKey) -> None:
    store = open_online_store(f"sqlite:///{tmp_path / 'new' / 'home' / 'online.db'}")
    store.write(view, ["n"], ["a"], [[1]])
    store.close()
    assert (tmp_path / "new" / "home" / "online.db").is_file()


def test_unknown_url_scheme_is_a_clear_error() -> None:
    with pytest.raises(LifeboatError, match=r"http://u:\*\*\*@host/ is neither"):
        open_online_store("http://u:secret@host/")


def test_outage_names_the_store_and_recovers_on_the_same_object(view: ViewKey) -> None:
    server = RedisServer().start()
    try:
        store = open_online_store(server.url)
        store.write(view, COLUMNS, ["a"], [[1.0, 0, "male", None, 5.0]])
        assert store.read(view, ["a"]) == [[1.0, 0, "male", None, 5.0]]
        server.stop()
        for call in (lambda: store.read(view, ["a"]), lambda: store.columns(view), store.ping):
            with pytest.raises(OnlineStoreUnavailable, match=f"online store {server.url} is "):
                call()
        server.start()
        store.ping()
        store.write(view, COLUMNS, ["b"], [[2.0, 1, "female", "B5", 9.5]])
        assert store.read(view, ["a", "b"]) == [None, [2.0, 1, "female", "B5", 9.5]]
        store.close()
    finally:
        server.stop()


def test_a_restart_between_two_reads_goes_unnoticed(view: ViewKey) -> None:
    """The pooled connection is stale after the restart; the read must heal it, not fail."""
    server = RedisServer().start()
    try:
        store = open_online_store(server.url)
        assert store.read(view, ["a"]) == [None]
        server.stop()
        server.start()
        assert store.read(view, ["a"]) == [None]
        store.close()
    finally:
        server.stop()


def test_unreachable_message_hides_the_password(view: ViewKey) -> None:
    port = RedisServer().port  # a free port: nobody listens there
    store = open_online_store(f"redis://user:secret@127.0.0.1:{port}/0")
    with pytest.raises(OnlineStoreUnavailable) as raised:
        store.read(view, ["a"])
    assert str(raised.value).startswith(f"online store redis://user:***@127.0.0.1:{port}/0 is ")
    assert "secret" not in str(raised.value)


def delete_keys(client: redis.Redis | redis.RedisCluster, pattern: str) -> None:
    """Every key matching `pattern`, on one server or on every master of a cluster."""
    for batch in online._batches(client.scan_iter(pattern, count=1_000), 500):
        client.unlink(*batch)


def test_a_store_of_the_earlier_key_layout_lacks_the_view(redis_url: str, view: ViewKey) -> None:
    """Vectors and metadata written before keys carried hash tags are not read as the view:
    the store looks empty, so the service refills it under the new keys."""
    client = redis.Redis.from_url(redis_url)
    client.set(view.prefix, b'{"columns":["n"],"updated_at":"2026-01-01T00:00:00+00:00"}')
    client.set(f"{view.prefix}:a", b"[1]")
    store = open_online_store(redis_url)
    try:
        assert (store.columns(view), store.read(view, ["a"])) == (None, [None])
    finally:
        store.close()
        delete_keys(client, f"*{view.dataset}:*")
        client.close()

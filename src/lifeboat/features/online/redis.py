"""The online store on one Redis server (`redis://`, `rediss://`), and the key layout that a
Redis Cluster (`redis_cluster.py`) shares with it.

An entity's vector is under `{<prefix>:<bucket>}:<entity_id>`, its view's metadata under
`{<prefix>}:meta`. The bucket is the CRC-32 of the entity id modulo `BUCKETS`, in two digits,
and the braces make it a hash tag: a cluster places a key by its tag alone, so the vectors of a
view fill `BUCKETS` hash slots, and a lookup of any number of ids is at most `BUCKETS` MGETs,
each master's sent in one pipelined round trip. One Redis server holds the very same keys,
so one function names them for both, and a store moves to a cluster as it is.

Stores written before this layout (vectors under `<prefix>:<entity_id>`, metadata under the
bare prefix) hold none of these keys: they look as if they lacked the view, and the service
refills them from the offline store (`ServiceState.refill_online_store`), as it refills a
Redis that restarted empty; `lifeboat features materialize` does the same by hand.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from zlib import crc32

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lifeboat.features.online.store import OnlineStore, ViewKey, redact

# A view's vectors spread over this many hash slots. Fewer make a lookup fewer MGETs (a
# 100-id lookup touches about 31 of 32 buckets); more spread a view more evenly over the
# masters (with 16, the titanic view's buckets fell 8/4/4 on three masters; 13/11/8 with 32).
BUCKETS = 32
_MSET_KEYS = 1_000  # one MSET holds Redis under 1 ms (measured): serving reads wait no longer
CONNECT_TIMEOUT, SOCKET_TIMEOUT = 0.25, 0.5  # seconds: an outage fails a request fast


def entity_keys(key: ViewKey, entity_ids: Sequence[str]) -> list[str]:
    """The Redis key of each entity's vector, as the module's docstring lays them out."""
    prefix = key.prefix
    return [f"{{{prefix}:{crc32(entity_id.encode()) % BUCKETS:02d}}}:{entity_id}"
            for entity_id in entity_ids]


def meta_key(key: ViewKey) -> str:
    return f"{{{key.prefix}}}:meta"


class RedisOnlineStore(OnlineStore):
    """Vectors go in MSETs of up to 1,000 keys of one bucket each (measured 150,000 keys/s
    against 45,000/s for one SET each: redis-py's per-command cost dominates), all of a batch
    in one pipeline; with a TTL, SET … EX per key. A read is one MGET.

    The pool replaces a connection that a Redis restart closed when it hands it out, so the
    same store works again once Redis is back. Timeouts are short and a command whose
    connection drops is retried once at once, a timed-out one not at all: an outage surfaces
    within 0.5 s (redis-py's default, ten retries with backoff, takes seconds). Options in
    the URL's query string (`?socket_timeout=2`) override these defaults.

    The client is made on first use, under a lock: a cluster's client reads the slot map
    when it is made, and a store opened while its Redis is down must still open.
    """

    outages: tuple[type[Exception], ...] = (
        redis.ConnectionError, redis.TimeoutError, redis.exceptions.InvalidResponse)

    def __init__(self, url: str, ttl_seconds: int | None = None) -> None:
        super().__init__(redact(url), ttl_seconds)
        self._address = url
        self._connecting = threading.Lock()
        self._connected: redis.Redis | None = None

    @property
    def _client(self) -> redis.Redis:
        if self._connected is None:
            with self._connecting:
                if self._connected is None:
                    self._connected = self._connect()
        return self._connected

    def _connect(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._address, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))

    def close(self) -> None:
        if self._connected is not None:
            self._connected.close()

    def _write_vectors(self, key: ViewKey, entity_ids: list[str], vectors: list[bytes]) -> None:
        """One pipeline: per bucket, MSETs of `_MSET_KEYS` keys at most; or a SET with its
        expiry per vector."""
        pipeline = self._client.pipeline(transaction=False)
        keys = entity_keys(key, entity_ids)
        if self.ttl_seconds is None:
            for bucket in _by_bucket(keys, vectors):
                for start in range(0, len(bucket), 2 * _MSET_KEYS):
                    pipeline.execute_command("MSET", *bucket[start:start + 2 * _MSET_KEYS])
        else:
            for name, vector in zip(keys, vectors, strict=True):
                pipeline.set(name, vector, ex=self.ttl_seconds)
        pipeline.execute()

    def _write_meta(self, key: ViewKey, meta: bytes) -> None:
        self._client.set(meta_key(key), meta, ex=self.ttl_seconds)

    def _read_vectors(self, key: ViewKey, entity_ids: Sequence[str]) -> list[bytes | None]:
        return self._client.mget(entity_keys(key, entity_ids))

    def _read_meta(self, key: ViewKey) -> bytes | None:
        return self._client.get(meta_key(key))

    def _ping(self) -> None:
        self._client.ping()

    def _claim(self, name: str, seconds: int) -> bool:
        return bool(self._client.set(f"lifeboat:claim:{name}", os.getpid(), nx=True, ex=seconds))


def _by_bucket(keys: list[str], vectors: list[bytes]) -> list[list[object]]:
    """Each bucket's keys and vectors, interleaved as MSET takes them: a cluster accepts an
    MSET only of keys of one hash slot. A key's bucket is its hash tag, up to its first `}`."""
    buckets: dict[str, list[object]] = {}
    for name, vector in zip(keys, vectors, strict=True):
        buckets.setdefault(name[:name.index("}")], []).extend((name, vector))
    return list(buckets.values())

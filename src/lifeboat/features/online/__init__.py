"""The online feature store: the latest feature vector of each entity, for serving by entity id.

One interface (`store.py`), one backend per file: one Redis server (`redis.py`), a Redis
Cluster (`redis_cluster.py`), an embedded SQLite file for the zero-setup default
(`sqlite.py`). `open_online_store` picks the backend from the URL's scheme.
"""

from __future__ import annotations

from pathlib import Path

from lifeboat.errors import LifeboatError
from lifeboat.features.online.redis import RedisOnlineStore
from lifeboat.features.online.redis_cluster import CLUSTER_SCHEMES, RedisClusterOnlineStore
from lifeboat.features.online.sqlite import SQLITE_PREFIX, SqliteOnlineStore
from lifeboat.features.online.store import OnlineStore, OnlineStoreUnavailable, ViewKey, redact

__all__ = ["OnlineStore", "OnlineStoreUnavailable", "ViewKey", "open_online_store"]


def open_online_store(url: str, ttl_seconds: int | None = None) -> OnlineStore:
    """redis:// or rediss:// → one Redis server; redis+cluster:// or rediss+cluster:// → a
    Redis Cluster (seed nodes after commas); sqlite:///path → SQLite (sqlite:////abs/path.db)."""
    scheme = url.partition("://")[0]
    if scheme in ("redis", "rediss"):
        return RedisOnlineStore(url, ttl_seconds)
    if scheme in CLUSTER_SCHEMES:
        return RedisClusterOnlineStore(url, ttl_seconds)
    if url.startswith(SQLITE_PREFIX):
        return SqliteOnlineStore(Path(url.removeprefix(SQLITE_PREFIX)), ttl_seconds)
    raise LifeboatError(f"online store URL {redact(url)} is neither redis://, rediss://, "
                        "redis+cluster://, rediss+cluster:// nor sqlite:///")

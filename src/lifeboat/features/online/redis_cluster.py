"""The online store on a Redis Cluster: `redis+cluster://host:port` (`rediss+cluster://` for
TLS), with more seed nodes after commas, `redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000`,
and redis-py's options in the query string, as for one server. Any seed that answers gives
the client the whole slot map; more seeds only matter while some of them are down.

The keys are those of one Redis server (`redis.py`): hash tags keep a view's vectors in
`BUCKETS` slots, so a write's MSETs and a read's MGETs each address one slot, and redis-py's
cluster pipeline sends each master its share in one round trip.

While a master fails over, its slots answer nothing (and once the cluster marks it failed,
no slot does, until its replica is promoted): calls fail fast, as `OnlineStoreUnavailable`,
after one retry. Each failure asks for the slot map to be read again, which redis-py does
at most once a second: within about a second of the promotion the same store object
reads and writes again, on the new master.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.exceptions import ClusterError, RedisClusterException
from redis.retry import Retry

from lifeboat.errors import LifeboatError
from lifeboat.features.online.redis import (
    CONNECT_TIMEOUT,
    SOCKET_TIMEOUT,
    RedisOnlineStore,
    entity_keys,
)
from lifeboat.features.online.store import ViewKey, redact

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


class RedisClusterOnlineStore(RedisOnlineStore):
    """`RedisOnlineStore` on a `RedisCluster` client. Writes go through the same pipeline as
    on one server (each MSET holds one bucket's keys); a read is one MGET per slot
    (`mget_nonatomic`). A cluster that cannot be reached at all, or that does not serve all
    its slots (CLUSTERDOWN), is an outage too."""

    outages = (*RedisOnlineStore.outages, ClusterError, RedisClusterException)

    def __init__(self, url: str, ttl_seconds: int | None = None) -> None:
        super().__init__(url, ttl_seconds)
        self._seed_url, self._other_seeds = _seeds(url)

    def _connect(self) -> RedisCluster:
        return RedisCluster.from_url(
            self._seed_url, startup_nodes=list(self._other_seeds),
            socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 1))

    def _read_vectors(self, key: ViewKey, entity_ids: Sequence[str]) -> list[bytes | None]:
        return self._client.mget_nonatomic(entity_keys(key, entity_ids))


def _seeds(url: str) -> tuple[str, list[ClusterNode]]:
    """redis-py's URL of the first seed node (credentials and options kept), and the other
    seed nodes; a URL it cannot read is a LifeboatError naming it."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    first = hosts.split(",")[0]
    try:
        addresses = [_address(host) for host in hosts.split(",")]
        seed_url = urlunsplit((CLUSTER_SCHEMES[parts.scheme], f"{credentials}{at}{first}",
                               parts.path, parts.query, ""))
        if parse_url(seed_url).get("db", 0) != 0:
            raise ValueError("a Redis cluster has database 0 only")
    except ValueError as exc:
        raise LifeboatError(f"online store URL {redact(url)} is not a Redis cluster URL "
                            f"(redis+cluster://host:port[,host:port...]): {exc}") from exc
    return seed_url, [ClusterNode(host, port) for host, port in addresses[1:]]


def _address(host: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`, or a host alone, on port 6379) as host and port."""
    split = urlsplit(f"//{host}")
    if not split.hostname:
        raise ValueError(f"no host in {host!r}")
    return split.hostname, split.port or 6379

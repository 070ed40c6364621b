"""A real Redis Cluster on loopback: three masters and a replica of each, six redis-server
processes on free ports, joined by `redis-cli --cluster create` as an operator joins them.

`fail_over` SIGKILLs a master and waits until its replica has taken over its slots; `rejoin`
starts the killed node again, which comes back as a replica of its successor, so the next
test finds three masters with a replica each again. A missing `redis-server` or `redis-cli`
fails the tests: a skip would hide the cluster behaviour they check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from lifeboat.cluster.redis_cluster import form_cluster
from tests.support.live_server import free_port
from tests.support.redis_server import RedisServer

MASTERS = 3
# A node silent this long is failing: short, so that a failover takes a few seconds, yet
# long enough that a busy 2-core machine starving a node for a moment starts none.
NODE_TIMEOUT_MS = 1_000
SETTLE_SECONDS = 60


class RedisCluster:
    """Six cluster nodes under `folder`, each a `RedisServer` with a directory of its own."""

    def __init__(self, folder: Path) -> None:
        self.nodes = [_node(folder / f"node-{index}") for index in range(2 * MASTERS)]

    @property
    def url(self) -> str:
        """The store's URL, seeded with three nodes: any one of them that answers will do."""
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:MASTERS])
        return f"redis+cluster://{seeds}"

    def start(self) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._settle("three masters with a replica each", self._complete)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        """Joined as `lifeboat cluster --redis-cluster` joins its nodes."""
        form_cluster([node.port for node in self.nodes])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self) -> redis.RedisCluster:
        """A cluster client of the test's own, to look at or clean up keys on every master."""
        return redis.RedisCluster(host="127.0.0.1", port=self.masters()[0].port)

    def masters(self) -> list[RedisServer]:
        return [node for node in self._alive() if _role(node) == "master"]

    def master_of(self, key: str) -> RedisServer:
        """The master that serves `key`'s hash slot now."""
        with _client(self.masters()[0].port) as client:
            slot = client.execute_command("CLUSTER KEYSLOT", key)
        return next(node for node in self.masters()
                    if any(start <= slot <= end for start, end in _own_slots(node)))

    def replicated(self) -> None:
        """Waits until every replica has applied all its master has written."""
        self._settle("replicas in step with their masters", lambda: all(
            _caught_up(node) for node in self._alive() if _role(node) == "slave"))

    def fail_over(self, master: RedisServer) -> RedisServer:
        """SIGKILLs `master`; returns its replica once that one serves its slots and every
        node left says the cluster is ok."""
        replicas = [node for node in self._alive() if _master_port(node) == master.port]
        master.stop()
        self._settle(f"a replica promoted in place of port {master.port}",
                     lambda: any(_role(node) == "master" for node in replicas)
                     and all(_state_ok(node) for node in self._alive()))
        return next(node for node in replicas if _role(node) == "master")

    def rejoin(self, node: RedisServer) -> None:
        """Starts a killed node again: it comes back empty and resyncs as a replica."""
        node.start()
        self._settle(f"port {node.port} back as a replica", self._complete)

    def _alive(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.running]

    def _complete(self) -> bool:
        """Every node up and ok, three masters, each replica's link to its master up."""
        if not all(node.running and _state_ok(node) for node in self.nodes):
            return False
        replicas = [node for node in self.nodes if _role(node) == "slave"]
        return (len(replicas) == len(self.nodes) - MASTERS
                and all(_replication(node.port)["master_link_status"] == "up"
                        for node in replicas))

    @staticmethod
    def _settle(what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while not _answers(done):
            if time.monotonic() > deadline:
                pytest.fail(f"the Redis cluster did not reach {what} within "
                            f"{SETTLE_SECONDS} s", pytrace=False)
            time.sleep(0.1)


def _node(folder: Path) -> RedisServer:
    folder.mkdir(parents=True, exist_ok=True)
    return RedisServer(
        "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(folder),
        "--cluster-config-file", "nodes.conf",
        # A replica always stands in for its master, however long their link was down.
        "--cluster-replica-validity-factor", "0",
        # A replica's first sync starts at once, not after the default 5 s wait.
        "--repl-diskless-sync-delay", "0")


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2,
                       decode_responses=True)


def _replication(port: int) -> dict:
    with _client(port) as client:
        return client.info("replication")


def _caught_up(replica: RedisServer) -> bool:
    own = _replication(replica.port)
    return own["slave_repl_offset"] == _replication(own["master_port"])["master_repl_offset"]


def _role(node: RedisServer) -> str:
    return _replication(node.port)["role"]


def _master_port(node: RedisServer) -> int | None:
    return _replication(node.port).get("master_port")


def _state_ok(node: RedisServer) -> bool:
    with _client(node.port) as client:
        return client.cluster("INFO")["cluster_state"] == "ok"


def _own_slots(node: RedisServer) -> list[tuple[int, int]]:
    """The slot ranges the node itself serves, as its CLUSTER NODES lists them."""
    with _client(node.port) as client:
        nodes = client.cluster("NODES").values()
    myself = next(entry for entry in nodes if "myself" in entry["flags"])
    return [(int(span[0]), int(span[-1])) for span in myself["slots"]]


def _answers(done: Callable[[], bool]) -> bool:
    """`done()`, or False while a node is still starting up or shutting down."""
    try:
        return done()
    except (redis.ConnectionError, redis.TimeoutError, KeyError):
        return False

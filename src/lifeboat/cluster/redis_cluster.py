"""A Redis Cluster of this machine's `redis-server` processes for `lifeboat cluster
--redis-cluster`: three masters with a replica each, joined as an operator joins them
(`redis-cli --cluster create`), the online store's URL seeded with the masters."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from lifeboat.cluster.processes import Role, RoleFailed, program

MASTERS = 3
NODES = 2 * MASTERS  # a replica for each master
CLUSTER_BUS_OFFSET = 10_000  # each node also listens there, for the other nodes
# A master silent this long is failed over to its replica. Redis's default is 15 s; five
# keep a failover short on a busy machine that may starve a node for a second.
NODE_TIMEOUT_MS = 5_000
FORM_SECONDS = 60.0


def redis_node(port: int, folder: Path, env: dict[str, str]) -> Role:
    """One cluster node on 127.0.0.1:`port`, its state in `folder`, nothing persisted."""
    folder.mkdir(parents=True, exist_ok=True)
    return Role(f"redis-{port}", [
        program("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
        "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(folder),
        "--save", "", "--appendonly", "no"], env, folder / "redis.log")


def form_cluster(ports: list[int]) -> str:
    """Joins the nodes listening on `ports` into one cluster and waits until every node
    serves every slot; the store's URL (`redis+cluster://`, the masters as seeds)."""
    deadline = time.monotonic() + FORM_SECONDS
    for port in ports:
        _wait(lambda port=port: _client(port).ping(), deadline, f"redis-server on {port}")
    created = subprocess.run(
        [program("redis-cli"), "--cluster", "create",
         *(f"127.0.0.1:{port}" for port in ports), "--cluster-replicas", "1",
         "--cluster-yes"], capture_output=True, text=True, timeout=FORM_SECONDS)
    if created.returncode != 0:
        raise RoleFailed(f"redis-cli could not form the cluster: {created.stdout[-1500:]}"
                         f"{created.stderr[-500:]}")
    for port in ports:
        _wait(lambda port=port: _formed(port), deadline, f"the cluster, as node {port} sees it")
    return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports[:MASTERS])


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1,
                       socket_connect_timeout=1, decode_responses=True)


def _formed(port: int) -> bool:
    """The node serves every slot and knows each master's replica as one."""
    client = _client(port)
    if client.cluster("info")["cluster_state"] != "ok":
        return False
    nodes = client.cluster("nodes")  # redis-py: {address: {"flags": "slave,myself", ...}}
    return sum("slave" in node["flags"].split(",") for node in nodes.values()) == NODES - MASTERS


def _wait(ready: Callable[[], bool], deadline: float, what: str) -> None:
    while True:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RoleFailed(f"{what} did not come up within {FORM_SECONDS:g} s")
        time.sleep(0.2)

"""The scale-out topology on one machine, each role a process of its own, as a team would
run it on several hosts: HAProxy in front of `lifeboat serve` replicas, one jobs process
(`lifeboat schedule`: the periodic jobs and the monitoring loop, once for all replicas), an
MLflow tracking server on PostgreSQL with its artifacts in S3, an S3 endpoint (moto) for
the landing zone and those artifacts, and Prometheus scraping every replica and the jobs
process. PostgreSQL and Redis are the machine's own. deploy/docker-compose.yml and
deploy/kubernetes/ run the same roles in containers.

The replicas share nothing but those services and this cluster's home: on one host they
share its journal folder, so a replica that is killed has its unwritten predictions
written by a sibling (`PredictionLog` adopts them).
"""

from __future__ import annotations

import os
import random
import socket
import sys
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import SecretStr
from sqlalchemy import make_url

from lifeboat.cluster.processes import Role, program
from lifeboat.cluster.redis_cluster import CLUSTER_BUS_OFFSET, NODES, form_cluster, redis_node
from lifeboat.config import Settings
from lifeboat.db import ensure_database
from lifeboat.errors import LifeboatError

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
HAPROXY_CONFIG = DEPLOY / "haproxy" / "haproxy.cfg"
LANDING_BUCKET, ARTIFACT_BUCKET = "lifeboat-landing", "lifeboat-mlflow"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "lifeboat", "AWS_SECRET_ACCESS_KEY": "lifeboat",
           "AWS_DEFAULT_REGION": "us-east-1"}  # moto takes any key
START_SECONDS = 180.0  # a replica's first start loads MLflow and the model: tens of seconds
BOOTSTRAP_SECONDS = 1800.0  # the first training's search: minutes on two cores


@dataclass(frozen=True)
class ClusterPorts:
    """Where each role listens on 127.0.0.1: the balancer on `balancer`, replicas on the
    ports after it; with `redis_cluster` (six ports), a Redis Cluster of its own instead of
    REDIS_URL's Redis."""

    balancer: int = 8000
    replicas: int = 2
    mlflow: int = 5000
    s3: int = 9000
    prometheus: int = 9090
    jobs_metrics: int = 9100
    redis_cluster: tuple[int, ...] = ()

    def replica(self, number: int) -> int:
        return self.balancer + number

    @classmethod
    def free(cls, replicas: int, *, redis_cluster: bool = False) -> ClusterPorts:
        """Ports free on this machine, all different (the replicas' after the balancer's):
        for a cluster started beside other servers, as the tests and benchmarks do. Each is
        held open until all are chosen, so none is picked twice."""
        with ExitStack() as held:
            while True:
                block = [_hold(held, 0)]
                block += [_hold(held, block[0] + n) for n in range(1, replicas + 1)]
                if all(block):
                    break
            others = [_hold(held, 0) for _ in range(4)]
            nodes = tuple(_hold_redis_node(held) for _ in range(NODES if redis_cluster else 0))
        return cls(block[0], replicas, *others, nodes)


class LocalCluster:
    """Starts the roles in dependency order (`start`) and stops them all (`stop`), each by
    its process group; `roles` names them for the caller (and for a test to kill one)."""

    def __init__(self, settings: Settings, ports: ClusterPorts) -> None:
        if not 1 <= ports.replicas <= 4:
            raise LifeboatError("a local cluster runs 1 to 4 replicas "
                                "(deploy/haproxy/haproxy.cfg names four)")
        if make_url(settings.db_url).get_backend_name() != "postgresql":
            raise LifeboatError("the replicas share one database: set DATABASE_URL to a "
                                "PostgreSQL database (it is created if missing)")
        if ports.redis_cluster and len(ports.redis_cluster) != NODES:
            raise LifeboatError(f"a Redis cluster here is {NODES} nodes: three masters, a "
                                "replica each")
        if not settings.redis_url and not ports.redis_cluster:
            raise LifeboatError("the replicas share one online store: set REDIS_URL, or "
                                "start a Redis cluster (--redis-cluster)")
        self.settings, self.ports = settings, ports
        self.home = settings.ensure_home() / "cluster"
        self.home.mkdir(exist_ok=True)
        self.roles: dict[str, Role] = {}
        self.env = self._shared_env()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.balancer}"

    def urls(self) -> dict[str, str]:
        ports = self.ports
        return {"Lifeboat (HAProxy)": f"{self.url}/",
                **{f"replica {n}": f"http://127.0.0.1:{ports.replica(n)}/"
                   for n in range(1, ports.replicas + 1)},
                "MLflow": f"http://127.0.0.1:{ports.mlflow}/",
                "Prometheus": f"http://127.0.0.1:{ports.prometheus}/",
                "jobs metrics": f"http://127.0.0.1:{ports.jobs_metrics}/metrics",
                "S3 (moto)": f"http://127.0.0.1:{ports.s3}/",
                **({"Redis cluster": self.env["REDIS_URL"]} if ports.redis_cluster else {})}

    def start(self, progress: Callable[[str], None] = lambda _step: None) -> None:
        """Everything, in order; on a failure, what was started is stopped again."""
        try:
            self._start(progress)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """The balancer first (no new requests), then the replicas (which drain their
        prediction logs), then what they used."""
        for role in reversed(list(self.roles.values())):
            role.stop()

    def start_redis_cluster(self) -> None:
        """Six `redis-server` nodes joined into a cluster, which every role started after it
        uses as its online store."""
        nodes = list(self.ports.redis_cluster)
        for port in nodes:
            node = redis_node(port, self.home / "redis" / str(port), self.env)
            self.roles[node.name] = node.start()
        self.env["REDIS_URL"] = form_cluster(nodes)

    def _start(self, progress: Callable[[str], None]) -> None:
        ports = self.ports
        tracking_store = _sibling_database(self.settings.db_url, "mlflow")
        for database in (self.settings.db_url, tracking_store):
            ensure_database(database)
        if ports.redis_cluster:
            progress("starting a Redis cluster")
            self.start_redis_cluster()
        progress("starting the S3 endpoint")
        self._run("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                         "-p", str(ports.s3)], f"http://127.0.0.1:{ports.s3}/moto-api/")
        for bucket in (LANDING_BUCKET, ARTIFACT_BUCKET):
            _create_bucket(f"http://127.0.0.1:{ports.s3}/{bucket}")
        progress("starting the MLflow tracking server")
        self._run("mlflow", [program("mlflow"), "server", "--host", "127.0.0.1",
                             "--port", str(ports.mlflow), "--workers", "1",
                             "--backend-store-uri", tracking_store,
                             "--artifacts-destination", f"s3://{ARTIFACT_BUCKET}/artifacts",
                             "--serve-artifacts"],
                  f"http://127.0.0.1:{ports.mlflow}/health",
                  # Its job runner (four processes for MLflow's AI features) is not needed.
                  MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        progress("preparing the schema, data, features and a champion")
        self._bootstrap()
        progress(f"starting {ports.replicas} serving replicas")
        replicas = [self._start_role(f"replica-{n}", [program("lifeboat"), "serve"],
                                     f"http://127.0.0.1:{ports.replica(n)}/ready",
                                     LIFEBOAT_PORT=str(ports.replica(n)))
                    for n in range(1, ports.replicas + 1)]
        for replica in replicas:
            replica.wait_ready(START_SECONDS)
        progress("starting the jobs process")
        self._run("jobs", [program("lifeboat"), "schedule"], None)
        progress("starting HAProxy and Prometheus")
        self.roles["balancer"] = self.balancer(ports.replicas, ports.balancer).start()
        self.roles["balancer"].wait_ready(START_SECONDS)
        self._run("prometheus", [program("prometheus"),
                                 f"--config.file={self._prometheus_config()}",
                                 f"--storage.tsdb.path={self.home / 'prometheus'}",
                                 f"--web.listen-address=127.0.0.1:{ports.prometheus}"],
                  f"http://127.0.0.1:{ports.prometheus}/-/ready")

    def _bootstrap(self) -> None:
        """What `lifeboat up` does before serving (schema, data, features, a champion),
        once, before any replica starts, as a deployment's init step does."""
        role = self._start_role("bootstrap", [program("lifeboat"), "bootstrap"], None)
        role.wait_exit(BOOTSTRAP_SECONDS)
        del self.roles["bootstrap"]  # done: not a role to watch or stop

    def _shared_env(self) -> dict[str, str]:
        """What every Lifeboat process of the cluster is given: the same services."""
        ports = self.ports
        env = {**os.environ, **_as_environment(self.settings), **S3_KEYS,
               "DATABASE_URL": self.settings.db_url,
               "REDIS_URL": self.settings.redis_url or "",
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
               "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
               "LIFEBOAT_STORAGE_URL": f"s3://{LANDING_BUCKET}/landing",
               "LIFEBOAT_HOME": str(self.home),
               "LIFEBOAT_HOST": "127.0.0.1",
               "LIFEBOAT_WORKERS": "1",
               "LIFEBOAT_EMBEDDED_JOBS": "false",
               "LIFEBOAT_JOBS_METRICS_PORT": str(ports.jobs_metrics)}
        return env

    def balancer(self, replicas: int, port: int) -> Role:
        """HAProxy on `port` in front of the first `replicas` replicas, not started: the
        cluster's own, or another beside it (the serving benchmark compares 1, 2 and 3)."""
        env = {"LIFEBOAT_BALANCER_BIND": f"127.0.0.1:{port}",
               **{f"LIFEBOAT_REPLICA_{n}": f"127.0.0.1:{self.ports.replica(n)}"
                  for n in range(1, replicas + 1)}}
        name = "balancer" if port == self.ports.balancer else f"balancer-{port}"
        return Role(name, [program("haproxy"), "-db", "-f", str(HAPROXY_CONFIG)],
                    {**self.env, **env}, self.home / "logs" / f"{name}.log",
                    f"http://127.0.0.1:{port}/ready")

    def _prometheus_config(self) -> Path:
        ports = self.ports
        config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(DEPLOY / "prometheus" / "rules.yml")],
            "scrape_configs": [
                {"job_name": "lifeboat-api", "static_configs": [{"targets": [
                    f"127.0.0.1:{ports.replica(n)}" for n in range(1, ports.replicas + 1)]}]},
                {"job_name": "lifeboat-jobs",
                 "static_configs": [{"targets": [f"127.0.0.1:{ports.jobs_metrics}"]}]}]}
        path = self.home / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _run(self, name: str, command: list[str], ready_url: str | None,
             **env: str) -> Role:
        role = self._start_role(name, command, ready_url, **env)
        role.wait_ready(START_SECONDS)
        return role

    def _start_role(self, name: str, command: list[str], ready_url: str | None,
                    **env: str) -> Role:
        role = Role(name, command, {**self.env, **env}, self.home / "logs" / f"{name}.log",
                    ready_url)
        self.roles[name] = role.start()
        return role


def _hold(held: ExitStack, port: int) -> int:
    """Binds `port` (0: any) on 127.0.0.1 until `held` closes; the port, or 0 if taken."""
    probe = held.enter_context(socket.socket())
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return 0
    return probe.getsockname()[1]


def _hold_redis_node(held: ExitStack) -> int:
    """A port for a Redis cluster node: it and its cluster bus port, 10,000 above, free."""
    while True:
        port = random.randrange(20_000, 55_535)
        if _hold(held, port) and _hold(held, port + CLUSTER_BUS_OFFSET):
            return port


def _as_environment(settings: Settings) -> dict[str, str]:
    """The settings this process was given, as the variables that give them to another:
    whatever `lifeboat cluster` runs with (LIFEBOAT_MODEL_POLL_SECONDS, keys, datasets),
    every role runs with."""
    env = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is not None:
            values = value if isinstance(value, list) else [value]
            env[f"LIFEBOAT_{name.upper()}"] = ",".join(map(_text, values))
    return env


def _text(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value).lower() if isinstance(value, bool) else str(value)


def _sibling_database(url: str, suffix: str) -> str:
    """A database beside `url`'s on the same server: `lifeboat` → `lifeboat_mlflow`."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{suffix}").render_as_string(
        hide_password=False)


def _create_bucket(url: str) -> None:
    request = urllib.request.Request(url, method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass

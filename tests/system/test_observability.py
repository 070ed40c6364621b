"""Grafana and Prometheus as code (deploy/), proven against the real programs.

- promtool checks the shipped Prometheus config and rules, and runs the rules' unit tests
  (deploy/prometheus/rules.test.yml).
- The real Prometheus scrapes the real service as the shipped config's jobs: two replicas
  (uvicorn on a free loopback port in this process, and `lifeboat serve` as a process, both
  logging to the real PostgreSQL), a third replica's address where nothing listens, and a
  real `lifeboat schedule` beside a jobs address where nothing listens. The test sends the
  replicas traffic from every source, feedback and ingestion runs, and runs real drift
  checks (`check_drift`). Retrains are recorded as rows: a real one would train and promote
  in the session's shared registry. Then every PromQL expression of every dashboard panel
  and every rule must parse and return data, every alert must be pending or firing (the
  traffic is made to trip each one), what the replicas count must add up to what was sent
  (and what the database says be counted once), and every SQL panel, Grafana macros
  expanded, must run on the schema the service's migrations created and return rows.
- The compose file, the Dockerfiles and Grafana's provisioning are checked for consistency:
  every service, mount, port, build context and data source they name exists.

No Grafana or Docker engine runs here, so the dashboards' JSON is checked for structure, and
their queries are run by the programs Grafana would send them to. Without Prometheus the live
tests fail, never skip: `apt-get install prometheus` (`make test` does).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest
import yaml
from prometheus_client import REGISTRY
from sklearn.metrics import roc_auc_score
from sqlalchemy import make_url

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, Retrain, upgrade
from lifeboat.errors import JobFailed
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.monitoring.drift_check import DriftCheckUnavailable, check_drift
from lifeboat.orchestration.runs import recorded_run
from lifeboat.registry import ModelRegistry
from lifeboat.serving import create_app
from lifeboat.training import train
from tests.support.homes import trained_home
from tests.support.live_server import live_server
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "rules.test.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
COMPOSE = DEPLOY / "docker-compose.yml"

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")

# The dashboards' own variable: the dataset shown, here the one the test's service serves.
DASHBOARD_VARIABLES = {"$dataset": "titanic"}
# What Grafana puts in place of its variables before a query leaves it: the test's Prometheus
# scrapes every second, so a minute holds plenty of samples.
GRAFANA_PROMQL_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                            **DASHBOARD_VARIABLES}
# Counted by the process for all its datasets together, so without a `dataset` label.
PROCESS_WIDE_METRICS = ("lifeboat_prediction_log_", "lifeboat_http_")
PANEL_TYPES = {"row", "timeseries", "stat", "table", "barchart", "heatmap", "bargauge"}
SCRAPE_TIMEOUT = 60  # seconds to wait for Prometheus to see what the test just did
ALERT_TIMEOUT = 45  # seconds to wait for every alert to leave `inactive`


# --- what the shipped files hold ------------------------------------------------------------

def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _datasource_uids() -> dict[str, str]:
    """Provisioned data source uid -> type."""
    return {source["uid"]: source["type"] for source in _yaml(DATASOURCES)["datasources"]}


def _uid_of(kind: str) -> str:
    uids = [uid for uid, type_ in _datasource_uids().items() if type_ == kind]
    assert len(uids) == 1, f"{DATASOURCES.name}: expected one {kind} data source, found {uids}"
    return uids[0]


PROMETHEUS_TYPE, POSTGRES_TYPE = "prometheus", "grafana-postgresql-datasource"


@dataclass(frozen=True)
class Query:
    where: str  # dashboard › panel › refId, or rules.yml › group › rule
    text: str  # PromQL, or SQL with Grafana macros
    panel: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    target: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def param(self) -> Any:
        return pytest.param(self, id=self.where)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_targets() -> Iterator[tuple[str, dict, dict, str]]:
    """(where, panel, target, data source uid) for every panel target and annotation query."""
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                yield (f"{path.stem} › {panel.get('title')} › {target.get('refId')}", panel,
                       target, source.get("uid"))
        for annotation in board.get("annotations", {}).get("list", []):
            if target := annotation.get("target"):
                source = target.get("datasource") or annotation.get("datasource") or {}
                yield (f"{path.stem} › annotation {annotation['name']}",
                       {"type": "annotation", "title": annotation["name"]}, target,
                       source.get("uid"))


def _promql_queries() -> list[Query]:
    prometheus = _uid_of(PROMETHEUS_TYPE)
    queries = [Query(where, target["expr"], panel, target)
               for where, panel, target, uid in _dashboard_targets()
               if uid == prometheus and "expr" in target]
    for group in _yaml(RULES)["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            queries.append(Query(f"rules.yml › {group['name']} › {name}", rule["expr"]))
    return queries


def _sql_queries() -> list[Query]:
    postgres = _uid_of(POSTGRES_TYPE)
    return [Query(where, target["rawSql"], panel, target)
            for where, panel, target, uid in _dashboard_targets()
            if uid == postgres and "rawSql" in target]


def _alerts() -> list[str]:
    return [rule["alert"] for group in _yaml(RULES)["groups"] for rule in group["rules"]
            if "alert" in rule]


def _records() -> list[str]:
    return [rule["record"] for group in _yaml(RULES)["groups"] for rule in group["rules"]
            if "record" in rule]


def _as_promql(expr: str) -> str:
    for variable, value in GRAFANA_PROMQL_VARIABLES.items():
        expr = expr.replace("${" + variable[1:] + "}", value).replace(variable, value)
    return expr


_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def expand_sql_macros(sql: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros, as Grafana expands them (pkg/tsdb/grafana-postgresql-
    datasource/macros.go), for the time range [start, end]."""
    since, until = (f"'{moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
                    for moment in (start, end))

    def seconds(interval: str) -> int:
        interval = interval.strip().strip("'\"")
        match = re.fullmatch(r"(\d+)([smhdw])", interval)
        assert match, f"unsupported interval {interval!r} in a macro"
        return int(match[1]) * _UNITS[match[2]]

    def expand(match: re.Match[str]) -> str:
        name, args = match[1], [arg.strip() for arg in match[2].split(",")] if match[2] else []
        if name == "timeFilter":
            return f"{args[0]} BETWEEN {since} AND {until}"
        if name == "timeFrom":
            return since
        if name == "timeTo":
            return until
        if name == "time":
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            return f'extract(epoch from {args[0]}) AS "time"'
        if name in ("timeGroup", "timeGroupAlias"):
            step = seconds(args[1])
            group = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "unixEpochFilter":
            return (f"{args[0]} >= {int(start.timestamp())} AND "
                    f"{args[0]} <= {int(end.timestamp())}")
        raise AssertionError(f"Grafana macro $__{name} is not expanded by this test")

    expanded = _MACRO.sub(expand, sql)
    expanded = expanded.replace("$__interval", "'1h'")
    for variable, value in DASHBOARD_VARIABLES.items():
        expanded = expanded.replace(variable, value)
    assert "$" not in expanded, f"unexpanded variable left in {expanded!r}"
    return expanded


PROMQL = _promql_queries()
SQL = _sql_queries()
ALERTS = _alerts()
RECORDS = _records()


def _require(program: Path) -> None:
    """A missing program fails the test, never skips it: `make test` installs it."""
    if not program.exists():
        pytest.fail(f"{program} is missing: apt-get install prometheus (it brings promtool; "
                    "make test does)", pytrace=False)


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# --- promtool -------------------------------------------------------------------------------

def test_promtool_accepts_the_shipped_config_and_the_rules_it_loads() -> None:
    _require(PROMTOOL)
    checked = _run(PROMTOOL, "check", "config", PROMETHEUS_CONFIG)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout, checked.stdout


def test_promtool_accepts_the_shipped_rules() -> None:
    _require(PROMTOOL)
    checked = _run(PROMTOOL, "check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS) + len(RECORDS)} rules found" in checked.stdout


def test_the_rules_unit_tests_pass_in_promtool() -> None:
    """Synthetic series: each alert fires when it should, waits out its `for`, and stays
    quiet on the look-alike cases (both classes predicted, a trickle of traffic, an accuracy
    drop on too few labels, a partly bad file)."""
    _require(PROMTOOL)
    tested = _run(PROMTOOL, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_documented_and_unit_tested_firing() -> None:
    firing_cases = {case["alertname"] for test in _yaml(RULE_TESTS)["tests"]
                    for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    for group in _yaml(RULES)["groups"]:
        for rule in filter(lambda rule: "alert" in rule, group["rules"]):
            assert rule["alert"].startswith("Lifeboat"), rule["alert"]
            assert rule.get("labels", {}).get("severity") in ("warning", "critical"), rule["alert"]
            annotations = rule.get("annotations", {})
            assert annotations.get("summary") and annotations.get("description"), rule["alert"]
            assert rule["alert"] in firing_cases, f"{rule['alert']} has no firing unit test"


# --- the dashboards' and provisioning's structure ---------------------------------------------

def test_the_data_sources_have_fixed_uids_and_point_at_the_compose_services() -> None:
    sources = {source["type"]: source for source in _yaml(DATASOURCES)["datasources"]}
    assert set(sources) == {PROMETHEUS_TYPE, POSTGRES_TYPE}
    services = _yaml(COMPOSE)["services"]
    prometheus = httpx.URL(sources[PROMETHEUS_TYPE]["url"])
    assert prometheus.host == "prometheus" and prometheus.port == 9090
    assert "prometheus" in services
    postgres = sources[POSTGRES_TYPE]
    host, port = postgres["url"].split(":")
    assert host in services and port == "5432"
    database = services[host]["environment"]["POSTGRES_DB"]
    assert postgres["jsonData"]["database"] == database
    # Grafana's read-only role is the one the database's init script creates.
    init = (DEPLOY / "postgres" / "init.sql").read_text()
    password = postgres["secureJsonData"]["password"]
    assert f"CREATE ROLE {postgres['user']} LOGIN PASSWORD '{password}'" in init
    assert f"ON DATABASE {database} TO {postgres['user']}" in init


def test_the_dashboard_provider_loads_the_folder_compose_mounts() -> None:
    provider, = _yaml(DASHBOARD_PROVIDERS)["providers"]
    grafana = _yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(_bind_mounts(grafana))
    assert mounts[provider["options"]["path"]] == DEPLOY / "grafana" / "dashboards"
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana" / "dashboards" / Path(home).name).exists()


def test_there_are_the_four_dashboards_with_unique_uids() -> None:
    boards = [json.loads(path.read_text()) for path in DASHBOARDS]
    assert {board["title"] for board in boards} == {
        "Lifeboat · Model behaviour", "Lifeboat · Data quality", "Lifeboat · Drift",
        "Lifeboat · Live accuracy"}
    uids = [board["uid"] for board in boards]
    assert len(set(uids)) == len(uids) and all(len(uid) <= 40 for uid in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_a_dashboard_is_current_grafana_json_on_the_provisioned_sources(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["schemaVersion"] >= 39 and board["id"] is None and "lifeboat" in board["tags"]
    sources = _datasource_uids()
    panels = list(_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate panel ids"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        title = f"{path.name} › {panel.get('title')}"
        assert panel["type"] in PANEL_TYPES, f"{title}: panel type {panel['type']}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, title
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = title
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{title}: no description"
        source = panel["datasource"]
        assert sources.get(source["uid"]) == source["type"], f"{title}: unknown {source}"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), f"{title}: refIds {refs}"
        for target in panel["targets"]:
            assert target.get("datasource", source) == source, f"{title}: mixed data sources"
            if source["type"] == PROMETHEUS_TYPE:
                assert target["expr"].strip(), title
            else:
                assert target["rawQuery"] is True and target["editorMode"] == "code", title
                assert target["format"] in ("table", "time_series"), title
                assert target["rawSql"].strip(), title
    for annotation in board["annotations"]["list"]:
        if "target" in annotation:
            assert sources.get(annotation["datasource"]["uid"]) == annotation["datasource"]["type"]


def test_every_dashboard_shows_one_dataset_chosen_by_its_variable() -> None:
    """A service may serve several datasets: each panel about a dataset's model or data
    filters by the `dataset` variable, which lists the datasets whose model is loaded."""
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        variable, = [v for v in board["templating"]["list"] if v["name"] == "dataset"]
        assert variable["datasource"]["uid"] == _uid_of(PROMETHEUS_TYPE), path.name
        assert variable["query"]["query"] == "label_values(lifeboat_model_info, dataset)"
        assert all(link["includeVars"] for link in board["links"]), path.name
    for query in PROMQL:
        if query.where.startswith("rules.yml"):
            continue
        for name, selector in re.findall(r"\b(lifeboat_\w+|ALERTS)(\{[^}]*\})?", query.text):
            if not name.startswith(PROCESS_WIDE_METRICS):
                assert 'dataset="$dataset"' in selector, f"{query.where}: {name}{selector}"
    for query in SQL:
        assert "dataset = '$dataset'" in query.text, query.where


# --- compose and the images -------------------------------------------------------------------

AIRFLOW = {"airflow-init", "airflow-scheduler", "airflow-dag-processor", "airflow-apiserver",
           "airflow-worker"}
STACK = {"postgres", "redis", "minio", "minio-init", "mlflow", "bootstrap", "api-1", "api-2",
         "jobs", "balancer", "prometheus", "grafana"} | AIRFLOW
PUBLISHED = {"balancer": 8000, "mlflow": 5000, "grafana": 3000, "prometheus": 9090,
             "airflow-apiserver": 8080}


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, Path]]:
    """(container path, host path) of a service's bind mounts; named volumes are skipped."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            yield target, (DEPLOY / source).resolve()


def _scrape_targets(config: dict[str, Any]) -> dict[str, list[str]]:
    """Scrape job name -> its static targets."""
    return {job["job_name"]: [target for static in job["static_configs"]
                              for target in static["targets"]]
            for job in config["scrape_configs"]}


def _hosts_and_ports(service: dict[str, Any]) -> dict[int, int]:
    published = {}
    for mapping in service.get("ports", []):
        *host, container = str(mapping).split(":")
        published[int(host[-1])] = int(container)
    return published


def test_compose_runs_every_part_of_the_stack() -> None:
    compose = _yaml(COMPOSE)
    services = compose["services"]
    assert set(services) == STACK
    named = set(compose.get("volumes") or {})
    host_ports: list[int] = []
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"
        for target, source in _bind_mounts(service):
            assert source.exists(), f"{name} mounts {source} (at {target}): missing in the repo"
        for needed, condition in (service.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            condition = condition["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits for {needed}'s health"
            elif condition == "service_completed_successfully":
                assert services[needed].get("restart") == "no", needed
            else:
                assert condition == "service_started", condition
        published = _hosts_and_ports(service)
        host_ports += list(published)
        if name in PUBLISHED:
            assert published.get(PUBLISHED[name]) == PUBLISHED[name], f"{name}: ports {published}"
        if service.get("restart") != "no":  # one-shots are waited on by their exit
            assert "healthcheck" in service, f"{name} has no healthcheck"
    assert len(host_ports) == len(set(host_ports)), f"a host port is published twice: {host_ports}"


def test_compose_builds_from_files_that_exist() -> None:
    for name, service in _yaml(COMPOSE)["services"].items():
        if "build" not in service:
            continue
        context = (DEPLOY / service["build"]["context"]).resolve()
        dockerfile = context / service["build"]["dockerfile"]
        assert dockerfile.exists(), f"{name}: {dockerfile}"
        ignore = Path(f"{dockerfile}.dockerignore")
        allowed = {line[1:].rstrip("/") for line in ignore.read_text().splitlines()
                   if line.startswith("!")}
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY"):
                sources = [word for word in line.split()[1:-1] if not word.startswith("--")]
                for source in sources:
                    assert (context / source).exists(), f"{dockerfile.name}: COPY {source}"
                    assert source in allowed, f"{ignore.name} leaves out {source}"


def test_the_replicas_serve_on_all_interfaces_on_the_stacks_services() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert 'CMD ["lifeboat", "up"]' in dockerfile  # one container alone: the whole service
    services = _yaml(COMPOSE)["services"]
    environment = services["api-1"]["environment"]
    assert services["api-1"]["command"] == ["lifeboat", "serve"]
    assert environment["LIFEBOAT_HOST"] == "0.0.0.0"
    database = make_url(environment["DATABASE_URL"])
    postgres = services[database.host]["environment"]
    assert (database.username, database.password, database.database) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
    assert httpx.URL(environment["REDIS_URL"]).host in services
    assert httpx.URL(environment["MLFLOW_TRACKING_URI"]).host in services
    assert environment["LIFEBOAT_STORAGE_URL"].startswith("s3://")
    minio = services[httpx.URL(environment["AWS_ENDPOINT_URL"]).host]["environment"]
    assert (environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    # Prometheus scrapes every replica where it listens, and the jobs process's metrics.
    targets = _scrape_targets(_yaml(PROMETHEUS_CONFIG))
    assert set(targets) == {"lifeboat-api", "lifeboat-jobs"}
    replicas = sorted(name for name in services if name.startswith("api-"))
    assert len(replicas) >= 2
    assert sorted(targets["lifeboat-api"]) == [
        f"{name}:{services[name]['environment']['LIFEBOAT_PORT']}" for name in replicas]
    assert targets["lifeboat-jobs"] == [
        f"jobs:{services['jobs']['environment']['LIFEBOAT_JOBS_METRICS_PORT']}"]
    prometheus = services["prometheus"]
    mounts = dict(_bind_mounts(prometheus))
    assert mounts["/etc/prometheus"] == PROMETHEUS_CONFIG.parent
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


# --- the live stack: the service, PostgreSQL and Prometheus ------------------------------------

THIRD_CLASS_MEN = [  # the model predicts that every one of them died
    {"pclass": 3, "name": f"Tester, Mr. Number {number}", "sex": "male",
     "age": 19 + number % 23, "sibsp": 0, "parch": 0, "fare": 7.05 + (number % 4) * 0.4,
     "embarked": "S"}
    for number in range(200)
]
OUTLIERS = [  # values outside the training range: ages 95 and 99, nine siblings
    {**THIRD_CLASS_MEN[0], "name": "Oldman, Mr. Ninety Five", "age": 95},
    {**THIRD_CLASS_MEN[1], "name": "Oldman, Mr. Ninety Nine", "age": 99},
    {**THIRD_CLASS_MEN[2], "name": "Bigfamily, Mr. Nine", "sibsp": 9},
]


DRIFT_WINDOW = 50  # predictions per drift check: each round of traffic sends 53
# Failed lookups on the second replica, in each round: the second round's 12 of some 150
# requests are 5xx (the error rate's threshold is 5%), and of some 50 to /predict are slow
# (its p99). The first round's make the 503s' series, which increase() sees grow only after.
HUNG_LOOKUPS = (4, 12)


@dataclass
class Stack:
    prometheus: str
    database_url: str
    served: list[dict[str, Any]] = field(default_factory=list)  # by the first replica
    served_elsewhere: list[dict[str, Any]] = field(default_factory=list)  # by the second
    rules: list[dict[str, Any]] = field(default_factory=list)
    # The first replica runs in this test process, whose metrics also hold what earlier
    # tests' services counted: its titanic predictions, and its /predict 503s, before this
    # stack's traffic.
    counted_before: float = 0.0
    unavailable_before: float = 0.0

    def query(self, expr: str) -> dict[str, Any]:
        return httpx.post(f"{self.prometheus}/api/v1/query", data={"query": expr},
                          timeout=30).json()

    def wait_for_scrape(self, since: float) -> None:
        """Until a scrape of every live target (both replicas and the jobs process) that
        started after `since` succeeded, and rules ran on it."""
        deadline = time.monotonic() + SCRAPE_TIMEOUT
        while time.monotonic() < deadline:
            result = self.query(f'count(timestamp(up{{job=~"lifeboat-.*"}} == 1) > {since})')
            if result["data"]["result"] and result["data"]["result"][0]["value"][1] == "3":
                time.sleep(2.5)  # rules evaluate every second
                return
            time.sleep(0.2)
        targets = httpx.get(f"{self.prometheus}/api/v1/targets", timeout=10).json()
        pytest.fail(f"Prometheus did not scrape the service: {targets}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_prometheus(folder: Path, targets: dict[str, list[str]]) -> Iterator[str]:
    """The real Prometheus with the shipped config, scraping each of its jobs' `targets`
    every second and evaluating the shipped rules every second."""
    config = _yaml(PROMETHEUS_CONFIG)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / name) for name in config["rule_files"]]
    assert set(_scrape_targets(config)) == set(targets)
    for job in config["scrape_configs"]:
        job.update(scrape_interval="1s", scrape_timeout="1s",
                   static_configs=[{"targets": targets[job["job_name"]]}])
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with running([str(PROMETHEUS), f"--config.file={folder / 'prometheus.yml'}",
                  f"--storage.tsdb.path={folder / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{port}"],
                 None, folder / "prometheus.log", f"{url}/-/ready"):
        yield url


@contextmanager
def running(command: list[str], env: dict[str, str] | None, log_path: Path,
            ready_url: str) -> Iterator[None]:
    """A program started as a process, once `ready_url` answers 200; stopped by its pid."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=log_path.parent, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[:3]} exited ({process.returncode}):\n"
                            f"{log_path.read_text()[-3000:]}", pytrace=False)
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{command[:3]} not ready:\n{log_path.read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _lifeboat_env(**settings: str) -> dict[str, str]:
    """This environment without the developer's Lifeboat settings, and `settings`."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("LIFEBOAT_") and name not in (
               "DATABASE_URL", "MLFLOW_TRACKING_URI", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    return {**env, "LIFEBOAT_LOG_LEVEL": "WARNING", **settings}


@contextmanager
def hung_port() -> Iterator[int]:
    """A loopback port whose connections the kernel accepts and nobody answers: a server
    that hangs."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(128)
        yield listening.getsockname()[1]


@contextmanager
def second_replica(folder: Path, settings: Settings, database_url: str,
                   redis_port: int) -> Iterator[str]:
    """`lifeboat serve` as a process of its own, on the same database and registry as the
    first replica, with its own home (its journal), and an online store that hangs: its
    predictions of raw records are answered, its lookups by entity id wait out the store's
    timeout (1.5 s) and fail with a 503."""
    port = _free_port()
    home = folder / "replica-2"
    home.mkdir()
    env = _lifeboat_env(LIFEBOAT_HOME=str(home), DATABASE_URL=database_url,
                        MLFLOW_TRACKING_URI=settings.tracking_uri, LIFEBOAT_PORT=str(port),
                        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0?socket_timeout=1.5")
    base = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "lifeboat", "serve"], env, home / "serve.log",
                 f"{base}/health"):
        yield base


@contextmanager
def jobs_process(folder: Path, settings: Settings) -> Iterator[str]:
    """`lifeboat schedule` for its metrics only: on a database of its own, so that its
    turns leave the service's numbers as the test makes them."""
    port = _free_port()
    home = folder / "jobs"
    home.mkdir()
    env = _lifeboat_env(LIFEBOAT_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'jobs.db'}",
                        MLFLOW_TRACKING_URI=settings.tracking_uri,
                        LIFEBOAT_JOBS_METRICS_PORT=str(port), LIFEBOAT_INGEST_EVERY_SECONDS="1",
                        LIFEBOAT_SCORE_EVERY_SECONDS="1", LIFEBOAT_DRIFT_CHECK_SECONDS="3600")
    address = f"127.0.0.1:{port}"
    with running([sys.executable, "-m", "lifeboat", "schedule"], env, home / "schedule.log",
                 f"http://{address}/metrics"):
        yield address


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A database of this module's own on the PostgreSQL server, dropped afterwards."""
    url = make_url(server_url)
    name = f"{url.database}_obs_{uuid.uuid4().hex[:6]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _predict(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = http.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _upload(http: httpx.Client, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    response = http.post("/predict/csv", params={"source": "webapp"},
                         files={"file": ("passengers.csv", text.getvalue().encode(), "text/csv")})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _traffic(http: httpx.Client, men: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Predictions from every source: single records and lists (api), a CSV upload (webapp),
    the scheduler's and batch scoring's sources, and records with outliers."""
    served = []
    for record in men[:5]:
        served += _predict(http, record)
    served += _predict(http, {"records": men[5:15]})
    served += _upload(http, men[15:30])
    served += _predict(http, {"records": men[30:40], "source": "scheduled"})
    served += _predict(http, {"records": men[40:50], "source": "batch"})
    served += _predict(http, {"records": OUTLIERS})
    return served


def _traffic_elsewhere(http: httpx.Client, men: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Single records to the second replica."""
    return [prediction for record in men for prediction in _predict(http, record)]


def _lookups_on_a_hung_store(http: httpx.Client, count: int) -> None:
    """Predictions by entity id on the replica whose online store hangs, side by side:
    each waits out the store's timeout, then fails with a 503."""
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(
            lambda _: http.post("/predict", json={"entity_ids": ["1"]}).status_code,
            range(count)))
    assert statuses == [503] * count


def _feedback(http: httpx.Client, served: list[dict[str, Any]]) -> None:
    """60 true outcomes, 45 of which say the model was wrong: live accuracy 25%."""
    for number, prediction in enumerate(served[:60]):
        actual = 1 - prediction["prediction"] if number % 4 else prediction["prediction"]
        response = http.post("/feedback", json={"id": prediction["id"], "actual": actual})
        assert response.status_code == 200, response.text


def _ingest(database: Database, spec: DatasetSpec, folder: Path, name: str,
            rows: pd.DataFrame) -> None:
    rows.to_csv(folder / name, index=False)
    ingest_file(database, spec, str(folder / name), LandingZone(str(folder / "landing")))


def _drift_check(http: httpx.Client, settings: Settings, database: Database,
                 spec: DatasetSpec) -> None:
    """A real drift check over the latest window, as the monitoring loop or `lifeboat drift`
    runs it: the traffic (third-class men only) is far from the training passengers."""
    deadline = time.monotonic() + 30
    while True:
        http.get("/past-predictions", params={"limit": 1})  # writes the queued predictions
        try:
            check_drift(settings, database, spec)
            return
        except DriftCheckUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _retrain(database: Database, reason: str, status: str) -> None:
    now = datetime.now(UTC)
    with database.session() as session:
        session.add(Retrain(
            dataset="titanic", reason=reason, status=status, started_at=now - timedelta(minutes=3),
            finished_at=None if status == "running" else now, champion_version="1",
            challenger_version=None if status == "failed" else "2",
            error="ValueError: training data is empty" if status == "failed" else None))
        session.commit()


def _job_runs(database: Database, failed: int) -> None:
    """A succeeded run and `failed` failed ones, as the scheduler records them."""
    recorded_run(database, "titanic", "ingest", "schedule", lambda: {"files": 1})
    for _ in range(failed):
        with pytest.raises(JobFailed):
            recorded_run(database, "titanic", "score", "schedule", _unreadable_file)


def _unreadable_file() -> dict[str, int]:
    raise OSError("good/x.parquet: no such file")


def _with_challenger(settings: Settings, spec: DatasetSpec) -> Settings:
    """A second version, named the registry's challenger: the service scores it in shadow."""
    database = Database(settings.db_url)
    version = train(settings, database, spec, promote=False).version
    database.dispose()
    ModelRegistry(settings, spec.model_name).set_challenger(version)
    return settings


@pytest.fixture(scope="module")
def stack(titanic: DatasetSpec, postgres_server_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The service on PostgreSQL, two replicas and a dead one, and a jobs process and a
    dead one, scraped by Prometheus, after two rounds of everything its dashboards show:
    traffic from every source, scored in shadow by a challenger too, feedback (mostly
    saying the model was wrong), ingestion runs (the last one all invalid), drift checks and
    retrains (failed ones among them), and the second replica's lookups failing slowly on
    its hung online store. Counters must grow between two scrapes for increase() to see
    them."""
    _require(PROMETHEUS)
    folder = tmp_path_factory.mktemp("observability")
    trained = _with_challenger(trained_home(folder / "home", titanic), titanic)
    passengers = pd.read_csv(titanic.bundled_path(), dtype=str, keep_default_na=False)
    partly_bad = passengers.iloc[:40].copy()
    partly_bad.loc[partly_bad.index[:4], "age"] = "150"
    partly_bad.loc[partly_bad.index[4:6], "pclass"] = "7"
    partly_bad.loc[partly_bad.index[6], "sex"] = "unknown"
    all_bad = passengers.iloc[40:52].copy()
    all_bad["pclass"] = "9"
    with own_database(postgres_server_url) as database_url:
        database = Database(database_url)
        upgrade(database)
        settings = trained.model_copy(update={
            # The service runs no monitoring loop (the jobs process does): the test runs
            # the checks itself and writes the retrains it needs.
            "database_url": database_url, "drift_window_size": DRIFT_WINDOW})
        with ExitStack() as started:
            base_url = started.enter_context(live_server(create_app(settings)))
            redis_port = started.enter_context(hung_port())
            other_url = started.enter_context(
                second_replica(folder, settings, database_url, redis_port))
            jobs = started.enter_context(jobs_process(folder, settings))
            prometheus = started.enter_context(running_prometheus(folder, {
                "lifeboat-api": [base_url.removeprefix("http://"),
                                 other_url.removeprefix("http://"), f"127.0.0.1:{_free_port()}"],
                "lifeboat-jobs": [jobs, f"127.0.0.1:{_free_port()}"]}))
            http = started.enter_context(httpx.Client(base_url=base_url, timeout=60))
            other = started.enter_context(httpx.Client(base_url=other_url, timeout=60))
            observed = Stack(prometheus, database_url,
                             counted_before=_counted_here(*TITANIC_PREDICTIONS),
                             unavailable_before=_counted_here(*PREDICT_UNAVAILABLE))
            observed.wait_for_scrape(time.time())
            # Round one.
            _retrain(database, "manual", "failed")
            _job_runs(database, failed=1)
            _ingest(database, titanic, folder, "partly-bad.csv", partly_bad)
            observed.served += _traffic(http, THIRD_CLASS_MEN[:100])
            observed.served_elsewhere += _traffic_elsewhere(other, THIRD_CLASS_MEN[:10])
            _lookups_on_a_hung_store(other, HUNG_LOOKUPS[0])
            _drift_check(http, settings, database, titanic)
            observed.wait_for_scrape(time.time())
            # Round two: counters must grow between scrapes for increase() and rate().
            observed.served += _traffic(http, THIRD_CLASS_MEN[100:])
            observed.served_elsewhere += _traffic_elsewhere(other, THIRD_CLASS_MEN[10:20])
            _lookups_on_a_hung_store(other, HUNG_LOOKUPS[1])
            _feedback(http, observed.served)
            _drift_check(http, settings, database, titanic)
            _retrain(database, "manual", "failed")
            _retrain(database, "drift", "promoted")
            _retrain(database, "accuracy", "kept_champion")
            _retrain(database, "drift", "running")
            _job_runs(database, failed=2)
            _ingest(database, titanic, folder, "all-bad.csv", all_bad)
            observed.wait_for_scrape(time.time())
            observed.rules = _wait_for_alerts(prometheus)
            yield observed
        database.dispose()


def _wait_for_alerts(prometheus: str) -> list[dict[str, Any]]:
    """The rules' state once every alert is pending or firing, or at the deadline."""
    deadline = time.monotonic() + ALERT_TIMEOUT
    while True:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        alerts = [rule for rule in rules if rule["type"] == "alerting"]
        if all(rule["state"] != "inactive" for rule in alerts) or time.monotonic() > deadline:
            return rules
        time.sleep(0.5)


def test_every_prediction_of_the_traffic_is_died(stack: Stack) -> None:
    """The premise of LifeboatPredictingOneClass's live check below."""
    assert len(stack.served) == 2 * (5 + 10 + 15 + 10 + 10 + len(OUTLIERS))
    assert {prediction["label"] for prediction in stack.served} == {"died"}


def test_prometheus_scrapes_every_replica_and_the_jobs_process(stack: Stack) -> None:
    """Two replicas and a jobs process up; the third replica's and the second jobs
    process's addresses, where nothing listens, down."""
    targets = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()
    health: dict[str, list[str]] = {}
    for target in targets["data"]["activeTargets"]:
        health.setdefault(target["labels"]["job"], []).append(target["health"])
    assert {job: sorted(states) for job, states in health.items()} == {
        "lifeboat-api": ["down", "up", "up"], "lifeboat-jobs": ["down", "up"]}


def test_what_the_replicas_count_adds_up_to_what_they_served(stack: Stack) -> None:
    """Each replica counts its own predictions: summed across instances, every prediction
    answered is counted once."""
    by_instance = stack.query('sum by (instance) (lifeboat_predictions_total{dataset="titanic"})')
    counted = [float(series["value"][1]) for series in by_instance["data"]["result"]]
    here = _counted_here(*TITANIC_PREDICTIONS)
    assert here in counted  # this process's replica
    counted[counted.index(here)] -= stack.counted_before
    assert sorted(counted) == sorted([len(stack.served), len(stack.served_elsewhere)])
    requests = stack.query('sum(lifeboat_http_requests_total{route="/predict",status="503"})')
    unavailable = float(requests["data"]["result"][0]["value"][1]) - stack.unavailable_before
    assert unavailable == sum(HUNG_LOOKUPS)


TITANIC_PREDICTIONS = ("lifeboat_predictions_total", {"dataset": "titanic"})
PREDICT_UNAVAILABLE = ("lifeboat_http_requests_total", {"route": "/predict", "status": "503"})


def _counted_here(sample_name: str, labels: dict[str, str]) -> float:
    """This process's count in the samples of that name carrying those labels, summed."""
    return sum(sample.value for metric in REGISTRY.collect() for sample in metric.samples
               if sample.name == sample_name
               and all(sample.labels.get(name) == value for name, value in labels.items()))


def test_what_the_database_says_is_counted_once_across_replicas(stack: Stack) -> None:
    """Both replicas report the database's drift checks; the dashboards' `max without
    (instance)` takes them once, as many as the database holds."""
    conninfo = make_url(stack.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo) as connection:
        checks = connection.execute("SELECT count(*) FROM drift_reports").fetchone()[0]
    both = stack.query('lifeboat_drift_checks_total{dataset="titanic"}')["data"]["result"]
    assert [float(series["value"][1]) for series in both] == [checks, checks]
    once = stack.query('max without (instance) (lifeboat_drift_checks_total{dataset="titanic"})')
    assert [float(series["value"][1]) for series in once["data"]["result"]] == [checks]


def test_the_dataset_variable_lists_the_served_dataset(stack: Stack) -> None:
    """What Grafana's `label_values(lifeboat_model_info, dataset)` asks Prometheus (the
    test process's registry may hold other tests' datasets too)."""
    answer = httpx.get(f"{stack.prometheus}/api/v1/label/dataset/values",
                       params={"match[]": "lifeboat_model_info"}, timeout=10).json()
    assert "titanic" in answer["data"]


@pytest.mark.parametrize("query", [query.param() for query in PROMQL])
def test_every_promql_expression_returns_data(stack: Stack, query: Query) -> None:
    """Each dashboard panel's and rule's expression, as Grafana or Prometheus sends it."""
    expr = _as_promql(query.text)
    answer = stack.query(expr)
    assert answer["status"] == "success", (
        f"{query.where}: Prometheus refused {expr!r}: {answer.get('error')}")
    result = answer["data"]["result"]
    assert result, f"{query.where}: no data for {expr!r}"
    for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", query.target.get("legendFormat", "")):
        missing = [series["metric"] for series in result if label not in series["metric"]]
        assert not missing, f"{query.where}: legend names {label}, absent from {missing}"


def test_prometheus_holds_the_live_roc_auc_and_the_latest_estimated_accuracy(
        stack: Stack) -> None:
    """The new series carry the database's numbers: the ROC AUC of the probabilities served
    against the outcomes sent, and the latest check's estimated accuracy."""
    conninfo = make_url(stack.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo) as connection:
        labelled = connection.execute(
            "SELECT f.actual, p.probability FROM feedback f JOIN predictions p "
            "ON p.id = f.prediction_id").fetchall()
        estimated = connection.execute(
            "SELECT estimated_accuracy FROM drift_reports ORDER BY id DESC LIMIT 1").fetchone()[0]
    actual, probability = zip(*labelled, strict=True)
    assert _latest(stack, "lifeboat_live_roc_auc") == pytest.approx(
        roc_auc_score(actual, probability))
    assert _latest(stack, "lifeboat_estimated_accuracy") == pytest.approx(estimated)


def _latest(stack: Stack, metric: str) -> float:
    """The value every replica reports, read from the database."""
    series, = stack.query(
        f'max without (instance) ({metric}{{dataset="titanic"}})')["data"]["result"]
    return float(series["value"][1])


@pytest.mark.parametrize("record", RECORDS)
def test_every_recording_rule_records(stack: Stack, record: str) -> None:
    assert stack.query(record)["data"]["result"], f"{record}: nothing recorded"


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_trips_on_the_traffic_it_watches(stack: Stack, alert: str) -> None:
    """The traffic predicted one class, the last file was all invalid, drift was found,
    live accuracy fell, retrains failed: each alert is pending (inside its `for`) or firing."""
    rule, = [rule for rule in stack.rules if rule.get("name") == alert]
    assert rule["health"] == "ok", f"{alert}: {rule.get('lastError')}"
    assert rule["state"] in ("pending", "firing"), f"{alert} stayed inactive: {rule['query']}"


@pytest.mark.parametrize("query", [query.param() for query in SQL])
def test_every_sql_query_runs_on_the_real_schema(stack: Stack, query: Query) -> None:
    """Each SQL panel and annotation, Grafana's macros expanded, on the tables the service's
    migrations made, in a read-only transaction (as Grafana's read-only role runs them)."""
    now = datetime.now(UTC)
    sql = expand_sql_macros(query.text, now - timedelta(days=1), now + timedelta(minutes=5))
    conninfo = make_url(stack.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo) as connection:
        connection.read_only = True
        try:
            cursor = connection.execute(sql)
        except psycopg.Error as exc:
            pytest.fail(f"{query.where}: PostgreSQL refused the query: {exc}\n{sql}",
                        pytrace=False)
        columns = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
    assert rows, f"{query.where}: no rows\n{sql}"
    panel_type, fmt = query.panel.get("type"), query.target.get("format")
    if fmt == "time_series" or panel_type == "annotation":
        assert columns[0] == "time", f"{query.where}: the first column must be time: {columns}"
        times = [row[0] for row in rows]
        assert times == sorted(times), f"{query.where}: not in time order"
    if panel_type == "annotation":
        assert "text" in columns, f"{query.where}: {columns}"
    if panel_type == "barchart":
        assert query.panel["options"]["xField"] in columns, f"{query.where}: {columns}"
    if panel_type == "stat":
        assert len(rows) == 1 and all(isinstance(value, (int, float)) or value is None
                                      or hasattr(value, "is_finite") for value in rows[0])


def test_the_sql_macros_expand_as_grafana_does() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    end = start + timedelta(hours=6)
    sql = ("SELECT $__timeGroupAlias(p.created_at, '1h'), count(*) FROM predictions p "
           "WHERE $__timeFilter(p.created_at) AND p.created_at > $__timeFrom()")
    assert expand_sql_macros(sql, start, end) == (
        'SELECT floor(extract(epoch from p.created_at)/3600)*3600 AS "time", count(*) '
        "FROM predictions p WHERE p.created_at BETWEEN '2026-01-02T03:04:05Z' AND "
        "'2026-01-02T09:04:05Z' AND p.created_at > '2026-01-02T03:04:05Z'")
    with pytest.raises(AssertionError):
        expand_sql_macros("SELECT $__unknownMacro(x)", start, end)
    assert expand_sql_macros("SELECT 1 WHERE dataset = '$dataset'", start, end) == (
        "SELECT 1 WHERE dataset = 'titanic'")



@pytest.mark.parametrize("name", sorted(AIRFLOW))
def test_airflow_runs_the_repository_dags_with_the_apps_settings_on_its_own_database(
        name: str) -> None:
    services = _yaml(COMPOSE)["services"]
    airflow, api = services[name], services["api-1"]
    assert airflow["profiles"] == ["airflow"], "opt-in: the stack runs without Airflow"
    environment = airflow["environment"]
    assert dict(_bind_mounts(airflow))[environment["AIRFLOW__CORE__DAGS_FOLDER"]] == ROOT / "dags"
    for setting in ("DATABASE_URL", "LIFEBOAT_STORAGE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI"):
        assert environment[setting] == api["environment"][setting], setting
    assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The broker is the stack's Redis, on a database the online store does not use.
    broker = httpx.URL(environment["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.host in services and broker.path != httpx.URL(environment["REDIS_URL"]).path
    metadata = make_url(environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    results = make_url(environment["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
    assert (results.host, results.database) == (metadata.host, metadata.database)
    init = (DEPLOY / "postgres" / "init.sql").read_text()
    assert f"CREATE ROLE {metadata.username} LOGIN PASSWORD '{metadata.password}'" in init
    assert f"CREATE DATABASE {metadata.database} OWNER {metadata.username}" in init
    dockerfile = (DEPLOY / "airflow" / "Dockerfile").read_text()
    assert "LIFEBOAT_PYTHON=/opt/airflow/lifeboat-venv/bin/python" in dockerfile
    assert re.search(r"^FROM apache/airflow:3\.", dockerfile, re.M)
"""The cluster's files as shipped: deploy/kubernetes/ and deploy/docker-compose.yml run the same
roles with the same settings. No cluster or Docker engine runs here, so the manifests are
checked against the Kubernetes API's own JSON schemas (kubernetes-validate ships them: nothing
is downloaded), strictly, so that a misspelt field fails; then for what the schemas cannot
know: probes on the right routes, the autoscaler on the right Deployment, a grace period that
covers the journal's drain, and settings that Lifeboat really reads."""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices

from lifeboat.config import Settings
from tests.support.paths import ROOT

# The oldest minor version the Kubernetes project still supports when this was written.
KUBERNETES_VERSION = "1.33"

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
KUSTOMIZATION = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
MANIFESTS = sorted(path for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml")
# The Secret's template: the real secret.yaml is its filled-in copy, kept out of git.
SECRET_TEMPLATE = KUBERNETES / "secret.example.yaml"
LIFEBOAT_IMAGES = {"deploy/Dockerfile", "deploy/airflow/Dockerfile"}


def _resources() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name}:{resource['kind']}/{resource['metadata']['name']}", resource)
            for path in MANIFESTS for resource in yaml.safe_load_all(path.read_text())
            if resource]


RESOURCES = _resources()


def _one(kind: str, name: str) -> dict[str, Any]:
    found, = [resource for _, resource in RESOURCES
              if resource["kind"] == kind and resource["metadata"]["name"] == name]
    return found


def _container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def _config() -> dict[str, str]:
    return _one("ConfigMap", "lifeboat-config")["data"]


def _port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    numbers = {entry.get("name"): entry["containerPort"] for entry in container["ports"]}
    return numbers[port] if isinstance(port, str) else port


def _lifeboat_services() -> dict[str, dict[str, Any]]:
    """The compose services that run Lifeboat's code (its image or Airflow's with it)."""
    return {name: service for name, service in SERVICES.items()
            if service.get("build", {}).get("dockerfile") in LIFEBOAT_IMAGES}


def _settings_names() -> set[str]:
    """Every environment variable Settings reads: LIFEBOAT_<field>, and each field's aliases."""
    names = set()
    for field, info in Settings.model_fields.items():
        names.add(f"LIFEBOAT_{field.upper()}")
        if isinstance(info.validation_alias, AliasChoices):
            names.update(str(choice) for choice in info.validation_alias.choices)
    return names


# --- the Kubernetes schemas -------------------------------------------------------------------

@pytest.mark.parametrize("resource", [r for _, r in RESOURCES], ids=[i for i, _ in RESOURCES])
def test_every_manifest_is_valid_for_the_kubernetes_api(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_schemas_refuse_a_misspelt_field_and_a_wrong_type() -> None:
    misspelt = copy.deepcopy(_one("Deployment", "api"))
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    wrong_type = copy.deepcopy(_one("HorizontalPodAutoscaler", "api"))
    wrong_type["spec"]["minReplicas"] = "two"
    for resource in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_applies_every_manifest_and_the_secret_made_from_its_template() -> None:
    shipped = {path.name for path in MANIFESTS} - {SECRET_TEMPLATE.name}
    assert set(KUSTOMIZATION["resources"]) == shipped | {"secret.yaml"}
    template = [resource for _, resource in RESOURCES if resource["kind"] == "Secret"]
    assert template and all(
        set(resource["stringData"].values()) and all("REPLACE_ME" in value for value in
                                                     resource["stringData"].values())
        for resource in template), "the template holds placeholders, never a usable secret"
    assert "deploy/kubernetes/secret.yaml" in (ROOT / ".gitignore").read_text().splitlines()
    image, = KUSTOMIZATION["images"]
    containers = [c for _, r in RESOURCES if r["kind"] == "Deployment"
                  for c in [*r["spec"]["template"]["spec"].get("initContainers", []),
                            *r["spec"]["template"]["spec"]["containers"]]]
    assert {c["image"].split(":")[0] for c in containers} == {image["name"]}


# --- what the schemas cannot know ---------------------------------------------------------------

def test_the_api_replicas_are_probed_sized_and_stop_after_draining_their_log() -> None:
    deployment = _one("Deployment", "api")
    pod = deployment["spec"]["template"]["spec"]
    api = _container(deployment)
    assert api["command"] == ["lifeboat", "serve"]
    assert deployment["spec"]["replicas"] == 2
    http = int(_config()["LIFEBOAT_PORT"])
    for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"),
                        ("readinessProbe", "/ready")):
        assert api[probe]["httpGet"]["path"] == path, probe
        assert _port(api, api[probe]["httpGet"]["port"]) == http, probe
    assert {"cpu", "memory"} <= set(api["resources"]["requests"])
    assert "memory" in api["resources"]["limits"]
    # The grace period covers the preStop pause, the drain of the queued predictions, a margin.
    pause = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(_config()["LIFEBOAT_PREDICTION_LOG_DRAIN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + 10
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"]
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    # The journal lives under LIFEBOAT_HOME/spool, on the pod's own volume.
    home = {m["mountPath"]: m["name"] for m in api["volumeMounts"]}[_config()["LIFEBOAT_HOME"]]
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == home)


def test_the_autoscaler_and_the_disruption_budget_hold_the_api_replicas() -> None:
    deployment = _one("Deployment", "api")
    autoscaler = _one("HorizontalPodAutoscaler", "api")["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": deployment["metadata"]["name"]}
    metric, = autoscaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in _container(deployment)["resources"]["requests"], "utilization of what?"
    assert autoscaler["minReplicas"] == deployment["spec"]["replicas"] < autoscaler["maxReplicas"]
    budget = _one("PodDisruptionBudget", "api")["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert 0 < budget["minAvailable"] < deployment["spec"]["replicas"]


def test_every_service_routes_to_a_port_its_pods_listen_on() -> None:
    for _, service in [(i, r) for i, r in RESOURCES if r["kind"] == "Service"]:
        name = service["metadata"]["name"]
        deployment = _one("Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        for port in service["spec"]["ports"]:
            assert _port(_container(deployment), port["targetPort"]) == port["port"], name
    tracking = _config()["MLFLOW_TRACKING_URI"]
    assert tracking == f"http://mlflow:{_one('Service', 'mlflow')['spec']['ports'][0]['port']}"


def test_the_jobs_run_once_after_the_bootstrap_and_are_probed_on_their_metrics() -> None:
    deployment = _one("Deployment", "jobs")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    bootstrap, = pod["initContainers"]
    assert bootstrap["command"] == ["lifeboat", "bootstrap"]
    jobs = _container(deployment)
    assert jobs["command"] == ["lifeboat", "schedule"]
    port = int({e["name"]: e["value"] for e in jobs["env"]}["LIFEBOAT_JOBS_METRICS_PORT"])
    probe = jobs["livenessProbe"]["httpGet"]
    assert (probe["path"], _port(jobs, probe["port"])) == ("/metrics", port)
    assert {"cpu", "memory"} <= set(jobs["resources"]["requests"])


@pytest.mark.parametrize("name", ["api", "jobs"])
def test_prometheus_finds_each_lifeboat_pod_by_its_annotations(name: str) -> None:
    deployment = _one("Deployment", name)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = [entry["containerPort"] for entry in _container(deployment)["ports"]]
    assert int(annotations["prometheus.io/port"]) in ports


def test_every_lifeboat_setting_the_files_set_is_one_lifeboat_reads() -> None:
    given: dict[str, str] = {name: "configmap.yaml" for name in _config()}
    for _, resource in RESOURCES:
        if resource["kind"] == "Secret":
            given.update({name: SECRET_TEMPLATE.name for name in resource["stringData"]})
        if resource["kind"] == "Deployment":
            pod = resource["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                given.update({e["name"]: resource["metadata"]["name"]
                              for e in container.get("env", [])})
    for name, service in _lifeboat_services().items():
        given.update({variable: f"compose {name}" for variable in service["environment"]})
    unknown = {name: where for name, where in given.items()
               if name.startswith("LIFEBOAT_") and name not in _settings_names()}
    assert not unknown, f"not a Settings field: {unknown}"
    assert {"DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI"} <= set(given)


# --- compose and Kubernetes: the same roles ---------------------------------------------------

def _without_allowed_hosts(command: list[str]) -> list[str]:
    """MLflow's command less its Host allow-list, which names each platform's own addresses."""
    at = command.index("--allowed-hosts")
    return command[:at] + command[at + 2:]


def test_compose_runs_the_roles_kubernetes_runs_with_the_same_commands() -> None:
    kubernetes = {"api": _container(_one("Deployment", "api"))["command"],
                  "jobs": _container(_one("Deployment", "jobs"))["command"],
                  "bootstrap": _one("Deployment", "jobs")["spec"]["template"]["spec"][
                      "initContainers"][0]["command"],
                  "mlflow": _without_allowed_hosts(_container(_one("Deployment", "mlflow"))[
                      "command"])}
    compose = {"api": SERVICES["api-1"]["command"], "jobs": SERVICES["jobs"]["command"],
               "bootstrap": SERVICES["bootstrap"]["command"],
               "mlflow": _without_allowed_hosts(SERVICES["mlflow"]["command"])}
    assert compose == kubernetes
    assert SERVICES["api-2"]["command"] == SERVICES["api-1"]["command"]
    deployments = {r["metadata"]["name"] for _, r in RESOURCES if r["kind"] == "Deployment"}
    assert deployments == {"api", "jobs", "mlflow"}


def test_compose_and_kubernetes_give_lifeboat_the_same_settings() -> None:
    compose = {name: str(value) for name, value in SERVICES["api-1"]["environment"].items()}
    secret = _one("Secret", "lifeboat-secrets")["stringData"]
    shared = set(compose) & set(_config())
    assert {"LIFEBOAT_STORAGE_URL", "MLFLOW_TRACKING_URI", "LIFEBOAT_HOME", "LIFEBOAT_PORT",
            "LIFEBOAT_HOST", "LIFEBOAT_PREDICTION_LOG_DRAIN_SECONDS"} <= shared
    assert {name: compose[name] for name in shared} == {name: _config()[name] for name in shared}
    # MinIO's address is compose's alone: on Kubernetes, S3 is the cloud's.
    missing = set(compose) - set(_config()) - set(secret) - {"AWS_ENDPOINT_URL"}
    assert not missing, f"compose gives the replicas {missing}, Kubernetes does not"


def test_compose_puts_the_balancer_in_front_of_every_replica() -> None:
    balancer = SERVICES["balancer"]
    assert balancer["image"].startswith("haproxy:")
    assert "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    environment = balancer["environment"]
    port = environment["LIFEBOAT_BALANCER_BIND"].rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}:{port}" in balancer["ports"]
    # Every variable HAProxy's config reads is one compose sets, and the other way round.
    read = set(re.findall(r"LIFEBOAT_[A-Z_0-9]+", (DEPLOY / "haproxy" / "haproxy.cfg").read_text()))
    assert set(environment) <= read
    assert {name for name in read if "REPLICA_" not in name} <= set(environment)
    replicas = sorted(name for name in SERVICES if name.startswith("api-"))
    assert [environment[f"LIFEBOAT_REPLICA_{n}"] for n in range(1, len(replicas) + 1)] == [
        f"{name}:{SERVICES[name]['environment']['LIFEBOAT_PORT']}" for name in replicas]
    assert set(replicas) <= set(balancer["depends_on"])
    # Only the balancer is published: a replica is reached through it.
    assert not any("ports" in SERVICES[name] for name in replicas)
    homes = [SERVICES[name]["volumes"][0].split(":")[0] for name in replicas]
    assert len(set(homes)) == len(replicas), "each replica's journal on a volume of its own"
    drain = float(SERVICES["api-1"]["environment"]["LIFEBOAT_PREDICTION_LOG_DRAIN_SECONDS"])
    assert int(SERVICES["api-1"]["stop_grace_period"].removesuffix("s")) >= drain + 10


def test_compose_mlflow_stores_runs_in_postgres_and_artifacts_in_a_bucket_it_creates() -> None:
    mlflow = SERVICES["mlflow"]
    command = mlflow["command"]
    bucket = command[command.index("--artifacts-destination") + 1]
    assert "--serve-artifacts" in command
    assert bucket.removeprefix("s3://").rstrip("/") in " ".join(SERVICES["minio-init"]["command"])
    database = mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].rsplit("/", 1)[1]
    assert f"CREATE DATABASE {database} " in (DEPLOY / "postgres" / "init.sql").read_text()
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == (
        SERVICES["api-1"]["environment"]["AWS_ENDPOINT_URL"])
    for name in ("bootstrap", "api-1", "jobs"):
        assert SERVICES[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_compose_runs_airflow_as_celery_roles_behind_its_profile() -> None:
    airflow = {name: service for name, service in SERVICES.items()
               if name.startswith("airflow-")}
    assert set(airflow) == {"airflow-init", "airflow-scheduler", "airflow-dag-processor",
                            "airflow-apiserver", "airflow-worker"}
    commands = {name: service["command"] for name, service in airflow.items()}
    assert commands == {"airflow-init": ["airflow", "db", "migrate"],
                        "airflow-scheduler": ["airflow", "scheduler"],
                        "airflow-dag-processor": ["airflow", "dag-processor"],
                        "airflow-apiserver": ["airflow", "api-server"],
                        "airflow-worker": ["airflow", "celery", "worker"]}
    secrets = {service["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
               for service in airflow.values()}
    assert len(secrets) == 1, "every component checks the workers' tokens with one key"
    for name, service in airflow.items():
        assert service["profiles"] == ["airflow"], name
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert service["environment"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/1"
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == (
                "service_completed_successfully"), name


def test_the_kubernetes_readme_names_every_setting_the_secret_needs() -> None:
    readme = (KUBERNETES / "README.md").read_text()
    assert "kubectl apply -k deploy/kubernetes" in readme
    for _, resource in RESOURCES:
        if resource["kind"] == "Secret":
            for name in resource["stringData"]:
                assert f"`{name}`" in readme, name

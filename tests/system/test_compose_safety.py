"""The compose stack is safe to start as shipped: nothing published beyond this machine, no
key or password it makes up, no anonymous Grafana. No Docker engine runs here, so the file
is checked as compose reads it: YAML, with `${NAME:?message}` refusing to start when NAME is
unset or empty."""

import re
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT

COMPOSE = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
REQUIRED = re.compile(r"\$\{(?P<name>[A-Z0-9_]+):\?[^}]*\}")
SECRET = re.compile(r"PASSWORD|SECRET|_KEYS?$|_UR[IL]$|_CONN$")
SCOPES = ("ADMIN", "READ", "FEEDBACK", "PREDICT")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def _credentials(value: str) -> list[str]:
    """The secrets a value holds: a whole value, or the password in a URL's user part."""
    url = re.match(r"^[a-z0-9+]+://[^:/@]+:(?P<password>[^@]+)@", value)
    if url:
        return [url["password"]]
    return [] if "://" in value else [value]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_port_is_published_on_loopback_only(name: str) -> None:
    for mapping in SERVICES[name].get("ports", []):
        host = str(mapping).split(":")
        assert len(host) == 3 and host[0] == "127.0.0.1", f"{name} publishes {mapping}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_service_has_a_literal_or_default_secret(name: str) -> None:
    for variable, value in _environment(SERVICES[name]).items():
        assert ":-" not in value or not SECRET.search(variable), f"{name}: {variable} has a default"
        if SECRET.search(variable) and not variable.startswith("AIRFLOW__"):
            for secret in _credentials(value):
                assert REQUIRED.fullmatch(secret), f"{name}: {variable}={value} is not required"


@pytest.mark.parametrize("name", ["api-1", "api-2", "jobs", "bootstrap"])
def test_every_lifeboat_process_requires_a_key_list_for_every_scope(name: str) -> None:
    environment = _environment(SERVICES[name])
    for scope in SCOPES:
        variable = f"LIFEBOAT_{scope}_KEYS"
        assert REQUIRED.fullmatch(environment[variable])["name"] == variable
    assert "LIFEBOAT_API_KEY" not in environment


def test_grafana_needs_a_login_with_a_password_that_is_set() -> None:
    environment = _environment(SERVICES["grafana"])
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert not any(name.startswith("GF_AUTH_ANONYMOUS_ORG") for name in environment)
    password = REQUIRED.fullmatch(environment["GF_SECURITY_ADMIN_PASSWORD"])
    assert password["name"] == "GRAFANA_ADMIN_PASSWORD"


def test_every_required_variable_is_described_in_env_example() -> None:
    required = {match["name"] for service in SERVICES.values()
                for value in _environment(service).values() for match in REQUIRED.finditer(value)}
    assert {f"LIFEBOAT_{scope}_KEYS" for scope in SCOPES} | {
        "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
        "AIRFLOW_JWT_SECRET", "AIRFLOW_SECRET_KEY"} == required
    example = (ROOT / ".env.example").read_text()
    assert all(f"# {name}=\n" in example for name in required)


def test_the_bucket_is_created_with_the_required_password_not_a_literal() -> None:
    init = SERVICES["minio-init"]
    assert REQUIRED.fullmatch(_environment(init)["MINIO_ROOT_PASSWORD"])
    command = " ".join(init["command"])
    assert '"$$MINIO_ROOT_PASSWORD"' in command and "secret" not in command

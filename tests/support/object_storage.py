"""Real object-storage endpoints on loopback, each started once per test session.

S3 is moto's server, GCS is gcp-storage-emulator, HTTP is Python's http.server. Clients find
them the way a user's would, through the environment and nothing else:

    S3:  AWS_ENDPOINT_URL=http://HOST:PORT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
         AWS_DEFAULT_REGION (FSSPEC_S3_ENDPOINT_URL works too, when set before start)
    GCS: STORAGE_EMULATOR_HOST=http://HOST:PORT, FSSPEC_GCS_TOKEN=anon,
         GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false (else every gcsfs call waits about a minute
         for gRPC endpoints an emulator does not have)

A server that cannot start fails the tests that need it: a skip would hide exactly the
object-storage bugs these tests exist to catch.
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
import posixpath
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import fsspec
import fsspec.config
import pytest
from fsspec.core import url_to_fs

START_SECONDS = 30
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class StorageLocation:
    """One test's corner of a storage: source files are written to `upload` and read back
    from `source`, which differ only for HTTP (served, so read-only)."""

    kind: str
    upload: str
    source: str
    landing: str

    def put(self, name: str, content: bytes) -> None:
        with fsspec.open(f"{self.upload}{name}", "wb") as stream:
            stream.write(content)

    def landed(self) -> list[str]:
        """Everything under the landing zone, listed afresh from the storage itself."""
        fs, root = url_to_fs(self.landing, skip_instance_cache=True)
        return sorted(posixpath.relpath(path, root) for path in fs.find(root))

    def read(self, landed: str) -> bytes:
        with fsspec.open(f"{self.landing}/{landed}", "rb") as stream:
            return stream.read()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto binds port 0 itself, so no other process can take the port in between."""
    server = _required("moto.server", "moto[server]").ThreadedMotoServer(
        ip_address="127.0.0.1", port=0, verbose=False)
    _start("moto S3 server", server.start)
    host, port = server.get_host_and_port()
    url = _answering("moto S3 server", f"http://{host}:{port}")
    yield url
    server.stop()


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    emulator = _required("gcp_storage_emulator.server", "gcp-storage-emulator")
    _import_gcsfs_without_experimental_features()
    port = _free_port()
    server = emulator.create_server("127.0.0.1", port, in_memory=True)
    _start("gcp-storage-emulator", server.start)
    yield _answering("gcp-storage-emulator", f"http://127.0.0.1:{port}", "/storage/v1/b?project=test")
    server.stop()


@pytest.fixture(scope="session")
def http_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A folder served read-only over HTTP, as a web server or a signed-URL host would."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = _answering("http.server", f"http://127.0.0.1:{server.server_port}/")
    yield url, folder
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["local", "s3", "gs", "http"])
def storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Iterator[StorageLocation]:
    """A fresh bucket (or folder) per test, its endpoint configured through the environment."""
    kind = request.param
    if kind == "local":
        yield StorageLocation(kind, f"{tmp_path}/incoming/", f"{tmp_path}/incoming/",
                              f"{tmp_path}/landing")
        return
    if kind == "http":
        url, folder = request.getfixturevalue("http_endpoint")
        prefix = f"{uuid.uuid4().hex[:8]}/incoming/"
        (folder / prefix).mkdir(parents=True)
        yield StorageLocation(kind, f"{folder}/{prefix}", f"{url}{prefix}", f"{tmp_path}/landing")
        return
    configure = _configure_s3 if kind == "s3" else _configure_gcs
    configure(request, monkeypatch)
    _forget_cached_filesystems(kind)
    bucket = f"lifeboat-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem(kind).mkdir(bucket)
    yield StorageLocation(kind, f"{kind}://{bucket}/incoming/", f"{kind}://{bucket}/incoming/",
                          f"{kind}://{bucket}/landing")
    _forget_cached_filesystems(kind)


def _configure_s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def _configure_gcs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsspec reads FSSPEC_* variables when it is imported; re-reading them here is what a
    user's process start does."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", request.getfixturevalue("gcs_endpoint"))
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    monkeypatch.setenv("FSSPEC_GCS_TOKEN", "anon")
    monkeypatch.setattr(fsspec.config, "conf", copy.deepcopy(fsspec.config.conf))
    fsspec.config.set_conf_env(fsspec.config.conf)


def _forget_cached_filesystems(protocol: str) -> None:
    """fsspec caches a filesystem per argument set, not per environment: one made before
    (or after) the endpoint variables were set would talk to the wrong server."""
    fsspec.get_filesystem_class(protocol).clear_instance_cache()


def _import_gcsfs_without_experimental_features() -> None:
    """gcsfs picks its filesystem class when first imported, from this variable."""
    previous = os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    try:
        gcsfs = _required("gcsfs", "gcsfs")
    finally:
        if previous is None:
            del os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"]
        else:
            os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = previous
    if gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem:
        pytest.fail("gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set; "
                    "its calls to the emulator would each hang about a minute. Set it in the "
                    "environment that runs pytest.", pytrace=False)


def _required(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{package} is not installed ({exc}); run: pip install -e '.[dev]'",
                    pytrace=False)


def _start(name: str, start: Callable[[], None]) -> None:
    """Both servers' start() waits forever if their thread fails to bind; bound the wait."""
    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(START_SECONDS)
    if starter.is_alive():
        pytest.fail(f"{name} did not start within {START_SECONDS}s", pytrace=False)


def _answering(name: str, url: str, probe: str = "") -> str:
    """Any HTTP answer, even an error status, proves a server is listening there."""
    try:
        urllib.request.urlopen(f"{url}{probe}", timeout=5).close()
    except urllib.error.HTTPError:
        pass
    except OSError as exc:
        pytest.fail(f"{name} is not answering at {url}: {exc}", pytrace=False)
    return url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Request lines would drown pytest's output."""
